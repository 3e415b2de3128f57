"""What the live simulator reads from the store: the devices it plays, and which stay silent."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from data.bulk import STATUS_CODES, copy_columns, status_code_sql


@dataclass(frozen=True)
class LiveDevices:
    """Devices as columns, ordered by id."""

    device_id: np.ndarray  # int64
    type_id: np.ndarray  # int64
    district_adcode: np.ndarray  # str
    street_code: np.ndarray  # str
    status: np.ndarray  # str: active, maintenance, retired

    def __len__(self) -> int:
        return len(self.device_id)


def load_live_devices(engine: Engine) -> LiveDevices:
    """Every device with its type, district, street and status (a binary COPY: a 10M city's
    rows as Python objects would take gigabytes)."""
    statuses = sorted(STATUS_CODES, key=STATUS_CODES.__getitem__)
    with engine.connect() as conn:
        rows = copy_columns(
            conn,
            sql=f"SELECT id, type_id, district_adcode::int4, street_code::int4,"
            f" {status_code_sql()} FROM device ORDER BY id",
            columns=(
                ("id", "int8"),
                ("type", "int2"),
                ("district", "int4"),
                ("street", "int4"),
                ("status", "int2"),
            ),
        )
    return LiveDevices(
        device_id=rows["id"],
        type_id=rows["type"].astype(np.int64),
        district_adcode=_codes(rows["district"], digits=6),
        street_code=_codes(rows["street"], digits=9),
        status=np.array(statuses)[rows["status"]],
    )


def _codes(numbers: np.ndarray, *, digits: int) -> np.ndarray:
    """Numeric codes back as fixed-width strings, each distinct one converted once."""
    distinct, index = np.unique(numbers, return_inverse=True)
    return np.array([str(n).zfill(digits) for n in distinct.tolist()], dtype=f"<U{digits}")[index]


def offline_device_ids(engine: Engine, *, rule_code: str = "offline") -> np.ndarray:
    """Ids of devices with an unresolved incident of `rule_code` (sorted int64)."""
    with engine.connect() as conn:
        ids = conn.execute(
            sa.text(
                "SELECT DISTINCT device_id FROM incident"
                " WHERE rule_code = :rule AND status <> 'resolved' AND device_id IS NOT NULL"
                " ORDER BY device_id"
            ),
            {"rule": rule_code},
        ).scalars()
        return np.fromiter(ids, dtype=np.int64)
