"""`report`: the after-action review of a window and an area written as PDF (printed by headless
Chromium from the same sections as the /review page), HTML, or CSV (one row per incident)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from dash import html

from cli.common import Subparsers, open_engine
from components.review import incidents_csv, review_head, review_sections, review_title
from components.static_html import document
from config import CHROMIUM, Settings
from data.checks import InvalidQuery
from data.clock import CITY_TZ, parse_moment
from data.reference_reads import category_codes, district_codes, street_names
from data.review import check_review, review, review_incidents

PRINT_TIMEOUT_S = 180
LOG_ROWS = 2000
STYLESHEETS = ("onescreen.css", "onescreen_review.css")


def register(commands: Subparsers) -> None:
    """Add `report`."""
    report = commands.add_parser(
        "report", help="write the after-action review (复盘) of a window as PDF, HTML or CSV"
    )
    report.add_argument("--from", dest="start", required=True, help="e.g. '2026-12-03 20:00'")
    report.add_argument("--to", dest="end", required=True, help="Beijing time unless it says")
    report.add_argument("--district", help="district adcode, e.g. 310115 (default: the city)")
    report.add_argument("--street", help="street/town code, e.g. 310115001")
    report.add_argument("--lang", choices=("zh", "en"), default="zh")
    report.add_argument("--out", required=True, help="FILE.pdf, FILE.html or FILE.csv")
    report.set_defaults(handler=cmd_report)


def review_html(args: argparse.Namespace, engine: sa.Engine, start: datetime, end: datetime) -> str:
    """The review as a standalone HTML document."""
    districts = district_codes(engine)
    rv = review(
        engine, start=start, end=end, district=args.district, street=args.street,
        log_limit=LOG_ROWS,
    )  # fmt: skip
    title = review_title(
        args.lang,
        district=rv.district,
        street=rv.street,
        districts=districts,
        streets=street_names(engine, district=rv.street[:6]) if rv.street else {},
    )
    sections = review_sections(
        rv, args.lang, districts=districts, categories=category_codes(engine), log_limit=LOG_ROWS
    )
    body = html.Div(
        className="os-review os-review-print",
        children=[review_head(title, start, end, args.lang), *sections],
    )
    return document(body, title=title, lang=args.lang, stylesheets=STYLESHEETS)


def print_pdf(html_text: str, out: Path) -> None:
    """Print an HTML document to `out` with headless Chromium (its charts drawn first)."""
    with tempfile.TemporaryDirectory(prefix="onescreen-report-") as folder:
        page = Path(folder) / "review.html"
        page.write_text(html_text, encoding="utf-8")
        command = [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
            "--run-all-compositor-stages-before-draw", "--virtual-time-budget=20000",
            f"--print-to-pdf={out.resolve()}", page.as_uri(),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, timeout=PRINT_TIMEOUT_S, check=False)
        if done.returncode != 0 or not out.exists():
            raise OSError(f"chromium could not print the review: {done.stderr[-300:]!r}")


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    """Write the review."""
    out = Path(args.out)
    suffix = out.suffix.lower()
    try:
        if suffix not in (".pdf", ".html", ".csv"):
            raise InvalidQuery("--out must end in .pdf, .html or .csv")
        start, end = parse_moment(args.start), parse_moment(args.end)
        check_review(start=start, end=end, district=args.district, street=args.street)
        engine = open_engine(settings)
        if suffix == ".csv":
            rows = review_incidents(
                engine, start=start, end=end, district=args.district, street=args.street
            )
            out.write_text(incidents_csv(rows), encoding="utf-8")
            print(f"{len(rows):,} incident(s) written to {out}")
            return 0
        text = review_html(args, engine, start, end)
        if suffix == ".html":
            out.write_text(text, encoding="utf-8")
        else:
            print_pdf(text, out)
    except InvalidQuery as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    window = f"{start.astimezone(CITY_TZ):%Y-%m-%d %H:%M} – {end.astimezone(CITY_TZ):%H:%M}"
    print(f"review of {window} written to {out} ({out.stat().st_size:,} bytes)")
    return 0
