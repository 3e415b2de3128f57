"""`users …`: people who sign in — roles, districts, the first administrator, the audit log."""

from __future__ import annotations

import argparse
import sys

from cli.common import Subparsers, current_engine
from config import Settings
from data.safe_text import visible

ROLES = ["admin", "operator", "district_manager", "viewer"]


def register(commands: Subparsers) -> None:
    """Add `users` and its actions."""
    users = commands.add_parser("users", help="people who sign in: roles, districts, audit")
    user_commands = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    ucreate = user_commands.add_parser("create", help="create a user (asks for the password)")
    ucreate.add_argument("username", help="2-64 of a-z 0-9 . _ -")
    ucreate.add_argument("--role", required=True, choices=ROLES)
    ucreate.add_argument("--districts", help="adcodes, comma-separated (district managers)")
    ucreate.add_argument("--display-name", default="", help="name shown in the header")
    ucreate.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    ucreate.set_defaults(handler=cmd_users_create)
    uupdate = user_commands.add_parser(
        "update", help="change role, districts or password; disable or enable"
    )
    uupdate.add_argument("username")
    uupdate.add_argument("--role", choices=ROLES)
    uupdate.add_argument("--districts", help="adcodes, comma-separated")
    uupdate.add_argument("--password", action="store_true", help="set a new password")
    uupdate.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    state = uupdate.add_mutually_exclusive_group()
    state.add_argument("--disable", action="store_true", help="refuse sign-in, end sessions")
    state.add_argument("--enable", action="store_true")
    uupdate.set_defaults(handler=cmd_users_update)
    user_commands.add_parser("list", help="every user").set_defaults(handler=cmd_users_list)
    usetup = user_commands.add_parser(
        "setup-code", help="a one-time link to create the first administrator"
    )
    usetup.add_argument("--base-url", help="default: http://HOST:PORT")
    usetup.set_defaults(handler=cmd_users_setup_code)
    uaudit = user_commands.add_parser("audit", help="the newest audit log lines")
    uaudit.add_argument("--limit", type=int, default=50)
    uaudit.set_defaults(handler=cmd_users_audit)


class AccessErrorForCli(Exception):
    """A users command that cannot go on; printed as one line."""


def _read_password(args: argparse.Namespace) -> str:
    """The password from stdin (--password-stdin) or asked twice on the terminal."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    import getpass

    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise AccessErrorForCli("the two passwords differ")
    return first


def _districts_arg(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def cmd_users_create(args: argparse.Namespace, settings: Settings) -> int:
    """Create a user and record it in the audit log."""
    from data.access import AccessError, create_user, record_audit

    engine = current_engine(settings)
    try:
        user = create_user(
            engine,
            username=args.username,
            role=args.role,
            password=_read_password(args),
            districts=_districts_arg(args.districts) or [],
            display_name=args.display_name,
        )
    except (AccessError, AccessErrorForCli) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    record_audit(
        engine,
        actor="cli",
        action="user-created",
        target=f"user:{user.username}",
        detail={"role": user.role, "districts": list(user.districts)},
    )
    scope = "the whole city" if user.sees_city else ", ".join(user.districts)
    print(f"created {user.role} {user.username} ({scope})")
    return 0


def cmd_users_update(args: argparse.Namespace, settings: Settings) -> int:
    """Change a user; their sessions end, in the web workers too."""
    from data.access import AccessError, record_audit, update_user

    engine = current_engine(settings)
    try:
        password = _read_password(args) if args.password else None
        user = update_user(
            engine,
            username=args.username,
            role=args.role,
            districts=_districts_arg(args.districts),
            password=password,
            disabled=True if args.disable else (False if args.enable else None),
        )
    except (AccessError, AccessErrorForCli) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    changed = {
        "role": args.role,
        "districts": args.districts,
        "password": bool(args.password),
        "disabled": args.disable or (False if args.enable else None),
    }
    _tell_web_workers(settings)
    record_audit(
        engine,
        actor="cli",
        action="user-updated",
        target=f"user:{user.username}",
        detail={k: v for k, v in changed.items() if v not in (None, False)},
    )
    print(f"updated {user.username}: {user.role}; their sessions have ended")
    return 0


def _tell_web_workers(settings: Settings) -> None:
    """Make every web worker drop the sessions it knows (roles, districts or access changed)."""
    from localservers.redis import managed_redis
    from serving.events import announce_cache_cleared, connect

    url = settings.redis_url
    if not url:
        # the Redis a running `serve` started, if any
        server = managed_redis(settings)
        if not server.password_file.exists() or not server.answers():
            return
        url = server.url()
    announce_cache_cleared(source="users", client=connect(url))


def cmd_users_list(args: argparse.Namespace, settings: Settings) -> int:
    """Every user with role, districts, state and last sign-in."""
    from data.access import list_users

    for row in list_users(current_engine(settings)):
        state = f"disabled {row['disabled_at']:%Y-%m-%d}" if row["disabled_at"] else "enabled"
        seen = f"{row['last_seen']:%Y-%m-%d %H:%M}" if row["last_seen"] else "never"
        print(
            f"{row['username']:<24} {row['role']:<17} {row['districts'] or 'city':<22}"
            f" {state:<20} last seen {seen}  {visible(row['display_name'])}"
        )
    return 0


def cmd_users_setup_code(args: argparse.Namespace, settings: Settings) -> int:
    """Print a one-time link to create the first administrator (2 when one exists)."""
    from data.access import issue_setup_code

    code = issue_setup_code(current_engine(settings))
    if code is None:
        print("an administrator exists already; use `users create --role admin`", file=sys.stderr)
        return 2
    base_url = args.base_url or f"http://{settings.host}:{settings.port}"
    print(f"create the first administrator (valid 24 h, once): {base_url}/setup?code={code}")
    return 0


def cmd_users_audit(args: argparse.Namespace, settings: Settings) -> int:
    """The newest audit log lines, oldest first."""
    from data.access import audit_entries

    for row in reversed(audit_entries(current_engine(settings), limit=args.limit)):
        # actors are what people typed into the sign-in form: printed escaped, never raw
        print(
            f"{row['at']:%Y-%m-%d %H:%M:%S} {visible(row['actor']):<20}"
            f" {visible(row['action']):<18} {visible(row['target'] or '-'):<24}"
            f" {visible(row['ip'] or '-'):<16} {visible(row['detail'] or '')}"
        )
    return 0
