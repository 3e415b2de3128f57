"""Background upkeep while the app runs: status snapshot every minute, retention (old readings,
rollups and ended sessions) every hour."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis import Redis
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from data import access, writes
from serving.events import announce_new_data

log = logging.getLogger(__name__)

CITY_UTC_OFFSET = timedelta(hours=8)


@dataclass
class Maintenance:
    """Handle on the running maintenance thread."""

    stop_event: threading.Event
    thread: threading.Thread

    def stop(self, *, timeout_s: float = 30.0) -> None:
        """Ask the loop to end and wait until its current round has finished."""
        self.stop_event.set()
        self.thread.join(timeout_s)


def start_maintenance(
    engine: Engine,
    *,
    status_interval_s: float = 60.0,
    retention_interval_s: float = 3600.0,
    reading_retention_days: int = 35,
    rollup_retention_days: int = 400,
    redis: Redis | None = None,
    refit_every_s: float | None = 86400.0,
) -> Maintenance:
    """Run upkeep now and periodically in a daemon thread (baselines in one of their own)."""
    stop = threading.Event()
    if refit_every_s is not None:
        threading.Thread(
            target=_refit_loop,
            args=(engine, stop, refit_every_s),
            name="onescreen-refit",
            daemon=True,
        ).start()

    def loop() -> None:
        next_retention = 0.0
        while not stop.is_set():
            try:
                devices = writes.refresh_status(engine)
                announce_new_data(source="status", client=redis)
                log.info("status snapshot refreshed over %d devices", devices)
                if time.monotonic() >= next_retention:
                    today = (datetime.now(UTC) + CITY_UTC_OFFSET).date()
                    dropped = writes.apply_retention(
                        engine,
                        today=today,
                        reading_days=reading_retention_days,
                        rollup_days=rollup_retention_days,
                    )
                    if dropped:
                        log.info("retention dropped %s", ", ".join(dropped))
                    forgotten = access.purge_sessions(engine)
                    if forgotten:
                        log.info("forgot %d ended sessions", forgotten)
                    next_retention = time.monotonic() + retention_interval_s
            except SQLAlchemyError as exc:
                # the database may be restarting; the snapshot's timestamp shows the staleness
                log.warning("maintenance failed, retrying in %.0f s: %s", status_interval_s, exc)
            stop.wait(status_interval_s)

    thread = threading.Thread(target=loop, name="onescreen-maintenance", daemon=True)
    thread.start()
    return Maintenance(stop_event=stop, thread=thread)


def _refit_loop(engine: Engine, stop: threading.Event, every_s: float) -> None:
    """Refit the baselines when missing or older than `every_s`; a seed-scale refit takes
    minutes, so it runs apart from the minute-by-minute status snapshot."""
    from ingest.refit import baselines_age, refit_baselines

    while not stop.is_set():
        try:
            age = baselines_age(engine)
            if age is None or age.total_seconds() >= every_s:
                log.info("baselines refitted: %s", refit_baselines(engine).summary())
        except SQLAlchemyError as exc:
            log.warning("baseline refit failed, retrying later: %s", str(exc).splitlines()[0])
        stop.wait(min(every_s, 600.0))
