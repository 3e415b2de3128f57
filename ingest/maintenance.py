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
) -> Maintenance:
    """Run upkeep now and periodically in a daemon thread."""
    stop = threading.Event()

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
