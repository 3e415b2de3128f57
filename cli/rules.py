"""`rules list` and `rules run`: the incident rules."""

from __future__ import annotations

import argparse

from cli.common import (
    Subparsers,
    background_engine,
    current_engine,
    open_engine,
    terminate_on_sigterm,
)
from config import Settings
from data.rule_types import Rule
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
    refit = rule_commands.add_parser(
        "refit", help="learn every device's normal (baseline) from recent history now"
    )
    refit.add_argument(
        "--days",
        type=_days,
        default=28,
        help="history to learn from, in days (1-60; default 28)",
    )
    refit.set_defaults(handler=cmd_rules_refit)


def _days(text: str) -> int:
    """A whole number of days between 1 and 60."""
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days") from None
    if not 1 <= days <= 60:
        raise argparse.ArgumentTypeError(f"{days} days is outside 1-60")
    return days


def cmd_rules_refit(args: argparse.Namespace, settings: Settings) -> int:
    """Refit every device's baseline and print what it cost."""
    from ingest.refit import refit_baselines

    report = refit_baselines(current_engine(settings), days=args.days)
    print(f"baselines refitted: {report.summary()}")
    return 0


def describe_rule(rule: Rule) -> str:
    """One line of `rules list`: the condition a rule of any kind watches for."""
    side = {1: "above", -1: "below", 0: "either side"}.get(rule.side or 0, "")
    conditions = {
        "threshold": lambda: (
            f"level ≥ {rule.level} side {rule.side or 0:+d} for {rule.duration_s} s"
        ),
        "offline": lambda: f"silent {rule.offline_factor:g} × interval (≥ {rule.offline_min_s} s)",
        "forecast": lambda: (
            f"预警: {'alarm' if (rule.level or 2) >= 2 else 'normal'} limit {side} within "
            f"horizon {(rule.horizon_s or 0) // 60} min, p ≥ {rule.confidence:g}, trend over "
            f"{(rule.window_s or 0) // 60} min, ≥ {rule.min_points} readings"
        ),
        "baseline": lambda: (
            f"own hour-of-week normal, {side}, robust z > {rule.deviation:g} "
            f"for {rule.duration_s} s"
        ),
        "stuck": lambda: f"the same value {rule.min_points} readings in a row",
        "jump": lambda: f"a spike of > {rule.deviation:g} typical steps, straight back",
        "clock": lambda: f"timestamps > {rule.window_s} s from arrival, {rule.min_points} in a row",
        "peer": lambda: (
            f"robust z > {rule.deviation:g} against ≥ {rule.min_points} street peers "
            f"for {rule.duration_s} s"
        ),
    }
    return conditions.get(rule.kind, lambda: rule.kind)()


def cmd_rules_list(args: argparse.Namespace, settings: Settings) -> int:
    """Print every incident rule: kind, scope, severity, condition, auto-resolve."""
    from data.rules_store import load_rules
    from data.warning_store import describe_warning_rules

    for rule in load_rules(current_engine(settings)):
        scope = rule.type_id or rule.category_code or "all"
        state = "" if rule.enabled else " (disabled)"
        resolve = f"after {rule.clear_s} s clear" if rule.auto_resolve else "off"
        print(
            f"{rule.code:<13} {rule.kind:<9} {scope!s:<9} {rule.severity:<8} "
            f"{describe_rule(rule)}; auto-resolve {resolve}{state}"
        )
    with current_engine(settings).connect() as conn:
        lines = describe_warning_rules(conn)
    if lines:
        # a level holds when any of its rules holds in a district; the city takes its worst
        print("\nwarning levels (IV blue ... I red; a level holds when any of its rules holds):")
        print("\n".join(lines))
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
        live_window_s=settings.live_window_seconds,
    )
    print(f"incident rules running every {settings.rules_interval_seconds:g} s (Ctrl-C stops)")
    try:
        while loop.thread.is_alive():
            time.sleep(1)
    except KeyboardInterrupt:
        loop.stop()
    return 0
