"""The frame every page shares: header with navigation, breadcrumbs, clock and language switch."""

from __future__ import annotations

from collections.abc import Sequence

from dash import ALL, Input, Output, State, dcc, html
from dash.development.base_component import Component
from flask import g

from components import ids, reference
from components.attributes import wildcards
from components.callbacks import CallbackSet
from components.i18n import name, t
from components.panels import fresh_config
from components.state import href
from data.access import Principal
from web.session import current_principal

# the shell's browser-side behaviour, registered on each app by create_app()
CALLBACKS = CallbackSet()


def create_page(
    *,
    lang: str,
    title: str,
    active: str,
    body: list,
    crumbs: list | Component | None = None,
    class_name: str = "",
) -> html.Div:
    """A page: header (brand, crumbs, nav, clock, language) over `body`; sets title and lang."""
    nav = [
        dcc.Link(
            t(f"nav.{key}", lang),
            href=href(path, lang=lang),
            className=f"os-nav-link {'os-nav-active' if key == active else ''}".strip(),
        )
        for key, path in (
            ("overview", "/"),
            ("topics", "/topic/flood"),
            ("incidents", "/incidents"),
            ("resources", "/resources"),
            ("review", "/review"),
        )
    ]
    principal = current_principal()
    if principal is None:
        # only a forged or stale callback gets here: the gate sends browsers to sign in
        body = [
            html.Div(
                className="os-signin-needed",
                children=html.A(t("auth.required", lang), href="/login"),
            )
        ]
    return html.Div(
        className=f"os-page os-lang-{lang} {class_name}".strip(),
        children=[
            dcc.Store(id=ids.LANG, data=lang),
            dcc.Store(id=ids.PAGE_META, data={"title": title, "lang": lang}),
            fresh_config(lang),
            html.Header(
                className="os-header",
                children=[
                    dcc.Link(
                        href=href("/", lang=lang),
                        className="os-brand",
                        children=[
                            html.Span(t("app.title", lang), className="os-brand-name"),
                            html.Span(t("app.subtitle", lang), className="os-brand-sub"),
                        ],
                    ),
                    html.Nav(
                        crumbs or [],
                        className="os-crumbs",
                        **wildcards({"aria-label": "breadcrumb"}),
                    ),
                    html.Nav(nav, className="os-nav"),
                    html.Div(id=ids.CLOCK, className="os-clock"),
                    _account(principal, lang),
                    html.Button(
                        t("nav.language", lang),
                        id=ids.LANG_TOGGLE,
                        className="os-lang-toggle",
                        title=t("nav.language_hint", lang),
                        **wildcards({"data-lang": lang}),
                    ),
                ],
            ),
            html.Main(className="os-main", children=body),
        ],
    )


def _account(principal: Principal | None, lang: str) -> html.Div | None:
    """Who is signed in, in which role and districts, and the sign-out button."""
    if principal is None:
        return None
    where = (
        t("crumb.city", lang)
        if principal.sees_city
        else "、".join(
            name(reference.districts()[d], lang) if d in reference.districts() else d
            for d in principal.districts
        )
    )
    return html.Div(
        className="os-account",
        children=[
            html.Span(
                principal.display_name or principal.username,
                className="os-account-name",
                title=principal.username,
            ),
            html.Span(
                f"{t(f'role.{principal.role}', lang)} · {where}", className="os-account-role"
            ),
            html.Form(
                action="/logout",
                method="POST",
                className="os-account-out",
                children=[
                    dcc.Input(type="hidden", name="csrf_token", value=g.get("csrf_token") or ""),
                    html.Button(t("nav.sign_out", lang), type="submit", className="os-signout"),
                ],
            ),
        ],
    )


def crumb_links(lang: str, trail: Sequence[tuple[str, str | None]]) -> list:
    """Breadcrumbs: (label, href) pairs, the last one (href None) is the current place."""
    items: list = []
    for index, (label, target) in enumerate(trail):
        if index:
            items.append(html.Span("›", className="os-crumb-sep"))
        if target is None:
            items.append(html.Span(label, className="os-crumb os-crumb-current"))
        else:
            items.append(dcc.Link(label, href=target, className="os-crumb"))
    return items


# the document follows the page: <title> and <html lang>
CALLBACKS.clientside(
    """
    function (meta) {
        if (meta) {
            document.title = meta.title;
            document.documentElement.lang = meta.lang === "en" ? "en" : "zh-CN";
        }
        return window.dash_clientside.no_update;
    }
    """,
    Output(ids.PAGE_META, "id"),
    Input(ids.PAGE_META, "data"),
)

# switching language reloads the same view (state stays in the URL) with ?lang= flipped
CALLBACKS.clientside(
    """
    function (clicks, lang) {
        if (!clicks) { return window.dash_clientside.no_update; }
        const url = new URL(window.location.href);
        if (lang === "en") { url.searchParams.delete("lang"); }
        else { url.searchParams.set("lang", "en"); }
        window.location.assign(url.toString());
        return window.dash_clientside.no_update;
    }
    """,
    Output(ids.LANG_TOGGLE, "id"),
    Input(ids.LANG_TOGGLE, "n_clicks"),
    State(ids.LANG, "data"),
)

CALLBACKS.clientside(
    """
    function (tick) {
        const now = new Date();
        const opts = {timeZone: "Asia/Shanghai", hour12: false};
        const date = now.toLocaleDateString("sv-SE", opts);
        const time = now.toLocaleTimeString("en-GB", opts);
        // two parts: a wall's header stacks them (the time large), a page's runs them on
        const part = function (name, text) {
            return {type: "Span", namespace: "dash_html_components",
                    props: {className: name, children: text}};
        };
        return [part("os-clock-date", date), " ", part("os-clock-time", time)];
    }
    """,
    Output(ids.CLOCK, "children"),
    Input(ids.CLOCK_TICK, "n_intervals"),
)

# the URL follows the filters (metric, category, stack, layer, street): shareable links
CALLBACKS.clientside(
    """
    function (values, stored, ids, storeIds) {
        const state = {};
        ids.forEach(function (id, i) { state[id.key] = values[i]; });
        storeIds.forEach(function (id, i) { state[id.key] = stored[i]; });
        if (!window.onescreen || !window.onescreen.syncQuery) {
            return;  // assets still loading: the URL already holds the initial state
        }
        return window.onescreen.syncQuery(state, window.onescreen.queryDefaults);
    }
    """,
    Input({"type": ids.QUERY, "key": ALL}, "value"),
    Input({"type": ids.QUERY_STORE, "key": ALL}, "data"),
    State({"type": ids.QUERY, "key": ALL}, "id"),
    State({"type": ids.QUERY_STORE, "key": ALL}, "id"),
)
