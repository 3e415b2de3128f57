"""The units panel: the view's crews, vehicles and facilities on its map (a scenario's: those
serving it), and a resources summary beside it: units by status, the playbook's progress, the
streets no available unit reaches in time."""

from __future__ import annotations

from typing import Any

from dash import dcc, html

from components.i18n import t
from components.panels import panel, unavailable
from components.resources import summary
from components.unit_layer import unit_features, unit_layers
from data.dispatch import COVERAGE_TARGET_S, coverage
from data.playbooks import progress
from data.resources import kinds, status_counts, unit_positions
from panels.base import LivePanel, Look, Part, Rendered, View
from panels.reads import asof_payload, only_changed, read


def render(view: View, look: Look, kept: dict[str, Any]) -> Rendered:
    """The view's units as two layers, sent only when they changed."""
    rows = read(unit_positions, district=view.district, skill=view.category, **view.when)
    parked, moving = unit_features(rows.value, lang=look.lang, wall=look.wall, masked=look.masked)
    (parked_value, moving_value), digests = only_changed(
        {"units": parked, "moving": moving}, kept.get("units-sent")
    )
    return Rendered(
        values={"units": parked_value, "moving": moving_value, "units-sent": digests},
        reads=(rows,),
    )


def create(look: Look, initial: Rendered | None = None) -> list:
    """The units' map layers (children of a map), with the first answer if there is one."""
    values = initial.values if initial else {}
    return unit_layers(look.id_of, parked=values.get("units"), moving=values.get("moving"))


def sent_store(look: Look, initial: Rendered | None = None) -> dcc.Store:
    """Digests of the layers the browser holds."""
    return dcc.Store(
        id=look.id_of("units-sent"), data=initial.values["units-sent"] if initial else None
    )


UNITS = LivePanel(
    kind="units",
    parts=(Part("units", "data"), Part("moving", "data")),
    render=render,
    fallback=lambda look: {},
    keeps=(Part("units-sent", "data"),),
    create=create,
    # the district's units of the chosen category's skill, whichever street is picked
    follows=("category",),
)


def render_summary(view: View, look: Look, _kept: dict[str, Any]) -> Rendered:
    """A scenario's resources in the view's place."""
    skill = view.category or "flood"
    counts = read(status_counts, district=view.district, skill=skill, **view.when)
    names = read(kinds)
    done = read(progress, district=view.district)
    streets = read(coverage, skill=skill)
    blind = [
        s
        for s in streets.value
        if s["blind"] and (view.district is None or s["district_adcode"] == view.district)
    ]
    kind_names = {k.code: (k.name_zh, k.name_en) for k in names.value if k.unit_class != "facility"}
    return Rendered(
        values={
            "resources": summary(
                {k: v for k, v in counts.value.items() if k in kind_names},
                kind_names,
                done.value.get(skill),
                blind,
                lang=look.lang,
                target_min=COVERAGE_TARGET_S // 60,
            )
        },
        reads=(counts, names, done, streets),
    )


def create_summary(look: Look, initial: Rendered | None = None) -> html.Section:
    """The resources panel's frame."""
    return panel(
        t("panel.resources", look.lang),
        html.Div(
            id=look.id_of("resources"),
            className="os-resources",
            children=initial.values["resources"] if initial else None,
        ),
        class_name="os-panel-resources",
        fresh=look.fresh_of("resources"),
        asof=asof_payload(*initial.reads) if initial else None,
    )


RESOURCES = LivePanel(
    kind="resources",
    parts=(Part("resources", "children"),),
    render=render_summary,
    fallback=lambda look: {"resources": unavailable(t("panel.unavailable", look.lang))},
    create=create_summary,
    badges=("resources",),
)
