"""`rules list` and `rules run`: the incident rules."""

from __future__ import annotations

import argparse

from cli.common import Subparsers, background_engine, open_engine, terminate_on_sigterm
from config import Settings
from serving.events import connect


def register(commands: Subparsers) -> None:
    """Add `rules` and its actions."""
    rules = commands.add_parser("rules", help="incident rules")
    rule_commands = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    rule_commands.add_parser("list", help="list the incident rules").set_defaults(
        handler=cmd_rules_list
    )
    rule_commands.add_parser(
        "run", help="run the rules engine alone (serve runs it too)"
    ).set_defaults(handler=cmd_rules_run)


def cmd_rules_list(args: argparse.Namespace, settings: Settings) -> int:
    """Print every incident rule: scope, severity, condition, auto-resolve."""
    from data.rules_store import load_rules

    for rule in load_rules(open_engine(settings)):
        scope = rule.type_id or rule.category_code or "all"
        condition = (
            f"level ≥ {rule.level} side {rule.side:+d} for {rule.duration_s} s"
            if rule.kind == "threshold"
            else f"silent {rule.offline_factor:g} × interval (≥ {rule.offline_min_s} s)"
        )
        state = "" if rule.enabled else " (disabled)"
        resolve = f"after {rule.clear_s} s clear" if rule.auto_resolve else "off"
        print(
            f"{rule.code:<13} {scope!s:<9} {rule.severity:<8} {condition};"
            f" auto-resolve {resolve}{state}"
        )
    return 0


def cmd_rules_run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the rules engine alone until stopped."""
    import time

    from ingest.rules_engine import start_rules

    terminate_on_sigterm()
    loop = start_rules(
        background_engine(open_engine(settings)),
        interval_s=settings.rules_interval_seconds,
        redis=connect(settings.redis_url),
    )
    print(f"incident rules running every {settings.rules_interval_seconds:g} s (Ctrl-C stops)")
    try:
        while loop.thread.is_alive():
            time.sleep(1)
    except KeyboardInterrupt:
        loop.stop()
    return 0
