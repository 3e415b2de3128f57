"""The device catalogue (12 scenario categories, 360 device types) read from data/reference CSVs."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"


class CatalogError(ValueError):
    """A catalogue file is malformed; the message names the file, row and field."""


@dataclass(frozen=True)
class Category:
    """A scenario category (气象, 防汛防台, …) and its share of all devices."""

    code: str
    name_zh: str
    name_en: str
    scenario_zh: str
    scenario_en: str
    color: str
    sort_order: int
    device_share: float


@dataclass(frozen=True)
class DeviceType:
    """A device model: what it measures, how often, its thresholds and simulation parameters."""

    type_id: int
    code: str
    category: str
    name_zh: str
    name_en: str
    measurand: str
    unit: str
    value_kind: str
    interval_s: int
    normal_min: float
    normal_max: float
    alarm_min: float | None
    alarm_max: float | None
    baseline: float
    daily_amplitude: float
    peak_hour: float
    noise_sd: float
    decimals: int
    share: float

    def level(self, value: float) -> int:
        """0 normal, 1 warning (outside the normal range), 2 alarm (beyond an alarm threshold)."""
        if (self.alarm_max is not None and value > self.alarm_max) or (
            self.alarm_min is not None and value < self.alarm_min
        ):
            return 2
        if value > self.normal_max or value < self.normal_min:
            return 1
        return 0


def _read(path: Path, columns: list[str]) -> list[dict[str, str]]:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise CatalogError(f"{path.name}: missing column(s) {', '.join(missing)}")
            return list(reader)
    except OSError as exc:
        raise CatalogError(f"cannot read {path}: {exc.strerror}") from None


def _number(row: dict[str, str], field: str, where: str, *, optional: bool = False) -> float | None:
    text = (row.get(field) or "").strip()
    if text == "":
        if optional:
            return None
        raise CatalogError(f"{where}: {field} is empty")
    try:
        return float(text)
    except ValueError:
        raise CatalogError(f"{where}: {field} = {text!r} is not a number") from None


def _int(row: dict[str, str], field: str, where: str) -> int:
    value = _number(row, field, where)
    assert value is not None
    if value != int(value):
        raise CatalogError(f"{where}: {field} = {value} is not a whole number")
    return int(value)


CATEGORY_COLUMNS = [
    "code",
    "name_zh",
    "name_en",
    "scenario_zh",
    "scenario_en",
    "color",
    "sort_order",
    "device_share",
]
TYPE_COLUMNS = [
    "type_id",
    "code",
    "category",
    "name_zh",
    "name_en",
    "measurand",
    "unit",
    "value_kind",
    "interval_s",
    "normal_min",
    "normal_max",
    "alarm_min",
    "alarm_max",
    "baseline",
    "daily_amplitude",
    "peak_hour",
    "noise_sd",
    "decimals",
    "share",
]


def load_categories(*, path: Path | None = None) -> list[Category]:
    """Categories in display order; shares must sum to 1."""
    path = path or REFERENCE_DIR / "categories.csv"
    categories = []
    for number, row in enumerate(_read(path, CATEGORY_COLUMNS), start=2):
        where = f"{path.name} line {number}"
        share = _number(row, "device_share", where)
        assert share is not None
        if not 0 < share <= 1:
            raise CatalogError(f"{where}: device_share must be in (0, 1], not {share}")
        categories.append(
            Category(
                code=row["code"].strip(),
                name_zh=row["name_zh"],
                name_en=row["name_en"],
                scenario_zh=row["scenario_zh"],
                scenario_en=row["scenario_en"],
                color=row["color"].strip(),
                sort_order=_int(row, "sort_order", where),
                device_share=share,
            )
        )
    codes = [c.code for c in categories]
    if len(set(codes)) != len(codes):
        raise CatalogError(f"{path.name}: duplicate category codes")
    total = sum(c.device_share for c in categories)
    if abs(total - 1) > 1e-6:
        raise CatalogError(f"{path.name}: device_share values sum to {total:.4f}, not 1")
    return sorted(categories, key=lambda c: c.sort_order)


def load_device_types(
    *, path: Path | None = None, categories: list[Category] | None = None
) -> list[DeviceType]:
    """Device types, validated against the categories and their own thresholds."""
    path = path or REFERENCE_DIR / "device_types.csv"
    known = {c.code for c in (categories if categories is not None else load_categories())}
    types: list[DeviceType] = []
    seen_ids: set[int] = set()
    seen_codes: set[str] = set()
    for number, row in enumerate(_read(path, TYPE_COLUMNS), start=2):
        where = f"{path.name} line {number}"
        t = DeviceType(
            type_id=_int(row, "type_id", where),
            code=row["code"].strip(),
            category=row["category"].strip(),
            name_zh=row["name_zh"],
            name_en=row["name_en"],
            measurand=row["measurand"],
            unit=row["unit"],
            value_kind=row["value_kind"].strip(),
            interval_s=_int(row, "interval_s", where),
            normal_min=_number(row, "normal_min", where),  # type: ignore[arg-type]
            normal_max=_number(row, "normal_max", where),  # type: ignore[arg-type]
            alarm_min=_number(row, "alarm_min", where, optional=True),
            alarm_max=_number(row, "alarm_max", where, optional=True),
            baseline=_number(row, "baseline", where),  # type: ignore[arg-type]
            daily_amplitude=_number(row, "daily_amplitude", where),  # type: ignore[arg-type]
            peak_hour=_number(row, "peak_hour", where),  # type: ignore[arg-type]
            noise_sd=_number(row, "noise_sd", where),  # type: ignore[arg-type]
            decimals=_int(row, "decimals", where),
            share=_number(row, "share", where),  # type: ignore[arg-type]
        )
        _validate_type(t, where, known)
        if t.type_id in seen_ids:
            raise CatalogError(f"{where}: duplicate type_id {t.type_id}")
        if t.code in seen_codes:
            raise CatalogError(f"{where}: duplicate code {t.code!r}")
        seen_ids.add(t.type_id)
        seen_codes.add(t.code)
        types.append(t)
    return types


def _validate_type(t: DeviceType, where: str, categories: set[str]) -> None:
    if t.category not in categories:
        raise CatalogError(f"{where}: unknown category {t.category!r}")
    if t.value_kind not in ("analog", "binary"):
        raise CatalogError(f"{where}: value_kind must be analog or binary, not {t.value_kind!r}")
    if t.type_id <= 0 or t.type_id > 32767:
        raise CatalogError(f"{where}: type_id must be between 1 and 32767")
    if t.interval_s <= 0:
        raise CatalogError(f"{where}: interval_s must be positive")
    if t.share <= 0:
        raise CatalogError(f"{where}: share must be positive")
    _validate_thresholds(t, where)


def _validate_thresholds(t: DeviceType, where: str) -> None:
    """The alarm thresholds outside the normal band, and healthy values inside it."""
    if t.normal_min > t.normal_max:
        raise CatalogError(f"{where}: normal_min {t.normal_min} is above normal_max {t.normal_max}")
    if t.alarm_min is not None and t.alarm_min > t.normal_min:
        raise CatalogError(f"{where}: alarm_min {t.alarm_min} is above normal_min {t.normal_min}")
    if t.alarm_max is not None and t.alarm_max < t.normal_max:
        raise CatalogError(f"{where}: alarm_max {t.alarm_max} is below normal_max {t.normal_max}")
    if t.alarm_min is None and t.alarm_max is None:
        raise CatalogError(f"{where}: a type needs at least one alarm threshold")
    if t.value_kind != "analog":
        return
    band = t.daily_amplitude + 3 * t.noise_sd
    if t.baseline - band < t.normal_min - 1e-9 and t.normal_min > 0:
        raise CatalogError(
            f"{where}: healthy values (baseline - amplitude - 3σ) fall below normal_min"
        )
    if t.baseline + band > t.normal_max + 1e-9:
        raise CatalogError(f"{where}: healthy values (baseline + amplitude + 3σ) exceed normal_max")


def expected_readings_per_day(
    *, devices_total: int, categories: list[Category], device_types: list[DeviceType]
) -> float:
    """Readings a day when devices_total devices split by category share and type share."""
    share = {c.code: c.device_share for c in categories}
    weight_in_category: dict[str, float] = {}
    for t in device_types:
        weight_in_category[t.category] = weight_in_category.get(t.category, 0.0) + t.share
    return sum(
        devices_total
        * share[t.category]
        * t.share
        / weight_in_category[t.category]
        * 86400
        / t.interval_s
        for t in device_types
    )
