"""`seed` (the synthetic city), `import-streets` (real street boundaries), `import-context`,
`import-served` (households per monitor)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from cli.common import Subparsers, open_engine
from config import Settings
from data.errors import OneScreenError


def register(commands: Subparsers) -> None:
    """Add `seed`, `import-streets`, `import-context` and `import-served`."""
    seed = commands.add_parser("seed", help="generate the synthetic city")
    seed.add_argument(
        "--scale",
        choices=["tiny", "demo", "seed", "target"],
        default="demo",
        help="tiny: 3k devices/6 h; demo: 20k/24 h; seed: 510k/24 h (8.4M readings); "
        "target: 10M/2 h (~14M readings, the platform's own goal)",
    )
    seed.add_argument(
        "--random-seed",
        type=int,
        default=_setting_default("random_seed"),
        help="random seed (same seed + same --until = same city)",
    )
    seed.add_argument("--until", help="end of the generated window (ISO time; default: now)")
    seed.add_argument("--reset", action="store_true", help="replace an existing city")
    seed.add_argument(
        "--if-empty", action="store_true", help="exit quietly with 0 when a city is already there"
    )
    seed.add_argument("--quiet", action="store_true", help="no progress bar")
    seed.set_defaults(handler=cmd_seed)

    streets = commands.add_parser(
        "import-streets", help="replace approximate street areas with real boundaries (GeoJSON)"
    )
    streets.add_argument("file", help="GeoJSON FeatureCollection of street/town polygons")
    streets.add_argument(
        "--datum",
        choices=["gcj02", "wgs84"],
        default="gcj02",
        help="datum of the file's coordinates (AMap data is gcj02)",
    )
    streets.add_argument(
        "--code-property",
        default="street_code",
        help="feature property holding the 9-digit street code",
    )
    streets.set_defaults(handler=cmd_import_streets)

    context = commands.add_parser(
        "import-context",
        help="replace the map context (rivers, coast, metro, roads) with an OpenStreetMap extract",
    )
    context.add_argument(
        "file", help="GeoJSON FeatureCollection with OpenStreetMap tags (or a `kind` property)"
    )
    context.add_argument(
        "--datum",
        choices=["wgs84", "gcj02"],
        default="wgs84",
        help="datum of the file's coordinates (OpenStreetMap is wgs84)",
    )
    context.set_defaults(handler=cmd_import_context)

    served = commands.add_parser(
        "import-served",
        help="set the households each outage monitor's transformer area feeds (CSV)",
    )
    served.add_argument(
        "file", help="CSV with the header device_code,served (an empty count: unknown)"
    )
    served.set_defaults(handler=cmd_import_served)


def _setting_default(name: str) -> object:
    """A setting's default for --help text, without failing on a bad environment."""
    return Settings.model_fields[name].default


def cmd_seed(args: argparse.Namespace, settings: Settings) -> int:
    """Generate the synthetic city (3 when one is there already, unless --if-empty)."""
    from tqdm import tqdm

    from data import migrate
    from data.errors import AlreadySeeded
    from simulator.seed import seed_city

    engine = open_engine(settings)
    migrate.upgrade(engine)
    end = _parse_time(args.until) if args.until else None
    bar = tqdm(unit="dev", desc=f"seeding ({args.scale})", disable=args.quiet)
    try:
        report = seed_city(
            engine,
            scale=args.scale,
            random_seed=args.random_seed,
            end=end,
            reset=args.reset,
            progress=bar.update,
            on_total=lambda total: setattr(bar, "total", total),
        )
    except AlreadySeeded as exc:
        bar.close()
        if args.if_empty:
            print("already seeded; nothing to do")
            return 0
        print(f"nothing done: {exc}", file=sys.stderr)
        return 3
    bar.close()
    print(
        f"seeded scale={report.scale} seed={report.random_seed}: {report.devices:,} devices, "
        f"{report.readings:,} readings ({report.start:%Y-%m-%d %H:%M} → {report.end:%H:%M} UTC), "
        f"{report.incidents:,} incidents in {report.seconds:.1f} s "
        f"(readings at {report.readings_per_second:,.0f}/s)"
    )
    return 0


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise OneScreenError(
            f"--until must be an ISO time such as 2026-11-24T08:00+08:00, not {text!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def cmd_import_streets(args: argparse.Namespace, settings: Settings) -> int:
    """Replace approximate street areas with the polygons of a GeoJSON file."""
    from data.reference_data import StreetImportError, import_street_boundaries

    try:
        count = import_street_boundaries(
            open_engine(settings),
            path=Path(args.file),
            datum=args.datum,
            code_property=args.code_property,
        )
    except StreetImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"imported real boundaries for {count} street(s)/town(s)")
    return 0


def cmd_import_context(args: argparse.Namespace, settings: Settings) -> int:
    """Replace the map context layer with the features of a GeoJSON extract."""
    from data.context_data import ContextImportError, import_context

    try:
        stored, skipped = import_context(
            open_engine(settings), path=Path(args.file), datum=args.datum
        )
    except ContextImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"map context replaced: {stored} feature(s) stored, {skipped} of no context kind skipped"
        " (open maps show it within 5 minutes)"
    )
    return 0


def cmd_import_served(args: argparse.Namespace, settings: Settings) -> int:
    """Set each listed device's households from a CSV file, all or nothing."""
    from data.served import ServedImportError, import_served

    try:
        listed, changed = import_served(open_engine(settings), path=Path(args.file))
    except ServedImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"households set for {listed:,} device(s), {changed:,} changed"
        " (the power scenario's estimate uses them at once)"
    )
    return 0
