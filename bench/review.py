"""After-action review figures at seed scale (issue 22, part 3): how long the review of a window
takes to read, for the city, Pudong and one street, over the last 6 h and 24 h; the CSV of the
city's day; and the whole report printed to PDF by headless Chromium.

    python -m bench.review [--repeat 10] [--reuse] [--database-url URL]

Uses bench.dashboard's seed-scale database (seeded first unless --reuse finds it).
Target: the review page's read of a city-wide day well within a page load (≤ 1 s p95).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa

from bench.dashboard import percentiles, prepare
from bench.harness import bench_database
from cli.review import print_pdf, review_html
from components.review import incidents_csv
from data.clock import database_now
from data.engine import create_db_engine
from data.review import review, review_incidents

PUDONG = "310115"
_T = TypeVar("_T")


def _timed(call: Callable[[], _T], repeat: int) -> tuple[float, float, _T]:
    """(p50, p95) milliseconds of `repeat` calls, and the last result."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - started)
    return (*percentiles(times), result)


def _busiest_street(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT street_code FROM incident WHERE street_code LIKE :d"
                " GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
            ),
            {"d": PUDONG + "%"},
        ).scalar_one()


def print_reads(engine: sa.Engine, *, repeat: int) -> None:
    """The review's read for each area and window."""
    end = database_now(engine)
    street = _busiest_street(engine)
    print(f"review reads ({repeat} each; p50 / p95 ms; incidents in the window):")
    for hours in (6, 24):
        start = end - timedelta(hours=hours)
        areas: tuple[tuple[str, str | None, str | None], ...] = (
            ("city", None, None),
            ("Pudong", PUDONG, None),
            (f"street {street}", None, street),
        )
        for label, district, street_code in areas:
            read = partial(
                review, engine, start=start, end=end, district=district, street=street_code
            )
            p50, p95, rv = _timed(read, repeat)
            count = int(rv.by_district.incidents.sum()) if not rv.by_district.empty else 0
            print(f"  {hours:>2} h {label:<20} {p50:7.1f} / {p95:7.1f}   {count:,}")


def print_exports(engine: sa.Engine) -> None:
    """The city's day as CSV, and as a printed PDF."""
    end = database_now(engine)
    start = end - timedelta(hours=24)
    started = time.perf_counter()
    text = incidents_csv(review_incidents(engine, start=start, end=end))
    csv_s = time.perf_counter() - started
    print(f"CSV of the city's day: {len(text.splitlines()) - 1:,} rows, {len(text):,} bytes"
          f" in {csv_s:.2f} s")  # fmt: skip
    args = argparse.Namespace(district=None, street=None, lang="zh")
    started = time.perf_counter()
    page = review_html(args, engine, start, end)
    html_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "review.pdf"
        started = time.perf_counter()
        print_pdf(page, out)
        pdf_s = time.perf_counter() - started
        size = out.stat().st_size
    print(f"PDF of the city's day: HTML {len(page):,} bytes in {html_s:.2f} s,"
          f" printed in {pdf_s:.2f} s, {size:,} bytes")  # fmt: skip


def main() -> None:
    """Run the review bench and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="reads timed per area and window")
    parser.add_argument("--reuse", action="store_true", help="keep an already seeded database")
    parser.add_argument("--database-url", help="use this server instead of the bench cluster")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    url = args.database_url or bench_database("bench_dashboard", reuse=args.reuse)
    engine = create_db_engine(url)
    prepare(engine)
    print_reads(engine, repeat=args.repeat)
    print_exports(engine)


if __name__ == "__main__":
    main()
