"""`tokens` (ingest API tokens), `mqtt` (the managed broker) and `dead-letters`."""

from __future__ import annotations

import argparse
import sys

from cli.common import Subparsers, open_engine
from config import Settings


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

    tokens = commands.add_parser("tokens", help="ingest API tokens of sources and devices")
    token_commands = tokens.add_subparsers(dest="tokens_command", required=True, metavar="ACTION")
    create = token_commands.add_parser("create", help="create a token (printed once)")
    create.add_argument("--source", required=True, help="source name, e.g. water-bureau")
    create.add_argument("--device", type=int, help="limit the token to this device id")
    create.add_argument("--label", default="", help="a note on who holds it")
    create.set_defaults(handler=cmd_tokens_create)
    revoke = token_commands.add_parser("revoke", help="revoke every token of a source")
    revoke.add_argument("--source", required=True)
    revoke.set_defaults(handler=cmd_tokens_revoke)

    letters = commands.add_parser("dead-letters", help="show readings that could not be stored")
    letters.add_argument("--limit", type=int, default=20)
    letters.set_defaults(handler=cmd_dead_letters)


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
    """Create an ingest token and print it once."""
    from data.ingest_store import TokenError, create_token

    try:
        token = create_token(
            open_engine(settings), source=args.source, device_id=args.device, label=args.label
        )
    except TokenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    scope = f"device {args.device}" if args.device else "any device"
    print(f"# token for source '{args.source}' ({scope}); it is shown only once:")
    print(token)
    return 0


def cmd_tokens_revoke(args: argparse.Namespace, settings: Settings) -> int:
    """Revoke every token of a source."""
    from data.ingest_store import revoke_tokens

    count = revoke_tokens(open_engine(settings), source=args.source)
    print(f"revoked {count} token(s) of source '{args.source}'")
    return 0


def cmd_dead_letters(args: argparse.Namespace, settings: Settings) -> int:
    """List the newest readings that could not be stored, with their rejected rows."""
    from data.ingest_store import dead_letters

    for letter in dead_letters(open_engine(settings), limit=args.limit):
        print(
            f"#{letter['id']} {letter['received_at']:%Y-%m-%d %H:%M:%S} ×{letter['times']}"
            f" {letter['channel']} {letter['source_code'] or '-'} {letter['topic'] or ''}"
            f" — {letter['reason']}"
        )
        for row in letter["rejected"][:5]:
            print(f"    row {row['index']}: {row['code']} ({row['message']})")
    return 0
