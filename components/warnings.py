"""Warning levels drawn: the level badge (IV 蓝 · III 黄 · II 橙 · I 红), why it holds, who set
it, and the districts at a level; pure builders."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from dash import dcc, html

from components.i18n import t
from components.state import href
from components.topics import TOPICS
from data.warning_reads import WarningNow
from data.warning_types import severity

SHANGHAI = ZoneInfo("Asia/Shanghai")
ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV"}


def level_badge(level: int | None, lang: str, *, short: bool = False) -> html.Span:
    """A level as its badge; colour and words together (never colour alone)."""
    if level not in ROMAN:
        return html.Span(t("warn.none", lang), className="os-level os-level-none")
    key = "warn.short" if short else "warn.level"
    words = t(key, lang, roman=ROMAN[level], colour=t(f"warn.colour{level}", lang))
    return html.Span(words, className=f"os-level os-level-{level}")


def _why(here: WarningNow, lang: str) -> str:
    """The holding rules, or that the level is held through a lull."""
    notes = [str(item.get(lang) or item.get("zh") or "") for item in here.why]
    if notes:
        return t("warn.because", lang, why="；".join(notes) if lang == "zh" else "; ".join(notes))
    if here.computed and here.calm_since:
        return t("warn.holding", lang)
    return ""


def _hhmm(when: datetime | None) -> str:
    return when.astimezone(SHANGHAI).strftime("%H:%M") if when else ""


def set_by_text(here: WarningNow, lang: str) -> str:
    """Who set an operator's level, until when, and why."""
    return t(
        "warn.set_by",
        lang,
        who=here.override_by or "",
        until=_hhmm(here.override_until),
        reason=here.override_reason or "",
    )


def warning_strip(
    here: WarningNow | None,
    districts: list[tuple[str, int]],
    *,
    lang: str,
) -> list:
    """The scenario's level in the view's place, why, an operator's setting, and (for the city)
    the districts at a level as (name, level), most severe first."""
    if here is None:
        return [level_badge(None, lang), html.Span(t("warn.not_yet", lang), className="os-muted")]
    parts: list = [level_badge(here.level, lang)]
    why = _why(here, lang)
    if here.override is not None:
        parts.append(html.Span(set_by_text(here, lang), className="os-warn-override"))
    elif why:
        parts.append(html.Span(why, className="os-warn-why"))
    if districts:
        parts.append(
            html.Span(
                [
                    html.Span([name, " ", level_badge(level, lang, short=True)])
                    for name, level in districts[:6]
                ],
                className="os-warn-districts",
            )
        )
    return parts


def _link_title(code: str, level: int | None, lang: str) -> str:
    return f"{t(f'topic.{code}', lang)} · {level_badge(level, lang).children}"


def warning_links(levels: dict[str, int | None], *, lang: str, district: str | None = None) -> list:
    """One link per scenario to its view, with its level in force (those at a level first)."""
    order = sorted(TOPICS, key=lambda code: -severity(levels.get(code)))
    return [
        dcc.Link(
            [
                html.Span(t(f"topic.{code}", lang), className="os-warn-topic"),
                # a calm scenario is its name alone; its tooltip says so
                level_badge(levels.get(code), lang, short=True) if levels.get(code) else None,
            ],
            title=_link_title(code, levels.get(code), lang),
            href=href(f"/topic/{code}", lang=lang, district=district),
            className="os-warn-link" + ("" if levels.get(code) else " os-warn-calm"),
        )
        for code in order
    ]


def warning_badges(
    levels: dict[str, int | None], *, lang: str, most: int | None = None, short: bool = False
) -> list:
    """The scenarios at a level, most severe first, as badges (a display's header: nothing to
    click); a calm city says so. `most`: that many, then one badge saying how many more (their
    names and levels on hover); `short`: the scenarios' short names (a wall's narrow header)."""
    raised = sorted(
        (code for code in TOPICS if levels.get(code)), key=lambda code: -severity(levels[code])
    )
    if not raised:
        return [html.Span(t("warn.all_calm", lang), className="os-warn-calm")]
    shown = raised if most is None or len(raised) <= most else raised[: most - 1]
    badges: list = [
        html.Span(
            [
                t(f"topic.short.{code}" if short else f"topic.{code}", lang),
                " ",
                level_badge(levels[code], lang, short=True),
            ],
            className="os-warn-link",
            title=_link_title(code, levels[code], lang),
        )
        for code in shown
    ]
    rest = raised[len(shown) :]
    if rest:
        badges.append(
            html.Span(
                t("warn.more", lang, n=len(rest)),
                className="os-warn-link os-warn-more",
                title="\n".join(_link_title(code, levels[code], lang) for code in rest),
            )
        )
    return badges
