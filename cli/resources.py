"""`units …` (the resource registry: import, list, lend) and `dispatch` (send a unit to an
incident from the command line, as a named person, audited like the web's)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.common import Subparsers, open_engine
from config import Settings
from data.dispatch import dispatch_unit, suggest_units
from data.lending import lend_unit
from data.resources import (
    MAX_IMPORT_BYTES,
    STATUSES,
    ResourceError,
    import_units,
    units,
)

ACTOR_PREFIX = "cli:"


def register(commands: Subparsers) -> None:
    """Add `units` and `dispatch`."""
    group = commands.add_parser("units", help="crews, vehicles and facilities (资源)")
    actions = group.add_subparsers(dest="units_command", required=True, metavar="ACTION")
    load = actions.add_parser(
        "import",
        help="add or update units from CSV (header: code,kind_code,lon,lat[,name_zh,name_en,"
        "district_adcode,lent_to,capacity,status]) or GeoJSON points (the same as properties);"
        " all or nothing",
    )
    load.add_argument("file", help="a .csv or .geojson/.json file (GCJ-02 degrees)")
    load.set_defaults(handler=cmd_import)
    listing = actions.add_parser("list", help="list units")
    listing.add_argument("--district", help="home district (or lent to it)")
    listing.add_argument("--skill", help="serving this scenario/category, e.g. flood")
    listing.add_argument("--status", choices=STATUSES)
    listing.set_defaults(handler=cmd_list)
    lend = actions.add_parser("lend", help="lend a city unit to a district (or --back)")
    lend.add_argument("code")
    lend.add_argument("district", nargs="?", help="district adcode, e.g. 310115")
    lend.add_argument("--back", action="store_true", help="take it back to the city")
    lend.set_defaults(handler=cmd_lend)

    send = commands.add_parser(
        "dispatch", help="send a unit to an incident (the first suggested one unless --unit)"
    )
    send.add_argument("incident", type=int, help="incident id")
    send.add_argument("--unit", help="unit code (default: the first suggestion)")
    send.add_argument("--as", dest="actor", required=True, help="who sends it (audited)")
    send.set_defaults(handler=cmd_dispatch)


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    """Import units, all or nothing."""
    path = Path(args.file)
    try:
        if path.stat().st_size > MAX_IMPORT_BYTES:
            raise ResourceError(f"the file is larger than {MAX_IMPORT_BYTES // 2**20} MB")
        text = path.read_text(encoding="utf-8-sig")
        count = import_units(
            open_engine(settings),
            text=text,
            geojson=path.suffix.lower() in (".geojson", ".json"),
        )
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    except ResourceError as exc:
        print(f"error: {exc}; nothing was imported", file=sys.stderr)
        return 2
    print(f"{count:,} unit(s) added or updated")
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    """One line per unit."""
    rows = units(open_engine(settings), district=args.district, skill=args.skill)
    shown = 0
    for row in rows:
        if args.status and row["status"] != args.status:
            continue
        shown += 1
        home = row["district_adcode"] or "city" + (f"→{row['lent_to']}" if row["lent_to"] else "")
        print(
            f"{row['code']:<18} {row['kind_code']:<16} {row['status']:<10} {home:<12}"
            f" {row['lon']:.5f},{row['lat']:.5f}  {row['name_en']}"
        )
    print(f"{shown:,} unit(s)", file=sys.stderr)
    return 0


def cmd_lend(args: argparse.Namespace, settings: Settings) -> int:
    """Lend a city unit, or take it back."""
    if args.back == bool(args.district):
        print("error: name a district, or --back (not both)", file=sys.stderr)
        return 2
    try:
        lend_unit(
            open_engine(settings),
            code=args.code,
            district=None if args.back else args.district,
            actor=ACTOR_PREFIX + "lend",
        )
    except ResourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.code} " + ("back with the city" if args.back else f"lent to {args.district}"))
    return 0


def cmd_dispatch(args: argparse.Namespace, settings: Settings) -> int:
    """Send a unit to an incident."""
    engine = open_engine(settings)
    try:
        if args.unit is None:
            found = suggest_units(engine, incident_id=args.incident, k=1)
            if not found:
                raise ResourceError("no open incident with a suitable available unit")
            unit_id = found[0].resource_id
        else:
            match = [u for u in units(engine) if u["code"] == args.unit]
            if not match:
                raise ResourceError(f"no unit {args.unit!r}")
            unit_id = int(match[0]["id"])
        sent = dispatch_unit(
            engine,
            resource_id=unit_id,
            incident_id=args.incident,
            actor=ACTOR_PREFIX + args.actor[:60],
        )
    except ResourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{sent['code']} sent to incident {args.incident}, ETA ~{round(sent['eta_s'] / 60)} min")
    return 0
