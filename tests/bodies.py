"""A request body for tests of body limits: `total` bytes that count how much was read."""

from __future__ import annotations

import io


class CountingBody(io.RawIOBase):
    """A request body of `total` bytes of `fill` that counts what was read of it."""

    def __init__(self, total: int, fill: bytes = b" ") -> None:
        self.total, self.taken, self.fill = total, 0, fill

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        n = min(len(buffer), self.total - self.taken)
        buffer[:n] = self.fill * n
        self.taken += n
        return n
