"""`serve`: the whole dashboard from one command — web server, jobs, ingest and simulator."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cli.common import (
    Subparsers,
    adopt_redis,
    background_engine,
    display_url,
    open_engine,
    terminate_on_sigterm,
)
from config import Settings
from data.errors import OneScreenError
from serving.events import connect

# beside the tokens' state file in the data directory, mode 0600
DISPLAY_URLS_FILE = "display-urls.txt"

if TYPE_CHECKING:
    import sqlalchemy as sa

    from ingest.rules_engine import RulesLoop
    from ingest.supervisor import Child, Supervisor
    from localservers.nginx import ManagedNginx
    from localservers.redis import ManagedRedis


def register(commands: Subparsers) -> None:
    """Add `serve`."""
    serve = commands.add_parser("serve", help="run the dashboard (seeds an empty database first)")
    serve.add_argument("--host", help="bind address (default: ONESCREEN_HOST)")
    serve.add_argument("--port", type=int, help="port (default: ONESCREEN_PORT)")
    serve.add_argument("--no-seed", action="store_true", help="do not seed an empty database")
    serve.add_argument(
        "--no-simulate", action="store_true", help="do not stream the live synthetic city"
    )
    serve.add_argument(
        "--no-ingest",
        action="store_true",
        help="start no MQTT broker, ingest worker or simulator (HTTP ingest stays on)",
    )
    serve.add_argument(
        "--stop-db", action="store_true", help="stop the embedded cluster when the server exits"
    )
    serve.add_argument(
        "--workers",
        type=int,
        help="gunicorn web workers (default: ONESCREEN_WEB_WORKERS; 1 = one process, no Redis)",
    )
    serve.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Migrate (and seed an empty database), start the jobs and children, serve until stopped."""
    from data import migrate
    from data.context_data import load_context_if_empty
    from data.engine import embedded_cluster
    from ingest.maintenance import start_maintenance

    terminate_on_sigterm()
    # werkzeug logs every request at INFO unless told otherwise, whatever the root level
    logging.getLogger("werkzeug").setLevel(logging.DEBUG if args.verbose else settings.log_level)
    logging.getLogger("onescreen.rules_cost").setLevel(settings.log_level)
    engine = open_engine(settings)
    migrate.upgrade(engine)
    if not args.no_seed:
        _seed_if_empty(engine, settings)
    # a database seeded before the context layer existed gets the bundled one now
    load_context_if_empty(engine)
    host = args.host or settings.host
    port = args.port or settings.port
    workers = 1 if settings.debug else (args.workers or settings.web_workers)
    managed = None
    # several processes (workers, or web servers behind nginx) share their answers in Redis
    if workers * settings.web_instances > 1 and not settings.redis_url:
        managed, settings = _start_managed_redis(settings)
        if not settings.redis_url:
            workers = 1
    jobs_engine = background_engine(engine)
    start_maintenance(
        jobs_engine,
        status_interval_s=settings.status_refresh_seconds,
        reading_retention_days=settings.reading_retention_days,
        rollup_retention_days=settings.rollup_retention_days,
        redis=connect(settings.redis_url),
    )
    # debug mode keeps Dash's own server in this process (reloader, error pages), unproxied
    front = None if settings.debug else _front_door(settings, host=host, port=port)
    webs = (
        [] if settings.debug else _web_children(settings, host, port, workers=workers, front=front)
    )
    supervisor, rules = _start_live_city(
        args, settings, engine=engine, jobs_engine=jobs_engine, port=port, webs=webs
    )
    try:
        if front is not None:
            front.restart()
        _announce(engine, settings, host=host, port=port, workers=workers, webs=webs, front=front)
        _serve_web(settings, host=host, port=port, webs=webs)
    finally:
        if front is not None:
            front.stop()
        rules.stop(timeout_s=10)
        if supervisor is not None:
            supervisor.stop(timeout_s=20)
        if managed is not None:
            managed.stop()
        if settings.embedded and args.stop_db:
            embedded_cluster(settings).stop()
    return 0


def _seed_if_empty(engine: sa.Engine, settings: Settings) -> None:
    from data import writes
    from simulator.seed import seed_city

    if writes.get_meta(engine, key="seed") is None:
        print(f"empty database: seeding the {settings.demo_scale} city first…")
        seed_city(engine, scale=settings.demo_scale, random_seed=settings.random_seed)


def _announce(
    engine: sa.Engine,
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int,
    webs: list[Child],
    front: ManagedNginx | None,
) -> None:
    """Print where the dashboard is served and the first-start link; write the display URLs
    (city-wide tokens: never on the output, which ends up in logs) to a private file."""
    from data.access import issue_setup_code

    where = f"{workers} gunicorn worker{'s' if workers > 1 else ''}" if webs else "one process"
    if len(webs) > 1:
        where = f"{len(webs)} web servers of {where}"
    redis = "shared cache on Redis" if settings.redis_url else "no Redis: per-process cache"
    behind = ", behind nginx" if front is not None else ""
    print(f"OneScreen on http://{host}:{port}/ ({where}, {redis}{behind})")
    setup_code = issue_setup_code(engine)
    if setup_code:
        print(
            "First start: create the administrator (one-time link, valid 24 h):"
            f" http://{host}:{port}/setup?code={setup_code}"
        )
    displays = _local_display_tokens(engine, settings)
    if displays:
        path = _write_display_urls(settings, f"http://{host}:{port}", displays)
        print(f"Wall and kiosk URLs (city-wide tokens): in {path} (readable by its owner only)")


def _write_display_urls(settings: Settings, base_url: str, tokens: dict[str, str]) -> Path:
    """The local wall and kiosk URLs, one `kind: URL` line each, in a file only its owner reads."""
    from data.displays import write_private

    path = settings.data_dir / DISPLAY_URLS_FILE
    lines = [f"{kind}: {display_url(base_url, kind=kind, token=t)}" for kind, t in tokens.items()]
    write_private(path, "\n".join(lines) + "\n")
    return path


def _serve_web(settings: Settings, *, host: str, port: int, webs: list[Child]) -> None:
    """Wait while the gunicorn children serve, or serve in this process (debug mode)."""
    if webs:
        _wait_while_serving(webs)
        return
    from app import create_app
    from web.device_layer import warm_in_background

    app = create_app()
    warm_in_background(app.server)
    app.run(host=host, port=port, debug=settings.debug)


def _start_managed_redis(settings: Settings) -> tuple[ManagedRedis | None, Settings]:
    """A local redis-server for the web workers (to stop at exit, if this call started it),
    and the settings that name it; when none can be had, one web process serves without."""
    from localservers.redis import ManagedRedis, RedisServerError, managed_redis

    if not ManagedRedis.installed():
        print(
            "warning: redis-server is not installed and ONESCREEN_REDIS_URL is unset: serving "
            "from one process (scripts/install-system-deps.sh installs Redis)",
            file=sys.stderr,
        )
        return None, settings
    server = managed_redis(settings)
    try:
        started = server.ensure_running()
    except RedisServerError as exc:
        print(f"warning: {exc}; serving from one process without Redis", file=sys.stderr)
        return None, settings
    # this process (rules, status refresh) announces new data on it, the children use it too
    adopt_redis(server.url())
    # one another `serve` started is left to it
    return (server if started else None), settings.model_copy(update={"redis_url": server.url()})


def _front_door(settings: Settings, *, host: str, port: int) -> ManagedNginx | None:
    """The managed nginx to put on host:port (not started yet), None when the settings say
    none, or when nginx is missing and only this machine can reach the server (a warning)."""
    from localservers.base import free_port, port_is_free
    from localservers.nginx import ManagedNginx, managed_nginx

    if settings.proxy == "none":
        return None
    if not ManagedNginx.installed():
        advice = "install nginx-light (scripts/install-system-deps.sh) or set ONESCREEN_PROXY=none"
        # other machines' slow or oversized requests would reach the web server unhindered
        if not _loopback(host):
            raise OneScreenError(f"nginx is not installed: not serving {host} without it; {advice}")
        print(f"warning: nginx is not installed: serving without it ({advice})", file=sys.stderr)
        return None
    if not port_is_free(host, port):
        raise OneScreenError(f"port {port} on {host} is in use; choose another with --port")
    upstreams: set[int] = set()
    while len(upstreams) < settings.web_instances:
        upstreams.add(free_port())
    return managed_nginx(settings, host=host, port=port, upstream_ports=tuple(sorted(upstreams)))


def _loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _web_children(
    settings: Settings, host: str, port: int, *, workers: int, front: ManagedNginx | None
) -> list[Child]:
    """gunicorns with `workers` workers each as supervised children of `serve`: one on
    host:port, or one on each loopback port behind `front`, whose X-Forwarded-For they then
    believe."""
    from ingest.supervisor import Child
    from localservers.base import port_is_free

    if front is not None:
        binds = [("127.0.0.1", upstream) for upstream in front.upstream_ports]
    elif not port_is_free(host, port):
        raise OneScreenError(f"port {port} on {host} is in use; choose another with --port")
    else:
        binds = [(host, port)]
    children = []
    for n, (bind_host, bind_port) in enumerate(binds):
        env = {
            **_child_env(settings),
            "ONESCREEN_HOST": bind_host,
            "ONESCREEN_PORT": str(bind_port),
            "ONESCREEN_WEB_WORKERS": str(workers),
        }
        if front is not None:
            env["ONESCREEN_TRUSTED_PROXIES"] = str(settings.trusted_proxies + 1)
        name = "web server" + (f" {n}" if len(binds) > 1 else "")
        children.append(Child(name, ["web"], env=env))
    return children


def _child_env(settings: Settings) -> dict[str, str]:
    import os

    from data.engine import embedded_read_url, resolve_database_url

    # children use the same database and Redis rather than each deciding again
    env = {**os.environ, "DATABASE_URL": resolve_database_url(settings)}
    replicas = embedded_read_url(settings)
    if replicas and not settings.read_database_url:
        env["ONESCREEN_READ_DATABASE_URL"] = replicas
    if settings.redis_url:
        env["ONESCREEN_REDIS_URL"] = settings.redis_url
    return env


def _wait_while_serving(webs: list[Child]) -> None:
    import time

    first_start = min(web.started_at for web in webs)
    while True:
        time.sleep(0.5)
        for web in webs:
            process = web.process
            # a gunicorn master that cannot start (bad bind, import error) exits at once with
            # an error code: say so rather than restart it for ever. One killed by a signal
            # (negative code) is restarted: with several, the others answer meanwhile.
            early = web.restarts == 0 and time.monotonic() - first_start < 30
            code = process.poll() if process is not None else None
            if early and code is not None and code >= 0:
                raise OneScreenError(f"the {web.name} failed to start (see the lines above)")


def _local_display_tokens(engine: sa.Engine, settings: Settings) -> dict[str, str]:
    """The quick start's wall and kiosk tokens; none (with a warning) rather than no server."""
    import sqlalchemy as sa

    from data.displays import DisplayTokenError, ensure_local_display_tokens

    try:
        return ensure_local_display_tokens(
            engine, state_file=settings.data_dir / "display-tokens.json"
        )
    except (sa.exc.SQLAlchemyError, OSError, OneScreenError, DisplayTokenError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"warning: no wall/kiosk tokens for this run ({reason})", file=sys.stderr)
        return {}


def _start_live_city(
    args: argparse.Namespace,
    settings: Settings,
    *,
    engine: sa.Engine,
    jobs_engine: sa.Engine,
    port: int,
    webs: list[Child],
) -> tuple[Supervisor | None, RulesLoop]:
    """The incident rules (a thread), and supervised child processes: the web servers
    `webs`, and unless switched off the MQTT broker's ingest worker and the simulator. Their
    credentials travel in their environment, never on a command line (`ps` shows those)."""
    from data.ingest_store import find_principal
    from ingest.broker import broker_url, ingest_credentials
    from ingest.rules_engine import start_rules
    from ingest.supervisor import Child, Supervisor
    from simulator.live import local_token

    rules = start_rules(
        jobs_engine,
        interval_s=settings.rules_interval_seconds,
        redis=connect(settings.redis_url),
        live_window_s=settings.live_window_seconds,
    )
    children = list(webs)
    if not args.no_ingest:
        simulating = settings.simulate and not args.no_simulate
        # the simulator's token (city-wide, asked for explicitly), before the broker is told
        token = local_token(engine, settings, "simulator") if simulating else None
        # every worker's login exists before the broker is told who may read telemetry
        logins = [ingest_credentials(settings, worker=n) for n in range(settings.ingest_workers)]
        url = broker_url(settings, engine=engine)
        env = {**_child_env(settings), "ONESCREEN_MQTT_URL": url}
        for n, login in enumerate(logins):
            worker_env = {
                **env,
                "ONESCREEN_MQTT_WORKER": str(n),
                "ONESCREEN_MQTT_USERNAME": login.username,
                "ONESCREEN_MQTT_PASSWORD": login.password,
            }
            name = "mqtt ingest worker" + (f" {n}" if len(logins) > 1 else "")
            children.append(Child(name, ["ingest-mqtt"], env=worker_env))
        if token is not None:
            principal = find_principal(engine, token=token)
            simulate = ["simulate"]
            if settings.simulate_rate is not None:
                simulate += ["--rate", str(settings.simulate_rate)]
            simulate += ["--transport", settings.simulate_transport, "--duty-officer"]
            if settings.simulate_transport == "http":
                simulate += ["--http-url", f"http://127.0.0.1:{port}/api/v1/readings"]
            simulator_env = {
                **env,
                "ONESCREEN_INGEST_TOKEN": token,
                "ONESCREEN_MQTT_USERNAME": (principal.mqtt_username or "") if principal else "",
                "ONESCREEN_MQTT_PASSWORD": token,
            }
            children.append(Child("simulator", simulate, env=simulator_env))
        names = ", ".join(child.name for child in children if child not in webs)
        print(f"live city: MQTT {url}, {names}")
    if not children:
        return None, rules
    return Supervisor(children).start(), rules
