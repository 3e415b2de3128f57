"""What each monitor stands for (device.served, revision 0012): the households an outage
monitor's transformer area feeds, imported from the grid operator's list."""

from __future__ import annotations

import csv
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from data.writes import copy_rows

MAX_BYTES = 64 * 1024 * 1024
MAX_SERVED = 100_000
COLUMNS = ("device_code", "served")


class ServedImportError(ValueError):
    """A households file cannot be imported; the message says which line and why."""


def _rows(path: Path) -> list[tuple[str, int | None]]:
    """The file's (device code, households) pairs, each checked; an empty count is unknown."""
    if not path.is_file():
        raise ServedImportError(f"{path}: no such file")
    if path.stat().st_size > MAX_BYTES:
        raise ServedImportError(f"{path}: larger than {MAX_BYTES // 2**20} MB")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ())[:2] != COLUMNS:
            raise ServedImportError(f"{path}: the header must begin {','.join(COLUMNS)}")
        rows: dict[str, int | None] = {}
        for line, row in enumerate(reader, start=2):
            code, text = (row.get("device_code") or "").strip(), (row.get("served") or "").strip()
            if not code or len(code) > 64:
                raise ServedImportError(f"line {line}: a device code is needed (at most 64)")
            if code in rows:
                raise ServedImportError(f"line {line}: device {code} is listed twice")
            if text and not (text.isdigit() and int(text) <= MAX_SERVED):
                raise ServedImportError(
                    f"line {line}: households must be a whole number 0–{MAX_SERVED:,}, "
                    f"not {text[:20]!r}"
                )
            rows[code] = int(text) if text else None
    if not rows:
        raise ServedImportError(f"{path}: no rows")
    return list(rows.items())


def import_served(engine: Engine, *, path: Path) -> tuple[int, int]:
    """Set the households of each listed device, all or nothing (an unknown device code
    refuses the whole file); returns how many were listed and how many changed."""
    rows = _rows(path)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TEMP TABLE served_in (code text, served int) ON COMMIT DROP"))
        copy_rows(conn, table="served_in", columns=["code", "served"], rows=iter(rows))
        unknown = (
            conn.execute(
                sa.text(
                    "SELECT s.code FROM served_in s LEFT JOIN device d ON d.code = s.code"
                    " WHERE d.id IS NULL ORDER BY s.code LIMIT 5"
                )
            )
            .scalars()
            .all()
        )
        if unknown:
            raise ServedImportError(
                "no device with code " + ", ".join(unknown) + ": nothing was imported"
            )
        result = conn.execute(
            sa.text(
                "UPDATE device d SET served = s.served FROM served_in s"
                " WHERE d.code = s.code AND d.served IS DISTINCT FROM s.served"
            )
        )
    return len(rows), int(result.rowcount or 0)
