"""What a duty officer reads: the title and the one-sentence why of each early-warning finding,
in Chinese and English."""

from __future__ import annotations

from dataclasses import dataclass

from foresight.engine import Finding

WEEKDAYS_ZH = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
WEEKDAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class Words:
    """Titles (after the device's street and type name) and the why, zh and en."""

    title_zh: str
    title_en: str
    because_zh: str
    because_en: str
    slot_zh: str = ""
    slot_en: str = ""


def _num(value: float | int | None, decimals: int) -> str:
    return "—" if value is None else f"{float(value):.{max(decimals, 0)}f}"


def describe(finding: Finding, *, unit: str, decimals: int) -> Words:
    """The words for a finding of any early-warning rule."""
    f = finding.figures
    value = _num(finding.value, decimals)
    kind = finding.rule.kind
    if kind == "forecast":
        return _forecast(finding, unit=unit, decimals=decimals)
    if kind == "baseline":
        slot = int(f.get("slot") or 0)
        day, hour = divmod(slot, 24)
        slot_zh, slot_en = f"{WEEKDAYS_ZH[day]} {hour:02d}:00", f"{WEEKDAYS_EN[day]} {hour:02d}:00"
        usual = _num(f.get("usual"), decimals)
        return Words(
            title_zh=f"偏离日常规律（通常约 {usual}{unit}，当前 {value}{unit}）",
            title_en=f"away from its own routine (usually {usual} {unit}, now {value} {unit})",
            because_zh=f"该设备通常在{slot_zh}前后约 {usual}{unit}，当前 {value}{unit}",
            because_en=f"usually about {usual} {unit} around {slot_en}; now {value} {unit}",
            slot_zh=slot_zh,
            slot_en=slot_en,
        )
    return _health(finding, unit=unit, decimals=decimals, value=value)


def _forecast(finding: Finding, *, unit: str, decimals: int) -> Words:
    f = finding.figures
    minutes = max(round((f.get("expected_s") or 0) / 60), 0)
    limit = _num(f.get("limit"), decimals)
    above = (f.get("side") or 1) > 0
    dir_zh, dir_en = ("超过", "above") if above else ("低于", "below")
    trend_zh = "上升" if (f.get("slope_per_h") or 0) > 0 else "下降"
    slope = _num(f.get("slope_per_h"), decimals + 1)
    lo, hi = f.get("earliest_s"), f.get("latest_s")
    band_zh = band_en = ""
    if lo is not None:
        top_zh = f"{round(hi / 60)}" if hi is not None else "更久"
        top_en = f"{round(hi / 60)}" if hi is not None else "later"
        band_zh = f"，区间 {round(lo / 60)}–{top_zh} 分钟"
        band_en = f", band {round(lo / 60)}–{top_en} min"
    probability = round(100 * float(f.get("probability") or 0))
    window = round(float(f.get("window_s") or 0) / 60)
    horizon = round(float(f.get("horizon_s") or 0) / 60)
    value = _num(finding.value, decimals)
    return Words(
        title_zh=f"预计 {minutes} 分钟后{dir_zh}报警值 {limit}{unit}",
        title_en=f"forecast {dir_en} the alarm limit {limit} {unit} in {minutes} min",
        because_zh=(
            f"近 {window} 分钟 {int(f.get('points') or 0)} 个读数持续{trend_zh}"
            f"（每小时 {slope}{unit}），当前 {value}{unit}；{horizon} 分钟内超限概率 "
            f"{probability}%，预计 {minutes} 分钟后{dir_zh}报警值{band_zh}"
        ),
        because_en=(
            f"{int(f.get('points') or 0)} readings in the last {window} min trend at {slope} "
            f"{unit}/h, now {value} {unit}; {probability}% chance of going {dir_en} "
            f"{limit} {unit} within {horizon} min, expected in {minutes} min{band_en}"
        ),
    )


def _health(finding: Finding, *, unit: str, decimals: int, value: str) -> Words:
    f = finding.figures
    kind = finding.rule.kind
    if kind == "stuck":
        run = int(f.get("run") or 0)
        return Words(
            "疑似传感器卡滞",
            "sensor looks stuck",
            f"连续 {run} 次读数完全相同（{value}{unit}），而该设备平时数值有波动",
            f"the same value {value} {unit} {run} times in a row from a device that varies",
        )
    if kind == "jump":
        spike = _num(f.get("spike_value"), decimals)
        return Words(
            "疑似数据跳变",
            "implausible spike",
            f"读数跳到 {spike}{unit} 后立即回落到 {value}{unit}，不符合物理规律",
            f"a reading jumped to {spike} {unit} and straight back to {value} {unit}",
        )
    if kind == "clock":
        lag = round(abs(float(f.get("lag_s") or 0)) / 60)
        return Words(
            "设备时钟偏差",
            "device clock is off",
            f"读数时间与到达时间相差约 {lag} 分钟，设备时钟可能有误",
            f"readings carry timestamps about {lag} min away from when they arrive",
        )
    median = _num(f.get("peer_median"), decimals)
    return Words(
        "数值与周边同类设备不符",
        "implausible against its street peers",
        f"当前 {value}{unit}，同街道同类设备中位数 {median}{unit}",
        f"now {value} {unit}; the same kind of device in its street reads {median} {unit}",
    )
