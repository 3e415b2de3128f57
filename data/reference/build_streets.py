"""Build data/reference/streets.csv from the shared street list, adding romanised English names.

Dev-time only (`pip install pypinyin==0.55.0`; the app never imports this):
    python data/reference/build_streets.py [path/to/shanghai_streets.csv]
The default source is ../shared/data/boundaries/shanghai_streets.csv beside the repository.

Naming rule: the proper name is one capitalised word of toneless Hanyu Pinyin (ü kept, an
apostrophe before a syllable starting with a, o or e), followed by the translated generic term:
南京东路街道 → "Nanjingdonglu Subdistrict", 静安寺街道 → "Jing'ansi Subdistrict".
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

from pypinyin import Style, lazy_pinyin, load_phrases_dict

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "boundaries" / "shanghai_streets.csv"
TARGET = HERE / "streets.csv"

# the longest matching suffix wins, so 工业园区 beats 园区 and 新区 beats 区
SUFFIXES = {
    "街道": "Subdistrict",
    "镇": "Town",
    "乡": "Township",
    "农场": "Farm",
    "林场": "Forest Farm",
    "新区": "New Area",
    "区": "Zone",
    "园区": "Park",
    "工业区": "Industrial Zone",
    "工业园区": "Industrial Park",
    "高科技园区": "Hi-Tech Park",
    "现代农业园区": "Modern Agriculture Park",
    "开发区": "Development Zone",
    "新兴技术开发区": "Emerging Technology Development Zone",
    "经济技术开发区": "Economic and Technological Development Zone",
    "高新技术产业开发区": "Hi-Tech Industrial Development Zone",
    "出口加工区": "Export Processing Zone",
    "度假区": "Resort",
    "旅游区": "Tourist Zone",
}
# these generic terms read as part of the name when the proper name is a single character
# (唐镇 is "Tangzhen Town", not "Tang Town"), as in official Shanghai usage
NAME_KEEPS_GENERIC = {"街道", "镇", "乡"}
PREFIXES = {"上海": "Shanghai"}

# names with an established official English form
FREE_TRADE_ZONE = "中国（上海）自由贸易试验区（保税片区）"
OVERRIDES = {
    FREE_TRADE_ZONE: "China (Shanghai) Pilot Free Trade Zone (Bonded Area)",
    # 新镇 is "new town" only here: in 华新镇 and 竖新镇 the 新 belongs to the name
    "川沙新镇": "Chuansha New Town",
}

# pypinyin reads these polyphones by their everyday sense; in Shanghai place names 长 is cháng,
# 行 (a former market) is háng, 朝阳 is cháoyáng and 重固 is chónggù
PLACE_READINGS = {
    "长桥": "cháng qiáo",
    "长风": "cháng fēng",
    "长白": "cháng bái",
    "长海": "cháng hǎi",
    "殷行": "yīn háng",
    "杨行": "yáng háng",
    "庙行": "miào háng",
    "高行": "gāo háng",
    "徐行": "xú háng",
    "庄行": "zhuāng háng",
    "朝阳": "cháo yáng",
    "重固": "chóng gù",
}
load_phrases_dict({phrase: [[s] for s in r.split()] for phrase, r in PLACE_READINGS.items()})

ENGLISH = re.compile(r"[A-Z][a-zü']*( [A-Z][A-Za-zü'\-]*| and)*")


def romanise(name_zh: str) -> str:
    """'南京东路街道' → 'Nanjingdonglu Subdistrict'."""
    if name_zh in OVERRIDES:
        return OVERRIDES[name_zh]
    words: list[str] = []
    for prefix, english in PREFIXES.items():
        if name_zh.startswith(prefix) and len(name_zh) > len(prefix):
            words.append(english)
            name_zh = name_zh[len(prefix) :]
    matches = [s for s in SUFFIXES if name_zh.endswith(s) and len(name_zh) > len(s)]
    if matches:
        suffix = max(matches, key=len)
        base = name_zh[: -len(suffix)]
        if len(base) == 1 and suffix in NAME_KEEPS_GENERIC:
            base = name_zh
        words += [_pinyin(base), SUFFIXES[suffix]]
    else:
        words.append(_pinyin(name_zh))
    name_en = " ".join(words)
    if not ENGLISH.fullmatch(name_en):
        raise ValueError(f"cannot romanise {name_zh!r} cleanly: {name_en!r}")
    return name_en


def _pinyin(text: str) -> str:
    syllables = lazy_pinyin(text, style=Style.NORMAL, v_to_u=True, errors="exception")
    word = syllables[0] + "".join(f"'{s}" if s[0] in "aoe" else s for s in syllables[1:])
    return word.capitalize()


def main(source: Path) -> None:
    """Write streets.csv from the source list of streets and towns."""
    with source.open(encoding="utf-8", newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["street_code"])
    with TARGET.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["street_code", "district_adcode", "name_zh", "name_en"])
        for row in rows:
            writer.writerow(
                [
                    row["street_code"],
                    row["district_adcode"],
                    row["name_zh"],
                    romanise(row["name_zh"]),
                ]
            )
    print(f"wrote {len(rows)} streets to {TARGET.relative_to(REPO)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SOURCE)
