"""Renewing answers in the background when a worker is busy: at most `slots` computations at
once, the rest queued while their previous copy is served.

A web worker that computes every due answer in the request that asked for it does well until
the answers asked for per second outgrow its share of the machine: then every request waits
behind every other's computation and all of them time out together. Here a request that finds
its answer due takes one of a few computing slots and answers fresh; when no slot is free and a
recent copy exists, the request is answered with that copy at once and the renewal waits its
turn in a short queue that `slots` daemon threads work through. Under overload the answers age
(and their freshness badges say so) instead of the requests failing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)
# a worker whose renewals waited their turn too long, or found the queue full, this recently is
# pressed (`Renewer.pressed`)
PRESSED_SECONDS = 10.0
# a renewal that waited this long is dropped, not run: the lock it was queued under
# (serving.shared_cache.LOCK_SECONDS) may be gone and another worker renewing the same answer
EXPIRE_SECONDS = 25.0


class Renewer:
    """`slots` computations at a time in this process; `later(job)` queues one for a slot."""

    def __init__(
        self,
        *,
        slots: int,
        queue_size: int,
        max_age_seconds: float,
        pressed_wait_seconds: float = 1.0,
    ) -> None:
        if slots < 1 or queue_size < 1 or max_age_seconds <= 0 or pressed_wait_seconds <= 0:
            raise ValueError(
                "slots and queue_size must be at least 1, max_age_seconds and "
                "pressed_wait_seconds positive"
            )
        self.slots = slots
        # the oldest copy served while its renewal waits; older ones are computed by the request
        self.max_age_seconds = max_age_seconds
        # a renewal that waited this long for its turn means the worker falls behind
        self.pressed_wait_seconds = pressed_wait_seconds
        self._free = threading.BoundedSemaphore(slots)
        self._queue: queue.Queue[tuple[float, Callable[[], object]]] = queue.Queue(queue_size)
        self._started = False
        self._start_lock = threading.Lock()
        self._pressed_at = -float("inf")
        self._running = 0
        self._running_lock = threading.Lock()

    def try_slot(self) -> bool:
        """Take a computing slot if one is free now (give it back with `release`)."""
        return self._free.acquire(blocking=False)

    def release(self) -> None:
        """Give back a slot taken with `try_slot`."""
        self._free.release()

    def later(self, job: Callable[[], object]) -> bool:
        """Queue `job` for the next free slot; False when the queue is full (not queued)."""
        self._start()
        try:
            self._queue.put_nowait((time.monotonic(), job))
        except queue.Full:
            self._pressed_at = time.monotonic()
            return False
        return True

    @property
    def pressed(self) -> bool:
        """Whether renewals lately waited over `pressed_wait_seconds` or found the queue full."""
        # not judged by the age of the copies served: viewers that slow down because the worker
        # was pressed make their copies older themselves, and would keep it pressed for ever
        return time.monotonic() - self._pressed_at < PRESSED_SECONDS

    @property
    def waiting(self) -> int:
        """Renewals queued and not yet started."""
        return self._queue.qsize()

    @property
    def running(self) -> int:
        """Renewals taken from the queue and not finished (their slot given back)."""
        return self._running

    def _start(self) -> None:
        # threads made on first use: forked gunicorn workers never inherit a parent's
        with self._start_lock:
            if self._started:
                return
            for number in range(self.slots):
                threading.Thread(
                    target=self._work, name=f"onescreen-renew-{number}", daemon=True
                ).start()
            self._started = True

    def _work(self) -> None:
        while True:
            queued, job = self._queue.get()
            with self._running_lock:
                self._running += 1
            try:
                self._run(job, queued=queued)
            finally:
                with self._running_lock:
                    self._running -= 1

    def _run(self, job: Callable[[], object], *, queued: float) -> None:
        with self._free:
            # waited for the slot as well as in the queue
            waited = time.monotonic() - queued
            if waited > self.pressed_wait_seconds:
                self._pressed_at = time.monotonic()
            if waited > EXPIRE_SECONDS:
                return
            try:
                job()
            except Exception as error:  # its copy stays, and a later request tries again
                log.warning("background renewal failed: %s", error)
