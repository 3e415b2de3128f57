"""`tokens` (ingest API tokens), `mqtt` (the managed broker) and `dead-letters`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from cli.common import Subparsers, open_engine
from config import Settings

if TYPE_CHECKING:
    import sqlalchemy as sa


def register(commands: Subparsers) -> None:
    """Add `mqtt`, `tokens` and `dead-letters`."""
    broker = commands.add_parser("mqtt", help="the managed MQTT broker (Mosquitto)")
    broker_commands = broker.add_subparsers(dest="mqtt_command", required=True, metavar="ACTION")
    broker_commands.add_parser("status", help="is the managed broker running").set_defaults(
        handler=cmd_mqtt_status
    )
    broker_commands.add_parser("stop", help="stop the managed broker").set_defaults(
        handler=cmd_mqtt_stop
    )

    tokens = commands.add_parser("tokens", help="ingest tokens (HTTP and MQTT) of sources")
    token_commands = tokens.add_subparsers(dest="tokens_command", required=True, metavar="ACTION")
    _register_create(token_commands)
    listing = token_commands.add_parser("list", help="every token: scope, MQTT login, state")
    listing.add_argument("--live", action="store_true", help="only tokens not revoked")
    listing.set_defaults(handler=cmd_tokens_list)
    revoke = token_commands.add_parser("revoke", help="revoke a source's tokens (and MQTT logins)")
    revoke.add_argument("--source", required=True)
    revoke.add_argument("--fingerprint", help="only this token (as `tokens list` shows it)")
    revoke.set_defaults(handler=cmd_tokens_revoke)

    letters = commands.add_parser("dead-letters", help="show readings that could not be stored")
    letters.add_argument("--limit", type=int, default=20)
    letters.set_defaults(handler=cmd_dead_letters)


def _register_create(token_commands: Subparsers) -> None:
    create = token_commands.add_parser(
        "create",
        help="create a token bound to what its owner owns (printed once)",
        description="A token may send readings only for its device, or for devices of its "
        "categories in its districts; --all (any device in the city) must be asked for.",
    )
    create.add_argument("--source", required=True, help="source name, e.g. water-bureau")
    create.add_argument("--device", type=int, help="only this device id")
    create.add_argument(
        "--category",
        action="append",
        default=[],
        help="only devices of this category (water, gas, …; repeat or comma-separate)",
    )
    create.add_argument(
        "--district",
        action="append",
        default=[],
        help="only devices in this district adcode (310115; repeat or comma-separate)",
    )
    create.add_argument(
        "--all", action="store_true", help="any device of any category in every district"
    )
    create.add_argument("--label", default="", help="a note on who holds it")
    create.set_defaults(handler=cmd_tokens_create)


def _split(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def cmd_mqtt_status(args: argparse.Namespace, settings: Settings) -> int:
    """Say whether the managed broker runs, and where."""
    from localservers.mosquitto import managed_broker

    if settings.mqtt_url:
        print(f"ONESCREEN_MQTT_URL is set: {settings.mqtt_url} (not managed by OneScreen)")
        return 0
    broker = managed_broker(settings)
    state = "running" if broker.is_running() else "stopped"
    print(f"managed Mosquitto: {broker.url} ({state}), files in {broker.root}")
    return 0


def cmd_mqtt_stop(args: argparse.Namespace, settings: Settings) -> int:
    """Stop the managed broker."""
    from localservers.mosquitto import managed_broker

    if settings.mqtt_url:
        print("ONESCREEN_MQTT_URL is set: there is no managed broker to stop.")
        return 0
    stopped = managed_broker(settings).stop()
    print("managed Mosquitto stopped" if stopped else "managed Mosquitto was not running")
    return 0


def cmd_tokens_create(args: argparse.Namespace, settings: Settings) -> int:
    """Create an ingest token bound to its scope, print it once, and give the broker its login."""
    from data.ingest_store import TokenError, create_token, find_principal

    engine = open_engine(settings)
    try:
        token = create_token(
            engine,
            source=args.source,
            device_id=args.device,
            categories=_split(args.category),
            districts=_split(args.district),
            city_wide=args.all,
            label=args.label,
        )
    except TokenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    principal = find_principal(engine, token=token)
    assert principal is not None and principal.mqtt_username is not None
    login = principal.mqtt_username
    print(f"# token for source '{args.source}' ({principal.scope.describe()}); shown only once:")
    print(token)
    print(
        f"# MQTT: login {login}, password the token, topic"
        f" {settings.mqtt_topic_prefix}/{login}/telemetry ({_broker_note(engine, settings)})"
    )
    return 0


def cmd_tokens_list(args: argparse.Namespace, settings: Settings) -> int:
    """Every token by fingerprint: source, scope, created, state, MQTT login, label; no secret."""
    from data.ingest_store import list_tokens

    rows = list_tokens(open_engine(settings), include_revoked=not args.live)
    print(f"{'fingerprint':<11} {'source':<20} {'scope':<36} {'created':<16} {'state':<24} MQTT")
    for row in rows:
        state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "live"
        login = row.mqtt_username or "- (made before 0007: HTTP only)"
        print(
            f"{row.fingerprint:<11} {_printable(row.source):<20} {row.scope.describe():<36}"
            f" {row.created_at:%Y-%m-%d %H:%M} {state:<24} {login}"
            + (f"  # {_printable(row.label)}" if row.label else "")
        )
    return 0


def cmd_tokens_revoke(args: argparse.Namespace, settings: Settings) -> int:
    """Revoke a source's tokens (or one by fingerprint); their MQTT logins go with them."""
    from data.ingest_store import revoke_tokens

    engine = open_engine(settings)
    count = revoke_tokens(engine, source=args.source, fingerprint=args.fingerprint)
    print(f"revoked {count} token(s) of source '{args.source}' ({_broker_note(engine, settings)})")
    return 0 if count or args.fingerprint is None else 1


def _broker_note(engine: sa.Engine, settings: Settings) -> str:
    """Rewrite the broker's logins now when OneScreen keeps them; say what happened."""
    from ingest.broker import sync_broker_auth
    from localservers.mosquitto import BrokerError, managed_broker

    try:
        sync_broker_auth(engine, settings)
    except (BrokerError, OSError) as exc:
        return f"the broker's logins could not be rewritten now: {exc}; the ingest worker retries"
    if settings.mqtt_url and settings.mqtt_auth_dir is None:
        return f"the broker at {settings.mqtt_url} is not OneScreen's: give it this login yourself"
    if settings.mqtt_url or managed_broker(settings).is_running():
        return "the broker knows it now"
    return "the broker learns it when it starts"


def _printable(text: str) -> str:
    """`text` with control characters escaped, so a label cannot drive the terminal."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def cmd_dead_letters(args: argparse.Namespace, settings: Settings) -> int:
    """List the newest readings that could not be stored, with their rejected rows."""
    from data.ingest_store import dead_letters
    from data.safe_text import visible

    for letter in dead_letters(open_engine(settings), limit=args.limit):
        print(
            f"#{letter['id']} {letter['received_at']:%Y-%m-%d %H:%M:%S} ×{letter['times']}"
            f" {letter['channel']} {visible(letter['source_code'] or '-')}"
            f" {visible(letter['topic'] or '')} — {visible(letter['reason'])}"
        )
        for row in letter["rejected"][:5]:
            print(f"    row {row['index']}: {visible(row['code'])} ({visible(row['message'])})")
    return 0
