"""Build data/reference/streets.csv from the shared street list, adding romanised English names.

Dev-time only (needs `pip install pypinyin==0.55.0`):
    python data/reference/build_streets.py [path/to/shanghai_streets.csv]
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from pypinyin import Style, lazy_pinyin

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parents[2] / "shared" / "data" / "boundaries" / "shanghai_streets.csv"

# longest suffix first: 街道 before 道, 新区 before 区
SUFFIXES = [
    ("街道", "Subdistrict"),
    ("农场", "Farm"),
    ("林场", "Forest Farm"),
    ("管委会", "Administrative Committee"),
    ("园区", "Park"),
    ("新区", "New Area"),
    ("开发区", "Development Zone"),
    ("工业区", "Industrial Zone"),
    ("镇", "Town"),
    ("乡", "Township"),
    ("区", "Zone"),
]


# names with an established official English form
FREE_TRADE_ZONE = "中国（上海）自由贸易试验区（保税片区）"
OVERRIDES = {FREE_TRADE_ZONE: "China (Shanghai) Pilot Free Trade Zone (Bonded Area)"}


def romanise(name_zh: str) -> str:
    """'南京东路街道' → 'Nanjingdonglu Subdistrict' (toneless pinyin, one capitalised word)."""
    if name_zh in OVERRIDES:
        return OVERRIDES[name_zh]
    for suffix, english in SUFFIXES:
        if name_zh.endswith(suffix) and len(name_zh) > len(suffix):
            base = name_zh[: -len(suffix)]
            return f"{_pinyin(base)} {english}"
    return _pinyin(name_zh)


def _pinyin(text: str) -> str:
    return "".join(lazy_pinyin(text, style=Style.NORMAL)).replace("ü", "v").capitalize()


def main(source: Path) -> None:
    rows = list(csv.DictReader(source.open(encoding="utf-8")))
    with (HERE / "streets.csv").open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["street_code", "district_adcode", "name_zh", "name_en"])
        for row in sorted(rows, key=lambda r: r["street_code"]):
            writer.writerow(
                [
                    row["street_code"],
                    row["district_adcode"],
                    row["name_zh"],
                    romanise(row["name_zh"]),
                ]
            )
    print(f"wrote {len(rows)} streets")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SOURCE)
