"""The `seed` command: generate the synthetic city and write it through the real ingest path."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from data import catalog, event_store, geo, writes
from data.catalog import DeviceType
from data.errors import AlreadySeeded
from data.incidents import ensure_default_teams
from data.migrate import require_current_schema
from data.reference_data import GRID_RESOLUTION, load_reference_data, streets_frame
from data.reference_reads import district_codes, grid_cell_ids
from data.resources import insert_units
from ingest.grouping import group_pass
from simulator.city import (
    SCALES,
    City,
    Geography,
    IncidentBook,
    iter_reading_batches,
    plan_city,
    record_incidents,
)
from simulator.units import plan_units

log = logging.getLogger(__name__)

URBAN_SUFFIX = "街道"


@dataclass(frozen=True)
class SeedReport:
    """What a seed run wrote and how long it took."""

    scale: str
    random_seed: int
    devices: int
    readings: int
    incidents: int
    start: datetime
    end: datetime
    seconds: float
    history_start: datetime  # the households' and near-limit devices' weeks of readings
    readings_seconds: float

    @property
    def readings_per_second(self) -> float:
        """Readings written per second of the reading phase."""
        return self.readings / self.readings_seconds if self.readings_seconds else 0.0


def geography_from_store(engine: Engine) -> tuple[Geography, dict[str, tuple[str, str]]]:
    """The streets as the generator needs them, plus their names for incident titles."""
    streets = streets_frame(engine)
    geography = Geography(
        street_codes=streets["code"].to_numpy(dtype=str),
        street_districts=streets["district_adcode"].to_numpy(dtype=str),
        street_is_urban=streets["name_zh"].str.endswith(URBAN_SUFFIX).to_numpy(),
        street_geoms=list(streets.geometry),
        street_area_km2=streets["area_km2"].to_numpy(dtype=float),
    )
    names = {
        code: (zh, en)
        for code, zh, en in zip(
            streets["code"], streets["name_zh"], streets["name_en"], strict=True
        )
    }
    return geography, names


def seed_city(
    engine: Engine,
    *,
    scale: str,
    random_seed: int,
    end: datetime | None = None,
    reset: bool = False,
    progress: Callable[[int], object] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> SeedReport:
    """Generate and store a city; refuses to overwrite an existing one unless reset=True."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    require_current_schema(engine)
    _clear_or_refuse(engine, reset=reset)

    started = time.perf_counter()
    city, device_types, street_names = _plan_and_insert_devices(
        engine, scale=scale, random_seed=random_seed, end=end
    )
    if on_total:
        on_total(len(city.devices))
    book, readings, readings_seconds = _write_readings(
        engine,
        city=city,
        device_types=device_types,
        street_names=street_names,
        random_seed=random_seed,
        progress=progress,
    )
    incidents, events = book.frames()
    with engine.begin() as conn:
        if len(incidents):
            writes.insert_incidents(conn, incidents, events)
            # the history's storms as the rules pass would have grouped them: one event each
            if event_store.has_event_groups(conn):
                group_pass(conn, now=city.end, lookback=city.end - city.history_start)
    writes.analyze(engine)
    # the seeded day replays with its devices as they were: a frame an hour from its readings
    writes.rebuild_status_history(engine, start=city.start, end=city.end)
    writes.refresh_status(engine, at=city.end)
    writes.analyze(engine)
    report = SeedReport(
        scale=scale,
        random_seed=random_seed,
        devices=len(city.devices),
        readings=readings,
        incidents=len(incidents),
        start=city.start,
        end=city.end,
        seconds=time.perf_counter() - started,
        readings_seconds=readings_seconds,
        history_start=city.history_start,
    )
    _record_seed_meta(engine, report=report)
    return report


def _clear_or_refuse(engine: Engine, *, reset: bool) -> None:
    """Empty the city tables, or raise AlreadySeeded when a seeded city exists and reset is off."""
    existing = writes.get_meta(engine, key="seed")
    if existing and not reset:
        raise AlreadySeeded(
            f"the database already holds a synthetic city (scale {existing.get('scale')}, "
            f"seed {existing.get('random_seed')}, {existing.get('devices')} devices, generated "
            f"{existing.get('generated_at')}). Nothing was changed; run `seed --reset` to "
            "replace it."
        )
    if reset or writes.has_devices(engine):
        writes.clear_city(engine)


def _plan_and_insert_devices(
    engine: Engine, *, scale: str, random_seed: int, end: datetime | None
) -> tuple[City, list[DeviceType], dict[str, tuple[str, str]]]:
    """Load reference data, plan the city over the stored streets and insert its devices."""
    load_reference_data(engine)
    ensure_default_teams(engine)
    categories = catalog.load_categories()
    device_types = catalog.load_device_types()
    geography, street_names = geography_from_store(engine)
    end = (end or datetime.now(UTC)).astimezone(UTC).replace(second=0, microsecond=0)
    city = plan_city(
        geography=geography,
        categories=categories,
        device_types=device_types,
        scale=SCALES[scale],
        random_seed=random_seed,
        end=end,
    )
    city.devices["cell"] = _cells_in_grid(engine, city)
    fleet = plan_units(
        geography,
        devices=len(city.devices),
        district_names=district_codes(engine),
        random_seed=random_seed,
    )
    with engine.begin() as conn:
        writes.insert_devices(conn, city.devices)
        insert_units(conn, fleet)
    return city, device_types, street_names


def _write_readings(
    engine: Engine,
    *,
    city: City,
    device_types: list[DeviceType],
    street_names: dict[str, tuple[str, str]],
    random_seed: int,
    progress: Callable[[int], object] | None,
) -> tuple[IncidentBook, int, float]:
    """Write readings batch by batch, noting incidents; returns the book, count and COPY seconds."""
    book = IncidentBook()
    incident_rng = np.random.default_rng([random_seed, 7])
    readings = 0
    readings_seconds = 0.0
    with engine.connect() as conn:
        device_index = writes.load_device_index(conn)
    for batch in iter_reading_batches(city, device_types):
        t0 = time.perf_counter()
        with engine.begin() as conn:
            readings += writes.bulk_copy_readings(conn, batch, devices=device_index)
        readings_seconds += time.perf_counter() - t0
        record_incidents(
            book,
            city=city,
            batch=batch,
            device_types=device_types,
            street_names=street_names,
            rng=incident_rng,
        )
        if progress:
            progress(len(np.unique(batch.device_id)) if len(batch) else 0)
    return book, readings, readings_seconds


def _record_seed_meta(engine: Engine, *, report: SeedReport) -> None:
    """Note what was seeded in app_meta, which later runs read to refuse overwriting it."""
    with engine.begin() as conn:
        writes.set_meta(
            conn,
            key="seed",
            value={
                "scale": report.scale,
                "random_seed": report.random_seed,
                "devices": report.devices,
                "readings": report.readings,
                "incidents": report.incidents,
                "window_start": report.start.isoformat(),
                "window_end": report.end.isoformat(),
                "history_start": report.history_start.isoformat(),
                "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )


def _cells_in_grid(engine: Engine, city: City) -> pd.Series:
    """Each device's H3 cell, or missing where the grid has no such cell (coastline edges)."""
    cells = geo.point_cells(
        city.devices["lon"].to_numpy(), city.devices["lat"].to_numpy(), resolution=GRID_RESOLUTION
    )
    known = np.isin(cells, grid_cell_ids(engine))
    return pd.Series(cells, dtype="Int64").where(known)
