"""The incident-marker panel: every live critical and major incident of the view as a point,
drawn above the map's other layers (components/incident_markers.py)."""

from __future__ import annotations

from typing import Any

from dash import dcc

from components.incident_markers import EMPTY, marker_features, marker_layer
from data.incident_reads import live_incident_points
from panels.base import LivePanel, Look, Part, Rendered, View
from panels.reads import only_changed, read


def render(view: View, look: Look, kept: dict[str, Any]) -> Rendered:
    """The view's live critical and major incidents (all categories: danger is never filtered
    away); the layer is left alone when nothing changed, so rings keep pulsing smoothly."""
    points = read(live_incident_points, district=view.district, **view.when)
    data = marker_features(points.value, lang=look.lang, wall=look.wall, masked=look.masked)
    (value,), digests = only_changed({"markers": data}, kept.get("markers-sent"))
    return Rendered(values={"markers": value, "markers-sent": digests}, reads=(points,))


def create(look: Look, initial: Rendered | None = None) -> Any:
    """The markers' map layer (a child of the map), with the first answer if there is one."""
    return marker_layer(look.id_of("markers"), initial.values["markers"] if initial else EMPTY)


def sent_store(look: Look, initial: Rendered | None = None) -> dcc.Store:
    """Digest of the markers the browser holds, so a refresh that changed nothing sends nothing."""
    return dcc.Store(
        id=look.id_of("markers-sent"), data=initial.values["markers-sent"] if initial else None
    )


MARKERS = LivePanel(
    kind="markers",
    parts=(Part("markers", "data"),),
    render=render,
    # the markers shown stay; a failed first load leaves the layer empty
    fallback=lambda look: {},
    keeps=(Part("markers-sent", "data"),),
    create=create,
    # a district's live incidents, whichever category or street its viewer picked
    follows=(),
)
