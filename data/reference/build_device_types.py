"""Build categories.csv and device_types.csv: 12 scenario categories × 30 device types = 360.

Synthetic but realistic: measurands, units and thresholds follow common practice for each
scenario; model variants differ in reporting interval and range. Run:
    python data/reference/build_device_types.py
The build asserts that 510,000 devices split by these shares send 8.4 million readings a day (±1%).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run as a script from anywhere

from data import catalog  # noqa: E402

DEVICES = 510_000
READINGS_PER_DAY = 8_400_000

# fmt: off
# code, name_zh, name_en, scenario_zh, scenario_en, colour, device share
CATEGORIES = [
    ("weather", "气象", "Weather", "气象监测", "Weather monitoring", "#4fc3f7", 0.02),
    ("flood", "防汛防台", "Flood control", "防汛防台与水位", "Flood, typhoon & water level",
     "#2979ff", 0.06),
    ("power", "电力", "Power", "电力保障", "Power supply", "#ffd54f", 0.08),
    ("water", "供水", "Water supply", "供水与管网", "Water supply & pipes", "#26c6da", 0.08),
    ("gas", "燃气", "Gas", "燃气安全", "Gas safety", "#ff8a65", 0.07),
    ("fire", "消防", "Fire", "消防与烟感", "Fire & smoke", "#ef5350", 0.18),
    ("traffic", "交通", "Metro & traffic", "地铁与道路交通", "Metro & road traffic", "#ab47bc", 0.07),
    ("elderly", "养老", "Elderly care", "为老服务", "Elderly care", "#f48fb1", 0.08),
    ("environment", "生态环境", "Environment", "大气、噪声与水质", "Air, noise & water quality",
     "#66bb6a", 0.05),
    ("municipal", "市政设施", "Municipal", "井盖、路灯与桥梁", "Manholes, street lights & bridges",
     "#8d9db6", 0.20),
    ("construction", "建设工地", "Construction", "工地安全", "Construction-site safety",
     "#ffa726", 0.05),
    ("building", "房屋安全", "Building safety", "房屋结构与电梯", "Structures & elevators",
     "#bcaaa4", 0.06),
]
# fmt: on

# Per category: measurands as (key, name_zh, name_en, unit, kind, interval_s,
# normal_min, normal_max, alarm_min, alarm_max, baseline, amplitude, peak_hour, noise, decimals,
# share). Variants (model A/B/…) are derived from these below.
# fmt: off
Measurand = tuple[
    str, str, str, str, str, int, float, float, float | None, float | None,
    float, float, int, float, int, float,
]
B = "binary"
A = "analog"
N = None
MEASURANDS: dict[str, list[Measurand]] = {
    "weather": [
        ("temperature", "气温", "Air temperature", "°C", A, 1800, -5, 38, -10, 40, 15, 5, 14, 0.4, 1, 3),
        ("humidity", "相对湿度", "Relative humidity", "%", A, 1800, 20, 100, 5, N, 70, 12, 5, 2, 0, 2),
        ("wind_speed", "风速", "Wind speed", "m/s", A, 1800, 0, 13.8, N, 24.5, 3.5, 1.2, 15, 0.6, 1, 2),
        ("rainfall", "小时雨量", "Hourly rainfall", "mm/h", A, 1800, 0, 16, N, 50, 1, 0.5, 16, 0.2, 1, 2),
        ("visibility", "能见度", "Visibility", "km", A, 900, 1, 50, 0.2, N, 12, 3, 14, 0.8, 1, 1),
        ("pressure", "气压", "Air pressure", "hPa", A, 900, 995, 1035, 980, N, 1016, 2, 10, 0.5, 1, 1),
    ],
    "flood": [
        ("river_level", "河道水位", "River water level", "m", A, 1800, 1.5, 4.2, N, 4.8, 2.8, 0.4, 3, 0.05, 2, 3),
        ("tide_level", "潮位", "Tide level", "m", A, 1800, 1.0, 4.6, N, 5.2, 3.0, 0.9, 9, 0.05, 2, 2),
        ("ponding", "下立交积水深度", "Underpass ponding depth", "cm", A, 900, 0, 5, N, 15, 0.5, 0.3, 16, 0.3, 1, 3),
        ("rain_gauge", "雨量计", "Rain gauge", "mm/h", A, 1800, 0, 16, N, 50, 1, 0.5, 16, 0.2, 1, 2),
        ("pump_status", "泵站运行故障", "Pump-station fault", "", B, 900, 0, 0, N, 0.5, 0, 0, 12, 0, 0, 1),
        ("gate_opening", "水闸开度", "Sluice-gate opening", "%", A, 900, 0, 80, N, 95, 30, 10, 9, 2, 0, 1),
    ],
    "power": [
        ("transformer_load", "配变负载率", "Transformer load", "%", A, 1800, 10, 85, N, 100, 50, 15, 20, 3, 1, 3),
        ("cable_temp", "电缆接头温度", "Cable-joint temperature", "°C", A, 3600, 5, 70, N, 90, 35, 6, 15, 1.5, 1, 2),
        ("voltage", "低压电压", "Low-voltage supply", "V", A, 3600, 207, 235, 198, 242, 221, 3, 19, 1, 1, 2),
        ("leakage", "剩余电流", "Residual current", "mA", A, 3600, 0, 100, N, 300, 20, 5, 20, 4, 0, 2),
        ("outage", "停电告警", "Supply outage", "", B, 7200, 0, 0, N, 0.5, 0, 0, 12, 0, 0, 2),
    ],
    "water": [
        ("pipe_pressure", "管网压力", "Mains pressure", "MPa", A, 1800, 0.16, 0.45, 0.1, 0.6, 0.3, 0.04, 4, 0.01, 3, 3),
        ("flow", "管网流量", "Mains flow", "m³/h", A, 3600, 50, 900, N, 1200, 420, 150, 8, 25, 0, 2),
        ("turbidity", "浊度", "Turbidity", "NTU", A, 3600, 0, 1, N, 3, 0.3, 0.05, 12, 0.05, 2, 2),
        ("chlorine", "余氯", "Residual chlorine", "mg/L", A, 3600, 0.1, 2, 0.05, 4, 0.6, 0.1, 8, 0.05, 2, 2),
        ("leak_noise", "漏损噪声", "Leak noise", "dB", A, 7200, 0, 40, N, 60, 20, 3, 3, 2, 0, 2),
    ],
    "gas": [
        ("gas_pressure", "中压管网压力", "Medium-pressure main", "kPa", A, 3600, 150, 380, 100, 420, 280, 20, 19, 5, 0, 3),
        ("methane_manhole", "窨井甲烷浓度", "Methane in manholes", "%LEL", A, 3600, 0, 10, N, 25, 1, 0.3, 14, 0.5, 1, 3),
        ("kitchen_gas", "餐饮燃气泄漏报警", "Restaurant gas leak", "", B, 7200, 0, 0, N, 0.5, 0, 0, 12, 0, 0, 3),
        ("cutoff_valve", "紧急切断阀状态", "Emergency shut-off valve", "", B, 7200, 0, 0, N, 0.5, 0, 0, 12, 0, 0, 1),
    ],
    "fire": [
        ("smoke", "独立烟感", "Smoke detector", "", B, 43200, 0, 0, N, 0.5, 0, 0, 12, 0, 0, 6),
        ("hydrant_pressure", "消火栓水压", "Hydrant pressure", "MPa", A, 7200, 0.15, 0.6, 0.1, N, 0.35, 0.03, 4, 0.01, 2, 2),
        ("tank_level", "消防水箱液位", "Fire-water tank level", "m", A, 3600, 2.0, 4.5, 1.5, N, 3.4, 0.1, 12, 0.05, 2, 1),
        ("electrical_fire", "电气火灾剩余电流", "Electrical-fire residual current", "mA", A, 3600, 0, 300, N, 500, 80, 25, 20, 10, 0, 2),
        ("gas_alarm_home", "居民燃气报警器", "Home gas alarm", "", B, 21600, 0, 0, N, 0.5, 0, 0, 12, 0, 0, 2),
    ],
    "traffic": [
        ("metro_flow", "地铁站客流", "Metro station flow", "人次/5min", A, 1800, 0, 2500, N, 4000, 900, 600, 18, 60, 0, 2),
        ("road_speed", "路段平均车速", "Road-segment speed", "km/h", A, 1800, 20, 80, 5, N, 48, 12, 3, 3, 0, 3),
        ("parking", "停车场占用率", "Car-park occupancy", "%", A, 1800, 0, 90, N, 98, 55, 20, 14, 3, 0, 2),
        ("tunnel_co", "隧道一氧化碳", "Tunnel carbon monoxide", "ppm", A, 1800, 0, 50, N, 100, 18, 8, 18, 2, 0, 1),
        ("signal_fault", "信号灯故障", "Traffic-signal fault", "", B, 3600, 0, 0, N, 0.5, 0, 0, 12, 0, 0, 2),
    ],
    "elderly": [
        ("door_inactivity", "门磁无活动时长", "Door-sensor inactivity", "h", A, 3600, 0, 12, N, 24, 3, 2, 3, 0.8, 1, 3),
        ("sos_button", "紧急呼叫按钮", "Emergency call button", "", B, 21600, 0, 0, N, 0.5, 0, 0, 12, 0, 0, 3),
        ("water_meter", "智能水表日用量", "Smart water-meter use", "L/h", A, 3600, 0.5, 60, 0.2, N, 18, 10, 19, 2, 1, 2),
        ("fall_radar", "跌倒监测雷达", "Fall-detection radar", "", B, 43200, 0, 0, N, 0.5, 0, 0, 12, 0, 0, 2),
        ("heart_rate", "心率手环", "Heart-rate band", "bpm", A, 7200, 50, 100, 40, 130, 72, 6, 15, 3, 0, 1),
    ],
    "environment": [
        ("pm25", "PM2.5", "PM2.5", "μg/m³", A, 3600, 0, 75, N, 150, 30, 10, 8, 4, 0, 3),
        ("pm10", "PM10", "PM10", "μg/m³", A, 3600, 0, 150, N, 250, 55, 15, 8, 6, 0, 2),
        ("no2", "二氧化氮", "Nitrogen dioxide", "μg/m³", A, 3600, 0, 80, N, 200, 35, 10, 8, 4, 0, 2),
        ("o3", "臭氧", "Ozone", "μg/m³", A, 3600, 0, 160, N, 215, 80, 35, 15, 6, 0, 1),
        ("noise", "区域噪声", "Ambient noise", "dB(A)", A, 1800, 30, 70, N, 85, 55, 6, 17, 2, 1, 3),
        ("dissolved_oxygen", "河道溶解氧", "River dissolved oxygen", "mg/L", A, 3600, 3, 12, 2, N, 7, 1, 14, 0.3, 2, 1),
    ],
    "municipal": [
        ("manhole_tilt", "井盖倾角", "Manhole-cover tilt", "°", A, 86400, 0, 5, N, 15, 0.8, 0, 12, 0.3, 1, 3),
        ("manhole_open", "井盖开启告警", "Manhole-cover opened", "", B, 43200, 0, 0, N, 0.5, 0, 0, 12, 0, 0, 3),
        ("streetlight_current", "路灯回路电流", "Street-light circuit current", "A", A, 7200, 0, 30, N, 40, 12, 10, 23, 0.8, 1, 3),
        ("bridge_strain", "桥梁应变", "Bridge strain", "με", A, 1800, -200, 200, -350, 350, 0, 40, 16, 10, 0, 1),
        ("bridge_deflection", "桥梁挠度", "Bridge deflection", "mm", A, 1800, -20, 20, -35, 35, 0, 5, 16, 1, 1, 1),
        ("waste_bin", "垃圾箱满溢", "Litter-bin fill level", "%", A, 21600, 0, 85, N, 100, 40, 20, 18, 5, 0, 2),
    ],
    "construction": [
        ("crane_load", "塔吊载重比", "Tower-crane load ratio", "%", A, 3600, 0, 90, N, 100, 45, 20, 14, 4, 0, 2),
        ("site_pm10", "工地扬尘PM10", "Site dust PM10", "μg/m³", A, 1800, 0, 150, N, 250, 70, 25, 14, 6, 0, 2),
        ("pit_displacement", "基坑位移", "Foundation-pit displacement", "mm", A, 3600, -15, 15, -30, 30, 0, 1, 14, 1, 1, 2),
        ("site_noise", "工地噪声", "Site noise", "dB(A)", A, 1800, 40, 75, N, 85, 60, 8, 14, 2, 1, 1),
        ("scaffold_tilt", "脚手架倾斜", "Scaffold tilt", "°", A, 3600, 0, 1, N, 2, 0.3, 0.05, 14, 0.05, 2, 1),
    ],
    "building": [
        ("tilt", "房屋倾斜率", "Building tilt", "‰", A, 21600, 0, 4, N, 7, 1.5, 0.1, 14, 0.2, 2, 3),
        ("crack", "裂缝宽度", "Crack width", "mm", A, 21600, 0, 0.3, N, 1, 0.12, 0.01, 14, 0.02, 2, 2),
        ("elevator_fault", "电梯困人告警", "Elevator entrapment", "", B, 7200, 0, 0, N, 0.5, 0, 0, 12, 0, 0, 3),
        ("elevator_vibration", "电梯振动", "Elevator vibration", "m/s²", A, 3600, 0, 0.8, N, 1.5, 0.3, 0.1, 18, 0.05, 2, 1),
        ("settlement", "地基沉降", "Foundation settlement", "mm", A, 43200, -10, 10, -20, 20, 0, 0.5, 14, 0.5, 1, 1),
    ],
}
# fmt: on

VARIANT_LETTERS = "ABCDEFGHJKLMNPQ"
VARIANT_INTERVAL = [1, 2, 1, 4, 2, 1, 3, 2, 1, 4, 2, 1, 2, 1, 3]  # model B reports half as often…


def build() -> tuple[list[list[object]], list[list[object]]]:
    """Rows of both CSVs, calibrated to the real platform's reading volume."""
    categories: list[list[object]] = [
        [code, zh, en, szh, sen, colour, i + 1, share]
        for i, (code, zh, en, szh, sen, colour, share) in enumerate(CATEGORIES)
    ]
    types: list[list[object]] = []
    type_id = 0
    for category, *_ in CATEGORIES:
        measurands = MEASURANDS[category]
        # spread 30 types over the measurands: more variants for the heavier ones
        weights = [m[15] for m in measurands]
        counts = [1] * len(measurands)
        while sum(counts) < 30:
            k = max(range(len(measurands)), key=lambda i: weights[i] / counts[i])
            counts[k] += 1
        for m, n in zip(measurands, counts, strict=True):
            (
                key,
                zh,
                en,
                unit,
                kind,
                interval,
                nmin,
                nmax,
                amin,
                amax,
                base,
                amp,
                peak,
                sd,
                dec,
                w,
            ) = m
            for v in range(n):
                type_id += 1
                letter = VARIANT_LETTERS[v]
                types.append(
                    [
                        type_id,
                        f"{category}.{key}.model_{letter.lower()}",
                        category,
                        f"{zh}（{letter}型）",
                        f"{en} (model {letter})",
                        key,
                        unit,
                        kind,
                        _interval(interval * _variant_factor(key, v)),
                        nmin,
                        nmax,
                        "" if amin is None else amin,
                        "" if amax is None else amax,
                        base,
                        amp,
                        peak,
                        sd,
                        dec,
                        round(w / n * (1.0 if v == 0 else 0.8), 4),
                    ]
                )
    return categories, types


ALLOWED = [60, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400]
# An elderly-care programme's household sensors report at least hourly whatever the model: a
# broken routine must be noticed within two hours of the household's usual first activity. (Heart-
# rate bands sync every 2 h and fall radars send a 12 h heartbeat, which keeps the seed-scale city
# at its ~8.4 million readings a day.)
HOURLY_EVERY_MODEL = frozenset({"door_inactivity", "water_meter"})


def _variant_factor(key: str, variant: int) -> int:
    return 1 if key in HOURLY_EVERY_MODEL else VARIANT_INTERVAL[variant]


def _interval(seconds: int) -> int:
    return min(ALLOWED, key=lambda a: abs(a - seconds))


def main() -> None:
    """Write categories.csv and device_types.csv, then check them through the app's loader."""
    categories, types = build()
    assert len(types) == 360, len(types)
    with (HERE / "categories.csv").open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(catalog.CATEGORY_COLUMNS)
        writer.writerows(categories)
    with (HERE / "device_types.csv").open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(catalog.TYPE_COLUMNS)
        writer.writerows(types)
    print(f"wrote {len(categories)} categories and {len(types)} device types")
    # check what was written through the loader the app uses (it validates every row)
    readings = catalog.expected_readings_per_day(
        devices_total=DEVICES,
        categories=catalog.load_categories(),
        device_types=catalog.load_device_types(),
    )
    print(f"expected readings/day at {DEVICES:,} devices: {readings:,.0f}")
    assert abs(readings / READINGS_PER_DAY - 1) < 0.01, readings


if __name__ == "__main__":
    main()
