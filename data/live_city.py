"""What the live simulator reads from the store: the devices it plays, and which stay silent."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine


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
    """Every device with its type, district, street and status."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT id, type_id, district_adcode, street_code, status FROM device ORDER BY id"
            )
        ).all()
    return LiveDevices(
        device_id=np.array([r.id for r in rows], dtype=np.int64),
        type_id=np.array([r.type_id for r in rows], dtype=np.int64),
        district_adcode=np.array([r.district_adcode for r in rows], dtype=str),
        street_code=np.array([r.street_code for r in rows], dtype=str),
        status=np.array([r.status for r in rows], dtype=str),
    )


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
