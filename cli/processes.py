"""`web`, `jobs`, `ingest-mqtt`, `simulate`: what `serve` runs, run one by one in a deployment."""

from __future__ import annotations

import argparse
import logging
import sys

from cli.common import Subparsers, background_engine, open_engine, terminate_on_sigterm
from config import PROJECT_ROOT, Settings
from serving.events import connect


def register(commands: Subparsers) -> None:
    """Add `ingest-mqtt`, `web`, `jobs` and `simulate`."""
    ingest_mqtt = commands.add_parser(
        "ingest-mqtt", help="consume device telemetry from the MQTT broker into the store"
    )
    ingest_mqtt.add_argument(
        "--worker",
        type=int,
        choices=range(16),
        metavar="N",
        help="which worker of the shared subscription this is, 0-15: its own login and session "
        "(default: ONESCREEN_MQTT_WORKER)",
    )
    ingest_mqtt.set_defaults(handler=cmd_ingest_mqtt)
    commands.add_parser(
        "web", help="the web server alone: gunicorn app:server with gunicorn.conf.py"
    ).set_defaults(handler=cmd_web)
    commands.add_parser(
        "jobs", help="incident rules, device status refresh and retention (one per database)"
    ).set_defaults(handler=cmd_jobs)
    _register_simulate(commands)


def _register_simulate(commands: Subparsers) -> None:
    simulate = commands.add_parser(
        "simulate", help="stream live readings of the seeded devices (MQTT or HTTP)"
    )
    simulate.add_argument(
        "--rate",
        type=float,
        help="readings per second (default: ONESCREEN_SIMULATE_RATE, or unset the city's own"
        " at least 97: a 10M city ~1,900)",
    )
    simulate.add_argument(
        "--transport", choices=["mqtt", "http"], help="default: ONESCREEN_SIMULATE_TRANSPORT"
    )
    simulate.add_argument(
        "--broker", help="mqtt://host:port (default: ONESCREEN_MQTT_URL or the managed broker)"
    )
    simulate.add_argument(
        "--http-url", help="ingest endpoint (default: http://HOST:PORT/api/v1/readings)"
    )
    simulate.add_argument("--token", help="ingest token for HTTP (default: a new one)")
    simulate.add_argument("--source", default="simulator", help="source name in the topic")
    simulate.add_argument("--duration", type=float, help="seconds to run (default: forever)")
    simulate.add_argument("--seed", type=int, default=0, help="random seed of the live run")
    simulate.add_argument(
        "--storm-every",
        type=float,
        default=40,
        metavar="MINUTES",
        help="calm minutes between rainstorms/typhoons (0: none; default 40)",
    )
    simulate.add_argument("--storm-now", action="store_true", help="start with a storm")
    simulate.add_argument(
        "--no-fleet", action="store_true", help="do not report the units' GPS positions"
    )
    simulate.add_argument(
        "--duty-officer",
        action="store_true",
        help="also play the command centre: dispatch units to new alarms and playbook tasks"
        " (actor simulator:duty; the demo's serve turns this on)",
    )
    simulate.set_defaults(handler=cmd_simulate)


def cmd_web(args: argparse.Namespace, settings: Settings) -> int:
    """Replace this process with gunicorn serving app:server."""
    import os

    if settings.web_workers > 1 and not settings.redis_url:
        print(
            "warning: several web workers without ONESCREEN_REDIS_URL each keep their own cache",
            file=sys.stderr,
        )
    # gunicorn takes over this process: signals go straight to its master
    os.execv(
        sys.executable,
        [sys.executable, "-m", "gunicorn", "-c", str(PROJECT_ROOT / "gunicorn.conf.py")],
    )
    return 0  # not reached


def cmd_jobs(args: argparse.Namespace, settings: Settings) -> int:
    """Run the incident rules, status refresh and retention until stopped."""
    import time

    from ingest.maintenance import start_maintenance
    from ingest.rules_engine import start_rules

    terminate_on_sigterm()
    engine = background_engine(open_engine(settings))
    maintenance = start_maintenance(
        engine,
        status_interval_s=settings.status_refresh_seconds,
        reading_retention_days=settings.reading_retention_days,
        rollup_retention_days=settings.rollup_retention_days,
        redis=connect(settings.redis_url),
    )
    rules = start_rules(
        engine,
        interval_s=settings.rules_interval_seconds,
        redis=connect(settings.redis_url),
        live_window_s=settings.live_window_seconds,
    )
    print(
        f"background jobs: incident rules every {settings.rules_interval_seconds:g} s, device "
        f"status every {settings.status_refresh_seconds:g} s, retention hourly (Ctrl-C stops)"
    )
    try:
        while rules.thread.is_alive() and maintenance.thread.is_alive():
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        rules.stop()
        maintenance.stop()
    return 0


def cmd_ingest_mqtt(args: argparse.Namespace, settings: Settings) -> int:
    """Consume device telemetry from the MQTT broker until stopped."""
    from ingest.mqtt_worker import run_worker

    terminate_on_sigterm()
    if args.worker is not None:
        # its own login, unless this process was given one for it (serve gives each its own)
        settings = settings.model_copy(update={"mqtt_worker": args.worker})
    stats = run_worker(settings)
    print(f"mqtt ingest stopped: {stats}")
    return 0


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    """Stream live readings of the seeded devices; 1 when some were not confirmed."""
    import signal
    import threading

    from simulator.live import start_simulation

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    logging.getLogger("simulator").setLevel(logging.DEBUG if args.verbose else settings.log_level)
    logging.getLogger("ingest").setLevel(logging.DEBUG if args.verbose else settings.log_level)
    report = start_simulation(
        open_engine(settings),
        settings=settings,
        stop=stop,
        rate=args.rate or settings.simulate_rate,
        transport=args.transport or settings.simulate_transport,
        broker=args.broker,
        http_url=args.http_url,
        token=args.token,
        source=args.source,
        duration_s=args.duration,
        seed=args.seed,
        storm_every_minutes=args.storm_every,
        storm_now=args.storm_now,
        fleet=not args.no_fleet,
        duty_officer=args.duty_officer,
    )
    print(
        f"simulated {report.generated:,} readings in {report.seconds:.1f} s "
        f"({report.generated / max(report.seconds, 1e-9):,.0f}/s) as {report.messages:,} "
        f"messages; {report.delivered:,} confirmed"
    )
    return 1 if report.unconfirmed else 0
