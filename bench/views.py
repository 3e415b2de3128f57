"""Distinct views for the load bench: what 200 district managers would watch, each their own
district page with their own category, street and map metric, as the callback bodies a browser
would post for it.

One district page's refresh is recorded in Chromium; each view's bodies are that recording with
the view's values where the browser would put them (the page's query controls, its district
store, the device layer's bounds) and without the answers' digests, so that each view's first
refresh asks for everything, as a newly opened page does.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

import sqlalchemy as sa

from components.state import METRICS

RECORDED_DISTRICT = "310115"


@dataclass(frozen=True)
class DistrictView:
    """One district page as one manager set it up."""

    district: str
    category: str  # "" = every category
    street: str  # "" = the whole district
    metric: str

    @property
    def key(self) -> str:
        """The view's name, also its key among the recorded bodies."""
        return f"view:{self.district}:{self.category}:{self.street}:{self.metric}"


def distinct_views(engine: sa.Engine, count: int) -> list[DistrictView]:
    """`count` different views spread over the 16 districts: the first 16 one per district,
    then each district again with another metric, category and street."""
    with engine.connect() as conn:
        district_rows = conn.execute(sa.text("SELECT adcode FROM district ORDER BY adcode"))
        districts = list(district_rows.scalars())
        categories = list(
            conn.execute(sa.text("SELECT code FROM device_category ORDER BY code")).scalars()
        )
        streets: dict[str, list[str]] = {}
        for code, street in conn.execute(
            sa.text("SELECT district_adcode, code FROM street ORDER BY district_adcode, code")
        ):
            streets.setdefault(code, []).append(street)
    choices = ["", *categories]
    views = []
    for index in range(count):
        district = districts[index % len(districts)]
        turn = index // len(districts)
        own = streets.get(district) or [""]
        views.append(
            DistrictView(
                district=district,
                metric=METRICS[turn % len(METRICS)],
                category=choices[(turn // len(METRICS)) % len(choices)],
                # every other turn a street of the district, a different one each time
                street=own[(turn // 2) % len(own)] if turn % 2 else "",
            )
        )
    if len({view.key for view in views}) != len(views):
        raise ValueError(f"only {len({v.key for v in views})} distinct views for {count}")
    return views


def district_bounds(engine: sa.Engine) -> dict[str, list[list[float]]]:
    """Each district's bounding box as a map's bounds property: [[south, west], [north, east]]."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT adcode, ST_YMin(b), ST_XMin(b), ST_YMax(b), ST_XMax(b)"
                " FROM (SELECT adcode, ST_Extent(geom)::box2d AS b FROM district GROUP BY 1) x"
            )
        ).all()
    return {row[0]: [[row[1], row[2]], [row[3], row[4]]] for row in rows}


def bodies_for(view: DistrictView, recorded: list[dict], bounds: list[list[float]]) -> list[dict]:
    """The recorded district refresh as `view`'s browser would post it."""
    text = json.dumps(recorded).replace(RECORDED_DISTRICT, view.district)
    bodies = json.loads(text)
    values = {"category": view.category, "street": view.street, "metric": view.metric}
    for body in bodies:
        for item in body.get("inputs") or []:
            ident = item.get("id")
            if isinstance(ident, dict) and ident.get("key") in values:
                item["value"] = values[ident["key"]]
            elif item.get("property") == "bounds":
                item["value"] = copy.deepcopy(bounds)
        for item in body.get("state") or []:
            # digests of what the page holds: a new page holds nothing yet
            if str(item.get("id", "")).endswith("-sent"):
                item["value"] = None
    return bodies
