"""Keeps the device-status snapshot current while the app runs: devices go offline over time."""

from __future__ import annotations

import logging
import threading

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from data import writes

log = logging.getLogger(__name__)


def start_status_refresher(
    engine: Engine, *, interval_s: float = 60.0, stop: threading.Event | None = None
) -> threading.Event:
    """Refresh the snapshot now and every interval_s in a daemon thread; set the event to stop."""
    stop = stop or threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                devices = writes.refresh_status(engine)
                log.info("status snapshot refreshed over %d devices", devices)
            except SQLAlchemyError as exc:
                # the database may be restarting; the snapshot's timestamp shows the staleness
                log.warning("status refresh failed, retrying in %.0f s: %s", interval_s, exc)
            stop.wait(interval_s)

    threading.Thread(target=loop, name="status-refresher", daemon=True).start()
    return stop
