"""The demo city's resources: crews, vehicles and facilities per district (pure, deterministic).

City-wide totals at seed scale (510k devices) are ~5,400 units, split over the districts by
population (every district has at least one of each kind) and placed in their streets, the
街道 more than the towns; smaller scales have proportionally fewer, never fewer than one per
district and kind. A share of the pump and generator trucks are the city's reserve (no home
district), kept at depots in the districts they are placed in.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.city import DISTRICT_POPULATION, Geography, allocate, sample_in

# kind: (units city-wide at seed scale, code prefix, share held by the city, capacity range)
KINDS: dict[str, tuple[int, str, float, tuple[int, int] | None]] = {
    "street_team": (936, "ST", 0.0, None),
    "flood_crew": (600, "FC", 0.0, None),
    "pump_truck": (900, "PT", 0.1, (300, 3000)),  # m³/h
    "power_crew": (500, "PC", 0.0, None),
    "generator_truck": (150, "GT", 0.2, (200, 1000)),  # kW
    "water_crew": (400, "WC", 0.0, None),
    "gas_crew": (350, "GC", 0.0, None),
    "repair_van": (600, "RV", 0.0, None),
    "fire_liaison": (250, "FL", 0.0, None),
    "pump_station": (250, "PS", 0.0, (2000, 40000)),  # m³/h
    "depot": (64, "DP", 0.0, None),
    "shelter": (400, "SH", 0.0, (200, 5000)),  # people
}
KIND_NAMES = {
    "street_team": ("城运网格队", "Street team"),
    "flood_crew": ("防汛抢险队", "Flood crew"),
    "pump_truck": ("排水泵车", "Pump truck"),
    "power_crew": ("电力抢修班", "Power crew"),
    "generator_truck": ("应急发电车", "Generator truck"),
    "water_crew": ("供水抢修班", "Water crew"),
    "gas_crew": ("燃气抢修班", "Gas crew"),
    "repair_van": ("市政抢修车", "Repair van"),
    "fire_liaison": ("消防联络组", "Fire liaison"),
    "pump_station": ("排水泵站", "Pumping station"),
    "depot": ("物资仓库", "Depot"),
    "shelter": ("避难场所", "Shelter"),
}
SEED_DEVICES = 510_000
# crews not on shift when the city starts
OFF_DUTY_SHARE = 0.12
CREWS = frozenset({"street_team", "flood_crew", "power_crew", "water_crew", "gas_crew"})


def plan_units(
    geography: Geography,
    *,
    devices: int,
    district_names: dict[str, tuple[str, str]],
    random_seed: int,
) -> pd.DataFrame:
    """The units of a city of `devices` devices: the import columns of data/resources.py."""
    rng = np.random.default_rng([random_seed, 21])
    districts = sorted(set(geography.street_districts.tolist()))
    weights = np.array([DISTRICT_POPULATION.get(d, 50.0) for d in districts])
    # a city keeps its fleet whatever share of its sensors a demo simulates: a quarter at least
    factor = min(1.0, max(0.25, devices / SEED_DEVICES))
    parts = []
    for kind, (total, prefix, city_share, capacity) in KINDS.items():
        extra = max(0, round(total * factor) - len(districts))
        per_district = allocate(extra, weights) + 1 if extra else np.ones(len(districts), int)
        for district, count in zip(districts, per_district.tolist(), strict=True):
            lon, lat = _places(geography, district, count, rng)
            parts.append(
                _district_units(
                    kind,
                    prefix=prefix,
                    district=district,
                    names=district_names.get(district, (district, district)),
                    city=rng.random(count) < city_share,
                    lon=lon,
                    lat=lat,
                    capacity=capacity,
                    rng=rng,
                )
            )
    return pd.concat(parts, ignore_index=True)


def _places(
    geography: Geography, district: str, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """`count` points in the district's streets, the 街道 three times as likely as towns."""
    streets = np.flatnonzero(geography.street_districts == district)
    weight = np.where(geography.street_is_urban[streets], 3.0, 1.0) * np.sqrt(
        geography.street_area_km2[streets]
    )
    chosen = rng.choice(streets, size=count, p=weight / weight.sum())
    lon, lat = np.empty(count), np.empty(count)
    for street in np.unique(chosen):
        at = np.flatnonzero(chosen == street)
        geom = geography.street_geoms[street]
        centre = geom.representative_point()
        spread = max(0.3, 0.35 * np.sqrt(geography.street_area_km2[street])) / 105.0
        points = sample_in(geom, len(at), rng, center=(centre.x, centre.y), spread_deg=spread)
        lon[at], lat[at] = points[:, 0], points[:, 1]
    return lon, lat


def _district_units(
    kind: str,
    *,
    prefix: str,
    district: str,
    names: tuple[str, str],
    city: np.ndarray,
    lon: np.ndarray,
    lat: np.ndarray,
    capacity: tuple[int, int] | None,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """One district's units of one kind."""
    count = len(lon)
    seq = np.arange(1, count + 1)
    kind_zh, kind_en = KIND_NAMES[kind]
    off = (rng.random(count) < OFF_DUTY_SHARE) if kind in CREWS else np.zeros(count, bool)
    return pd.DataFrame(
        {
            "code": [f"{prefix}-{district}-{n:03d}" for n in seq],
            "kind_code": kind,
            "name_zh": [
                f"{'市' if c else names[0]}{kind_zh} {n} 号" for c, n in zip(city, seq, strict=True)
            ],
            "name_en": [
                f"{'City' if c else names[1]} {kind_en.lower()} {n}"
                for c, n in zip(city, seq, strict=True)
            ],
            "district_adcode": [None if c else district for c in city],
            "lent_to": None,
            "capacity": (
                rng.integers(capacity[0], capacity[1] + 1, size=count) if capacity else None
            ),
            "status": np.where(off, "off_duty", "available"),
            "lon": lon,
            "lat": lat,
        }
    )
