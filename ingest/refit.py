"""Baseline refit: read the city's recent history, learn every device's normal (foresight/
baseline.py) and replace the stored baselines; run nightly by the maintenance loop and by
`rules refit`."""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from data import foresight_store
from foresight.baseline import fit_city


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

    def summary(self) -> str:
        """One line for the log and the CLI."""
        sources = ", ".join(f"{k} {v:,}" for k, v in sorted(self.sources.items()))
        return (
            f"{self.devices:,} devices from {self.readings:,} readings ({sources}; "
            f"{self.weekly:,} by hour of week): read {self.read_s:.1f} s, fit {self.fit_s:.1f} s, "
            f"write {self.write_s:.1f} s; peak memory {self.peak_rss_mb:,.0f} MB"
        )


def refit_baselines(engine: Engine, *, days: int = 28, now: datetime | None = None) -> RefitReport:
    """Learn every active analog device's normal from the last `days` of readings."""
    report = RefitReport()
    at = now or datetime.now(UTC)
    started = time.perf_counter()
    with engine.connect() as conn:
        targets = foresight_store.fit_targets(conn)
        ids = targets["id"].to_numpy(dtype=np.int64)
        history = foresight_store.read_history(
            conn, device_ids=ids, since=at - timedelta(days=days)
        )
    report.read_s = time.perf_counter() - started
    started = time.perf_counter()
    street_type = pd.factorize(
        targets["street_code"].astype(str) + ":" + targets["type_id"].astype(str)
    )[0]
    fitted = fit_city(
        row=history.row.astype(np.int64),
        ts_s=history.ts_s,
        values=history.value.astype(np.float64),
        street_type=np.asarray(street_type, dtype=np.int64),
        type_index=np.asarray(pd.factorize(targets["type_id"])[0], dtype=np.int64),
        weekly=np.ones(len(ids), dtype=bool),
    )
    report.fit_s = time.perf_counter() - started
    started = time.perf_counter()
    with engine.begin() as conn:
        foresight_store.write_baselines(conn, device_ids=ids, fitted=fitted, at=at)
    report.write_s = time.perf_counter() - started
    report.devices, report.readings = len(ids), len(history.row)
    report.weekly = int((fitted.slots == 168).sum())
    kinds, counts = np.unique(fitted.source, return_counts=True)
    report.sources = {str(k): int(c) for k, c in zip(kinds, counts, strict=True)}
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
