"""Baseline refit: read the city's recent history, learn every device's normal (foresight/
baseline.py) and replace the stored baselines; run nightly by the maintenance loop and by
`rules refit`."""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy.engine import Engine

from data import foresight_store
from foresight.baseline import CityBaselines, fit_city, pooled_profiles

# devices fitted at a time: ~10 KB each while fitted (hour-of-week profiles, their text)
SLICE = 50_000


@dataclass
class RefitReport:
    """What a refit did and what it cost."""

    devices: int = 0
    readings: int = 0
    weekly: int = 0
    sources: dict[str, int] = field(default_factory=dict)
    read_s: float = 0.0
    fit_s: float = 0.0
    write_s: float = 0.0
    peak_rss_mb: float = 0.0

    def add(self, fitted: CityBaselines) -> None:
        """Count a slice's normals by kind and source."""
        self.weekly += int((fitted.slots == 168).sum())
        kinds, counts = np.unique(fitted.source, return_counts=True)
        for kind, count in zip(kinds.tolist(), counts.tolist(), strict=True):
            self.sources[str(kind)] = self.sources.get(str(kind), 0) + int(count)

    def summary(self) -> str:
        """One line for the log and the CLI."""
        sources = ", ".join(f"{k} {v:,}" for k, v in sorted(self.sources.items()))
        return (
            f"{self.devices:,} devices from {self.readings:,} readings ({sources}; "
            f"{self.weekly:,} by hour of week): read {self.read_s:.1f} s, fit {self.fit_s:.1f} s, "
            f"write {self.write_s:.1f} s; peak memory {self.peak_rss_mb:,.0f} MB"
        )


def refit_baselines(
    engine: Engine, *, days: int = 28, now: datetime | None = None, slice_devices: int = SLICE
) -> RefitReport:
    """Learn every active analog device's normal from the last `days` of readings: the pooled
    profiles over the whole city, each device's own `slice_devices` at a time (a whole 10M city
    at once would take tens of gigabytes), staged, then swapped in at once."""
    report = RefitReport()
    at = now or datetime.now(UTC)
    started = time.perf_counter()
    with engine.connect() as conn:
        targets = foresight_store.fit_targets(conn)
        ids = targets.device_id
        history = foresight_store.read_history(
            conn, device_ids=ids, since=at - timedelta(days=days)
        )
    report.read_s = time.perf_counter() - started
    street_type = np.unique(
        targets.street.astype(np.int64) * 65536 + targets.type_id, return_inverse=True
    )[1]
    type_index = np.unique(targets.type_id, return_inverse=True)[1]
    pooled = pooled_profiles(
        row=history.row, ts_s=history.ts_s, values=history.value.astype(np.float64),
        street_type=street_type, type_index=type_index,
    )  # fmt: skip
    # readings come in device order: each slice's are one run of them
    bounds = np.searchsorted(history.row, np.arange(0, len(ids) + slice_devices, slice_devices))
    with engine.connect() as conn:
        for n, start in enumerate(range(0, max(len(ids), 1), slice_devices)):
            stop = min(start + slice_devices, len(ids))
            began = time.perf_counter()
            fitted = fit_city(
                row=history.row[bounds[n] : bounds[n + 1]].astype(np.int64) - start,
                ts_s=history.ts_s[bounds[n] : bounds[n + 1]],
                values=history.value[bounds[n] : bounds[n + 1]].astype(np.float64),
                street_type=street_type[start:stop],
                type_index=type_index[start:stop],
                weekly=np.ones(stop - start, dtype=bool),
                pooled=pooled,
            )
            report.fit_s += time.perf_counter() - began
            began = time.perf_counter()
            foresight_store.stage_baselines(
                conn, device_ids=ids[start:stop], fitted=fitted, at=at, first=n == 0
            )
            conn.commit()
            report.write_s += time.perf_counter() - began
            report.add(fitted)
        began = time.perf_counter()
        foresight_store.publish_baselines(conn, at=at)
        conn.commit()
        report.write_s += time.perf_counter() - began
    report.devices, report.readings = len(ids), len(history.row)
    report.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return report


def baselines_age(engine: Engine) -> timedelta | None:
    """How old the stored baselines are (None: never fitted)."""
    with engine.connect() as conn:
        version = foresight_store.baselines_version(conn)
    if not version:
        return None
    fitted = datetime.fromisoformat(version.strip('"'))
    return datetime.now(UTC) - fitted
