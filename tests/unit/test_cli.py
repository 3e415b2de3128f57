"""The command line's two entry points and the commands its groups declare."""

import argparse
import subprocess
import sys

import pytest

from cli.main import build_parser
from config import PROJECT_ROOT

COMMANDS = {
    "db",
    "refresh",
    "seed",
    "import-streets",
    "import-context",
    "import-served",
    "units",
    "dispatch",
    "serve",
    "web",
    "jobs",
    "ingest-mqtt",
    "simulate",
    "mqtt",
    "tokens",
    "dead-letters",
    "displays",
    "users",
    "rules",
    "report",
}


@pytest.mark.parametrize("entry", [["cli.py"], ["-m", "cli"]], ids=["cli.py", "-m cli"])
def test_both_entry_points_run_the_command_line(entry):
    done = subprocess.run(
        [sys.executable, *entry, "--help"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: cli.py ")
    assert all(f"    {command}" in done.stdout for command in COMMANDS)


def test_a_bad_command_exits_2_with_usage():
    done = subprocess.run(
        [sys.executable, "-m", "cli", "no-such-command"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "invalid choice" in done.stderr


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """Every runnable command path with its parser."""
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subcommands:
        yield path, parser
    for action in subcommands:
        for name, child in action.choices.items():
            yield from _leaves(child, (*path, name))


def test_every_command_has_a_handler_of_its_group():
    parser = build_parser()
    top = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(top.choices) == COMMANDS
    leaves = dict(_leaves(parser))
    # rules refit joined in issue 17, tokens list in issue 18, import-context in issue 19,
    # import-served in issue 20, units import/list/lend and dispatch in issue 21, report in 22
    assert len(leaves) == 41
    for path, leaf in leaves.items():
        handler = leaf.get_default("handler")
        assert callable(handler), path
        assert handler.__module__.startswith("cli."), path
