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
    # import-served in issue 20, units import/list/lend and dispatch in issue 21, report in 22,
    # db crash-leader in 23
    assert len(leaves) == 42
    for path, leaf in leaves.items():
        handler = leaf.get_default("handler")
        assert callable(handler), path
        assert handler.__module__.startswith("cli."), path


@pytest.mark.parametrize("worker", ["-1", "16", "two"])
def test_an_ingest_worker_number_out_of_range_is_refused(worker, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["ingest-mqtt", "--worker", worker])
    assert exit_.value.code == 2
    assert "--worker" in capsys.readouterr().err


def test_a_worker_gets_its_own_login_and_worker_0_keeps_the_one_worker_always_had(tmp_path):
    from config import load_settings
    from ingest.broker import ingest_credentials, worker_login_name

    settings = load_settings(data_dir=tmp_path, mqtt_username=None, mqtt_password=None)
    assert worker_login_name(settings, worker=0) == settings.mqtt_client_id
    assert worker_login_name(settings, worker=3) == f"{settings.mqtt_client_id}-3"
    logins = [ingest_credentials(settings, worker=n) for n in range(3)]
    assert len({login.username for login in logins}) == 3
    # made once: asked again, the same login (its broker session and backlog with it)
    assert ingest_credentials(settings, worker=1) == logins[1]


def test_crash_leader_refuses_without_an_ha_cluster(capsys):
    from cli.db import cmd_db_crash_leader
    from config import load_settings

    assert cmd_db_crash_leader(argparse.Namespace(), load_settings(ha=False)) == 2
    assert "only the embedded HA cluster" in capsys.readouterr().out


def test_a_login_given_in_the_environment_is_its_own_workers_and_no_others(tmp_path):
    from config import load_settings
    from ingest.broker import ingest_credentials

    given = load_settings(data_dir=tmp_path, mqtt_username="given", mqtt_password="secret")
    # serve's worker 0 (and the process itself) use the login a deployment gave for it
    assert ingest_credentials(given).username == "given"
    assert ingest_credentials(given, worker=0).username == "given"
    assert ingest_credentials(given, worker=1).username.startswith(given.mqtt_client_id + "-1-")
