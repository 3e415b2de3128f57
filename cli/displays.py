"""`displays tokens …` and `displays playlists …`: video walls and kiosks."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from cli.common import Subparsers, current_engine, display_url
from config import Settings

if TYPE_CHECKING:
    import sqlalchemy as sa


def register(commands: Subparsers) -> None:
    """Add `displays` with its `tokens` and `playlists` actions."""
    displays = commands.add_parser(
        "displays", help="video walls and kiosks: display tokens and saved wall playlists"
    )
    display_commands = displays.add_subparsers(
        dest="displays_command", required=True, metavar="WHAT"
    )
    _register_tokens(display_commands)
    _register_playlists(display_commands)


def _register_tokens(display_commands: Subparsers) -> None:
    display_tokens = display_commands.add_parser("tokens", help="read-only display tokens")
    display_token_commands = display_tokens.add_subparsers(
        dest="display_tokens_command", required=True, metavar="ACTION"
    )
    create = display_token_commands.add_parser(
        "create", help="create a token (printed once, with the display's URL)"
    )
    create.add_argument("--kind", required=True, choices=["wall", "kiosk"])
    create.add_argument("--district", help="limit the display to this district (adcode)")
    create.add_argument("--playlist", help="saved wall playlist the display shows")
    create.add_argument("--label", default="", help="a note on where the display is")
    create.add_argument(
        "--base-url", help="where the dashboard is served (default: http://HOST:PORT)"
    )
    create.set_defaults(handler=cmd_displays_tokens_create)
    display_token_commands.add_parser(
        "list", help="every display token by fingerprint"
    ).set_defaults(handler=cmd_displays_tokens_list)
    revoke = display_token_commands.add_parser("revoke", help="revoke display tokens")
    selector = revoke.add_mutually_exclusive_group(required=True)
    selector.add_argument("--fingerprint", help="the 10 hex digits `tokens list` shows")
    selector.add_argument("--label", help="every live token with this label")
    selector.add_argument("--token", help="the token itself, as --token=TOKEN (may begin with -)")
    revoke.set_defaults(handler=cmd_displays_tokens_revoke)


def _register_playlists(display_commands: Subparsers) -> None:
    playlists = display_commands.add_parser("playlists", help="saved wall playlists")
    playlist_commands = playlists.add_subparsers(
        dest="playlists_command", required=True, metavar="ACTION"
    )
    save = playlist_commands.add_parser("save", help="create or replace a playlist")
    save.add_argument("name", help="1-64 letters, digits, '_' or '-'")
    save.add_argument(
        "--views",
        required=True,
        help="as in /wall?views=: e.g. city,districts,310115:flood,fire",
    )
    save.add_argument("--interval", type=int, default=30, help="seconds per view (5-3600)")
    save.add_argument(
        "--attention", type=int, default=60, help="seconds a new incident holds the wall (5-3600)"
    )
    save.add_argument(
        "--metric",
        choices=["open_incidents", "incidents_per_100km2", "online_rate", "readings_last_hour"],
        help="map metric (default: the display's)",
    )
    save.add_argument("--sound", action="store_true", help="chime on new critical incidents")
    save.add_argument(
        "--reload-hours", type=float, help="reload the page this often (default: never)"
    )
    save.set_defaults(handler=cmd_displays_playlists_save)
    playlist_commands.add_parser("list", help="every saved playlist").set_defaults(
        handler=cmd_displays_playlists_list
    )
    delete = playlist_commands.add_parser("delete", help="delete a playlist")
    delete.add_argument("name")
    delete.set_defaults(handler=cmd_displays_playlists_delete)


def cmd_displays_tokens_create(args: argparse.Namespace, settings: Settings) -> int:
    """Create a display token; print it once with the display's URL."""
    from data.displays import DisplayTokenError, create_display_token

    try:
        token = create_display_token(
            current_engine(settings),
            kind=args.kind,
            district=args.district,
            playlist=args.playlist,
            label=args.label,
        )
    except DisplayTokenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    scope = f"district {args.district}" if args.district else "the whole city"
    playlist = f", playlist '{args.playlist}'" if args.playlist else ""
    base_url = args.base_url or f"http://{settings.host}:{settings.port}"
    print(f"# {args.kind} token for {scope}{playlist}; it is shown only once:")
    print(token)
    print(display_url(base_url, kind=args.kind, token=token))
    return 0


def cmd_displays_tokens_list(args: argparse.Namespace, settings: Settings) -> int:
    """Every display token by fingerprint, live or revoked."""
    from data.displays import list_display_tokens

    for row in list_display_tokens(current_engine(settings)):
        state = f"revoked {row['revoked_at']:%Y-%m-%d %H:%M}" if row["revoked_at"] else "live"
        seen = f"{row['last_seen_at']:%Y-%m-%d %H:%M}" if row["last_seen_at"] else "never"
        print(
            f"{row['fingerprint']} {row['kind']:<5} {row['district'] or 'city':<6}"
            f" {row['playlist'] or '-':<16} created {row['created_at']:%Y-%m-%d %H:%M}"
            f" seen {seen:<16} {state:<22} {row['label']}"
        )
    return 0


def cmd_displays_tokens_revoke(args: argparse.Namespace, settings: Settings) -> int:
    """Revoke display tokens by fingerprint, label or the token itself."""
    from data.displays import DisplayTokenError, revoke_display_tokens

    try:
        count = revoke_display_tokens(
            current_engine(settings),
            token=args.token,
            fingerprint=args.fingerprint,
            label=args.label,
        )
    except DisplayTokenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"revoked {count} display token(s)")
    return 0


def _rejected_views(engine: sa.Engine, *, views: str) -> list[str]:
    """The items of `views` the wall could not show (all of it when nothing is understood)."""
    from data.reference_reads import category_codes, district_codes, street_districts
    from displays.playlist import parse_views

    parsed = parse_views(
        views,
        districts=district_codes(engine),
        categories=category_codes(engine),
        streets=street_districts(engine),
    )
    return parsed.rejected or ([] if parsed.views else [views[:40]])


def cmd_displays_playlists_save(args: argparse.Namespace, settings: Settings) -> int:
    """Create or replace a saved wall playlist."""
    from data.displays import PlaylistError, save_playlist

    engine = current_engine(settings)
    rejected = _rejected_views(engine, views=args.views)
    if rejected:
        print(f"error: --views items not understood: {', '.join(rejected)}", file=sys.stderr)
        return 2
    try:
        playlist = save_playlist(
            engine,
            name=args.name,
            views=args.views,
            interval_s=args.interval,
            attention_s=args.attention,
            metric=args.metric,
            sound=args.sound,
            reload_hours=args.reload_hours,
        )
    except PlaylistError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"saved playlist '{playlist.name}': {playlist.views}")
    return 0


def cmd_displays_playlists_list(args: argparse.Namespace, settings: Settings) -> int:
    """Every saved playlist with its settings."""
    from data.displays import list_playlists

    for playlist in list_playlists(current_engine(settings)):
        reload = f"{playlist.reload_hours:g} h" if playlist.reload_hours else "never"
        print(
            f"{playlist.name:<16} every {playlist.interval_s} s,"
            f" attention {playlist.attention_s} s,"
            f" metric {playlist.metric or 'default'}, sound {'on' if playlist.sound else 'off'},"
            f" reload {reload}, updated {playlist.updated_at:%Y-%m-%d %H:%M}: {playlist.views}"
        )
    return 0


def cmd_displays_playlists_delete(args: argparse.Namespace, settings: Settings) -> int:
    """Delete a saved playlist."""
    from data.displays import delete_playlist

    if not delete_playlist(current_engine(settings), name=args.name):
        print(f"error: no playlist named {args.name!r}", file=sys.stderr)
        return 2
    print(f"deleted playlist '{args.name}' (its tokens fall back to their URL's views)")
    return 0
