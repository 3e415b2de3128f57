"""OneScreen command line: `python cli.py --help` (or `python -m cli`)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from config import PROJECT_ROOT, ConfigError, Settings, get_settings
from data.errors import OneScreenError


def _engine(settings: Settings):
    from data.engine import check_database, create_db_engine, resolve_database_url

    engine = create_db_engine(resolve_database_url(settings))
    check_database(engine, require_postgis=False)
    return engine


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from data import migrate

    engine = _engine(settings)
    migrate.upgrade(engine, revision=args.revision)
    print(f"schema at revision {migrate.current_revision(engine)}")
    return 0


def cmd_db_start(args: argparse.Namespace, settings: Settings) -> int:
    from data.engine import describe_url, embedded_cluster

    if not settings.embedded:
        print("DATABASE_URL is set: OneScreen uses that server and manages no cluster of its own.")
        return 0
    url = embedded_cluster(settings).ensure_running()
    print(f"embedded PostgreSQL running: {describe_url(url)}")
    return 0


def cmd_db_stop(args: argparse.Namespace, settings: Settings) -> int:
    from data.engine import embedded_cluster

    if not settings.embedded:
        print("DATABASE_URL is set: there is no embedded cluster to stop.")
        return 0
    stopped = embedded_cluster(settings).stop()
    print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")
    return 0


def cmd_db_status(args: argparse.Namespace, settings: Settings) -> int:
    from data import migrate, writes
    from data.engine import check_database, create_db_engine, describe_url, embedded_cluster

    if settings.embedded:
        cluster = embedded_cluster(settings)
        state = "running" if cluster.is_running() else "stopped"
        print(f"embedded cluster: {cluster.data_dir} ({state}, port {settings.pg_port})")
        if state == "stopped":
            return 0
        url = cluster.url()
    else:
        url = settings.database_url
    engine = create_db_engine(url)
    print(f"database: {describe_url(url)}")
    print(f"server: PostgreSQL {check_database(engine, require_postgis=False)}")
    revision = migrate.current_revision(engine)
    print(f"schema: {revision or 'empty'} (code expects {migrate.head_revision()})")
    if revision:
        print(f"seed: {writes.get_meta(engine, key='seed') or 'none'}")
    return 0


def cmd_db_url(args: argparse.Namespace, settings: Settings) -> int:
    from data.engine import resolve_database_url

    print(resolve_database_url(settings).replace("postgresql+psycopg://", "postgresql://"))
    return 0


def cmd_db_retention(args: argparse.Namespace, settings: Settings) -> int:
    from data import writes

    today = datetime.now(UTC).astimezone().date()
    dropped = writes.apply_retention(
        _engine(settings),
        today=today,
        reading_days=settings.reading_retention_days,
        rollup_days=settings.rollup_retention_days,
    )
    print(f"dropped {len(dropped)} reading partition(s): {', '.join(dropped) or '-'}")
    return 0


def cmd_refresh(args: argparse.Namespace, settings: Settings) -> int:
    from data import writes

    devices = writes.refresh_status(_engine(settings))
    print(f"status snapshot refreshed over {devices} devices")
    return 0


def cmd_seed(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from data import migrate
    from data.errors import AlreadySeeded
    from simulator.seed import seed_city

    engine = _engine(settings)
    migrate.upgrade(engine)
    end = _parse_time(args.until) if args.until else None
    bar = tqdm(unit="dev", desc=f"seeding ({args.scale})", disable=args.quiet)
    try:
        report = seed_city(
            engine,
            scale=args.scale,
            random_seed=args.random_seed,
            end=end,
            reset=args.reset,
            progress=bar.update,
            on_total=lambda total: setattr(bar, "total", total),
        )
    except AlreadySeeded as exc:
        bar.close()
        if args.if_empty:
            print("already seeded; nothing to do")
            return 0
        print(f"nothing done: {exc}", file=sys.stderr)
        return 3
    bar.close()
    print(
        f"seeded scale={report.scale} seed={report.random_seed}: {report.devices:,} devices, "
        f"{report.readings:,} readings ({report.start:%Y-%m-%d %H:%M} → {report.end:%H:%M} UTC), "
        f"{report.incidents:,} incidents in {report.seconds:.1f} s "
        f"(readings at {report.readings_per_second:,.0f}/s)"
    )
    return 0


def cmd_import_streets(args: argparse.Namespace, settings: Settings) -> int:
    from data.reference_data import StreetImportError, import_street_boundaries

    try:
        count = import_street_boundaries(
            _engine(settings),
            path=Path(args.file),
            datum=args.datum,
            code_property=args.code_property,
        )
    except StreetImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"imported real boundaries for {count} street(s)/town(s)")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from data import migrate
    from data.engine import embedded_cluster, get_engine
    from simulator.seed import seed_city

    _terminate_on_sigterm()
    # werkzeug logs every request at INFO unless told otherwise, whatever the root level
    logging.getLogger("werkzeug").setLevel(logging.DEBUG if args.verbose else settings.log_level)
    engine = get_engine()
    migrate.upgrade(engine)
    if not args.no_seed:
        from data import writes

        if writes.get_meta(engine, key="seed") is None:
            print(f"empty database: seeding the {settings.demo_scale} city first…")
            seed_city(engine, scale=settings.demo_scale, random_seed=settings.random_seed)
    host = args.host or settings.host
    port = args.port or settings.port
    workers = 1 if settings.debug else (args.workers or settings.web_workers)
    managed = None
    if workers > 1 and not settings.redis_url:
        managed, settings = _start_managed_redis(settings)
        if not settings.redis_url:
            workers = 1
    from ingest.maintenance import start_maintenance

    jobs_engine = _background_engine(engine)
    start_maintenance(
        jobs_engine,
        status_interval_s=settings.status_refresh_seconds,
        reading_retention_days=settings.reading_retention_days,
        rollup_retention_days=settings.rollup_retention_days,
    )
    web = _web_child(settings, host=host, port=port, workers=workers) if workers > 1 else None
    supervisor, rules = _start_live_city(
        args, settings, engine=engine, jobs_engine=jobs_engine, port=port, web=web
    )
    displays = _local_display_tokens(engine, settings)
    where = f"{workers} gunicorn workers" if web else "one process"
    redis = "shared cache on Redis" if settings.redis_url else "no Redis: per-process cache"
    print(f"OneScreen on http://{host}:{port}/ ({where}, {redis})")
    from data.access import issue_setup_code

    setup_code = issue_setup_code(engine)
    if setup_code:
        print(
            "First start: create the administrator (one-time link, valid 24 h):"
            f" http://{host}:{port}/setup?code={setup_code}"
        )
    for kind, token in displays.items():
        url = _display_url(f"http://{host}:{port}", kind=kind, token=token)
        print(f"{kind.capitalize() + ':':<6} {url}")
    try:
        if web is None:
            from app import create_app
            from components.device_layer import warm_in_background

            app = create_app()
            warm_in_background()
            app.run(host=host, port=port, debug=settings.debug)
        else:
            _wait_while_serving(web)
    finally:
        rules.stop(timeout_s=10)
        if supervisor is not None:
            supervisor.stop(timeout_s=20)
        if managed is not None:
            managed.stop()
        if settings.embedded and args.stop_db:
            embedded_cluster(settings).stop()
    return 0


def _start_managed_redis(settings: Settings):
    """A local redis-server for the web workers (to stop at exit, if this call started it),
    and the settings that name it; when none can be had, one web process serves without."""
    from config import get_settings
    from serving.redis_server import ManagedRedis, RedisServerError, managed_redis

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
    _adopt_redis(server.url())
    # one another `serve` started is left to it
    return (server if started else None), get_settings()


def _adopt_redis(url: str) -> None:
    """Use the Redis at `url` from now on in this process (and its children's environment)."""
    import os

    from config import get_settings
    from serving.events import redis_client

    os.environ["ONESCREEN_REDIS_URL"] = url
    get_settings.cache_clear()
    redis_client.cache_clear()


def _web_child(settings: Settings, *, host: str, port: int, workers: int):
    """gunicorn with `workers` workers on host:port, as a supervised child of `serve`."""
    from data.embedded import port_is_free
    from ingest.supervisor import Child

    if not port_is_free(host, port):
        raise OneScreenError(f"port {port} on {host} is in use; choose another with --port")
    env = {
        **_child_env(settings),
        "ONESCREEN_HOST": host,
        "ONESCREEN_PORT": str(port),
        "ONESCREEN_WEB_WORKERS": str(workers),
    }
    return Child("web server", ["web"], env=env)


def _child_env(settings: Settings) -> dict[str, str]:
    import os

    from data.engine import resolve_database_url

    # children use the same database and Redis rather than each deciding again
    env = {**os.environ, "DATABASE_URL": resolve_database_url(settings)}
    if settings.redis_url:
        env["ONESCREEN_REDIS_URL"] = settings.redis_url
    return env


def _wait_while_serving(web) -> None:
    import time

    first_start = web.started_at
    while True:
        time.sleep(0.5)
        process = web.process
        # a gunicorn master that cannot start (bad bind, import error) exits at once: say so
        # rather than restart it for ever
        early = web.restarts == 0 and time.monotonic() - first_start < 30
        if early and process is not None and process.poll() is not None:
            raise OneScreenError("the web server failed to start (see the lines above)")


def cmd_web(args: argparse.Namespace, settings: Settings) -> int:
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
    import time

    from data.engine import get_engine
    from ingest.maintenance import start_maintenance
    from ingest.rules_engine import start_rules

    _terminate_on_sigterm()
    engine = _background_engine(get_engine())
    maintenance = start_maintenance(
        engine,
        status_interval_s=settings.status_refresh_seconds,
        reading_retention_days=settings.reading_retention_days,
        rollup_retention_days=settings.rollup_retention_days,
    )
    rules = start_rules(engine, interval_s=settings.rules_interval_seconds)
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


def _local_display_tokens(engine, settings: Settings) -> dict[str, str]:
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


def _background_engine(engine):
    """An engine on the same database for the background jobs (see create_background_engine)."""
    from data.engine import create_background_engine

    return create_background_engine(engine.url.render_as_string(hide_password=False))


def _start_live_city(
    args: argparse.Namespace, settings: Settings, *, engine, jobs_engine, port: int, web
):
    """The incident rules (a thread), and supervised child processes: the web server when
    `web`, and unless switched off the MQTT broker's ingest worker and the simulator."""
    from data.ingest_store import create_token, ensure_source
    from ingest.rules_engine import start_rules
    from ingest.supervisor import Child, Supervisor

    rules = start_rules(jobs_engine, interval_s=settings.rules_interval_seconds)
    children = [web] if web is not None else []
    if not args.no_ingest:
        from ingest.broker import broker_url

        url = broker_url(settings)
        ensure_source(engine, source="simulator", name="OneScreen live simulator")
        env = {**_child_env(settings), "ONESCREEN_MQTT_URL": url}
        children.append(Child("mqtt ingest worker", ["ingest-mqtt"], env=env))
        if settings.simulate and not args.no_simulate:
            simulate = ["simulate", "--rate", str(settings.simulate_rate)]
            simulate += ["--transport", settings.simulate_transport]
            if settings.simulate_transport == "http":
                token = create_token(engine, source="simulator", label="serve")
                simulate += ["--http-url", f"http://127.0.0.1:{port}/api/v1/readings"]
                simulate += ["--token", token]
            children.append(Child("simulator", simulate, env=env))
        names = ", ".join(child.name for child in children if child is not web)
        print(f"live city: MQTT {url}, {names}")
    if not children:
        return None, rules
    return Supervisor(children).start(), rules


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    import signal
    import threading

    from data.engine import get_engine
    from simulator.live import start_simulation

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    logging.getLogger("simulator").setLevel(logging.DEBUG if args.verbose else settings.log_level)
    logging.getLogger("ingest").setLevel(logging.DEBUG if args.verbose else settings.log_level)
    report = start_simulation(
        get_engine(),
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
    )
    print(
        f"simulated {report.generated:,} readings in {report.seconds:.1f} s "
        f"({report.generated / max(report.seconds, 1e-9):,.0f}/s) as {report.messages:,} "
        f"messages; {report.delivered:,} confirmed"
    )
    return 1 if report.unconfirmed else 0


def cmd_ingest_mqtt(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.mqtt_worker import run_worker

    _terminate_on_sigterm()
    stats = run_worker(settings)
    print(f"mqtt ingest stopped: {stats}")
    return 0


def cmd_tokens_create(args: argparse.Namespace, settings: Settings) -> int:
    from data.ingest_store import TokenError, create_token

    try:
        token = create_token(
            _engine(settings), source=args.source, device_id=args.device, label=args.label
        )
    except TokenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    scope = f"device {args.device}" if args.device else "any device"
    print(f"# token for source '{args.source}' ({scope}); it is shown only once:")
    print(token)
    return 0


def cmd_tokens_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from data.ingest_store import revoke_tokens

    count = revoke_tokens(_engine(settings), source=args.source)
    print(f"revoked {count} token(s) of source '{args.source}'")
    return 0


def _displays_engine(settings: Settings):
    from data import migrate

    engine = _engine(settings)
    migrate.require_current_schema(engine)
    return engine


def _display_url(base_url: str, *, kind: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/{kind}?token={token}"


def cmd_displays_tokens_create(args: argparse.Namespace, settings: Settings) -> int:
    from data.displays import DisplayTokenError, create_display_token

    try:
        token = create_display_token(
            _displays_engine(settings),
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
    print(_display_url(base_url, kind=args.kind, token=token))
    return 0


def cmd_displays_tokens_list(args: argparse.Namespace, settings: Settings) -> int:
    from data.displays import list_display_tokens

    for row in list_display_tokens(_displays_engine(settings)):
        state = f"revoked {row['revoked_at']:%Y-%m-%d %H:%M}" if row["revoked_at"] else "live"
        seen = f"{row['last_seen_at']:%Y-%m-%d %H:%M}" if row["last_seen_at"] else "never"
        print(
            f"{row['fingerprint']} {row['kind']:<5} {row['district'] or 'city':<6}"
            f" {row['playlist'] or '-':<16} created {row['created_at']:%Y-%m-%d %H:%M}"
            f" seen {seen:<16} {state:<22} {row['label']}"
        )
    return 0


def cmd_displays_tokens_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from data.displays import DisplayTokenError, revoke_display_tokens

    try:
        count = revoke_display_tokens(
            _displays_engine(settings),
            token=args.token,
            fingerprint=args.fingerprint,
            label=args.label,
        )
    except DisplayTokenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"revoked {count} display token(s)")
    return 0


def _read_password(args: argparse.Namespace) -> str:
    """The password from stdin (--password-stdin) or asked twice on the terminal."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    import getpass

    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise AccessErrorForCli("the two passwords differ")
    return first


class AccessErrorForCli(Exception):
    """A users command that cannot go on; printed as one line."""


def _districts_arg(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def cmd_users_create(args: argparse.Namespace, settings: Settings) -> int:
    from data.access import AccessError, create_user, record_audit

    engine = _displays_engine(settings)
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
    from data.access import AccessError, record_audit, update_user

    engine = _displays_engine(settings)
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
    from serving.events import announce_cache_cleared
    from serving.redis_server import managed_redis

    if not settings.redis_url:
        # the Redis a running `serve` started, if any
        server = managed_redis(settings)
        if not server.password_file.exists() or not server.answers():
            return
        _adopt_redis(server.url())
    announce_cache_cleared(source="users")


def cmd_users_list(args: argparse.Namespace, settings: Settings) -> int:
    from data.access import list_users

    for row in list_users(_displays_engine(settings)):
        state = f"disabled {row['disabled_at']:%Y-%m-%d}" if row["disabled_at"] else "enabled"
        seen = f"{row['last_seen']:%Y-%m-%d %H:%M}" if row["last_seen"] else "never"
        print(
            f"{row['username']:<24} {row['role']:<17} {row['districts'] or 'city':<22}"
            f" {state:<20} last seen {seen}  {row['display_name']}"
        )
    return 0


def cmd_users_setup_code(args: argparse.Namespace, settings: Settings) -> int:
    from data.access import issue_setup_code

    code = issue_setup_code(_displays_engine(settings))
    if code is None:
        print("an administrator exists already; use `users create --role admin`", file=sys.stderr)
        return 2
    base_url = args.base_url or f"http://{settings.host}:{settings.port}"
    print(f"create the first administrator (valid 24 h, once): {base_url}/setup?code={code}")
    return 0


def cmd_users_audit(args: argparse.Namespace, settings: Settings) -> int:
    from data.access import audit_entries

    for row in reversed(audit_entries(_displays_engine(settings), limit=args.limit)):
        print(
            f"{row['at']:%Y-%m-%d %H:%M:%S} {row['actor']:<20} {row['action']:<18}"
            f" {row['target'] or '-':<24} {row['ip'] or '-':<16} {row['detail'] or ''}"
        )
    return 0


def _rejected_views(engine, *, views: str) -> list[str]:
    """The items of `views` the wall could not show (all of it when nothing is understood)."""
    from components.playlist import parse_views
    from data.reference_reads import category_codes, district_codes, street_districts

    parsed = parse_views(
        views,
        districts=district_codes(engine),
        categories=category_codes(engine),
        streets=street_districts(engine),
    )
    return parsed.rejected or ([] if parsed.views else [views[:40]])


def cmd_displays_playlists_save(args: argparse.Namespace, settings: Settings) -> int:
    from data.displays import PlaylistError, save_playlist

    engine = _displays_engine(settings)
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
    from data.displays import list_playlists

    for playlist in list_playlists(_displays_engine(settings)):
        reload = f"{playlist.reload_hours:g} h" if playlist.reload_hours else "never"
        print(
            f"{playlist.name:<16} every {playlist.interval_s} s,"
            f" attention {playlist.attention_s} s,"
            f" metric {playlist.metric or 'default'}, sound {'on' if playlist.sound else 'off'},"
            f" reload {reload}, updated {playlist.updated_at:%Y-%m-%d %H:%M}: {playlist.views}"
        )
    return 0


def cmd_displays_playlists_delete(args: argparse.Namespace, settings: Settings) -> int:
    from data.displays import delete_playlist

    if not delete_playlist(_displays_engine(settings), name=args.name):
        print(f"error: no playlist named {args.name!r}", file=sys.stderr)
        return 2
    print(f"deleted playlist '{args.name}' (its tokens fall back to their URL's views)")
    return 0


def cmd_dead_letters(args: argparse.Namespace, settings: Settings) -> int:
    from data.ingest_store import dead_letters

    for letter in dead_letters(_engine(settings), limit=args.limit):
        print(
            f"#{letter['id']} {letter['received_at']:%Y-%m-%d %H:%M:%S} ×{letter['times']}"
            f" {letter['channel']} {letter['source_code'] or '-'} {letter['topic'] or ''}"
            f" — {letter['reason']}"
        )
        for row in letter["rejected"][:5]:
            print(f"    row {row['index']}: {row['code']} ({row['message']})")
    return 0


def cmd_rules_list(args: argparse.Namespace, settings: Settings) -> int:
    from data.rules_store import load_rules

    for rule in load_rules(_engine(settings)):
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


def cmd_mqtt_status(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.broker import managed_broker

    if settings.mqtt_url:
        print(f"ONESCREEN_MQTT_URL is set: {settings.mqtt_url} (not managed by OneScreen)")
        return 0
    broker = managed_broker(settings)
    state = "running" if broker.is_running() else "stopped"
    print(f"managed Mosquitto: {broker.url} ({state}), files in {broker.root}")
    return 0


def cmd_mqtt_stop(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.broker import managed_broker

    if settings.mqtt_url:
        print("ONESCREEN_MQTT_URL is set: there is no managed broker to stop.")
        return 0
    stopped = managed_broker(settings).stop()
    print("managed Mosquitto stopped" if stopped else "managed Mosquitto was not running")
    return 0


def cmd_rules_run(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from data.engine import get_engine
    from ingest.rules_engine import start_rules

    _terminate_on_sigterm()
    loop = start_rules(_background_engine(get_engine()), interval_s=settings.rules_interval_seconds)
    print(f"incident rules running every {settings.rules_interval_seconds:g} s (Ctrl-C stops)")
    try:
        while loop.thread.is_alive():
            time.sleep(1)
    except KeyboardInterrupt:
        loop.stop()
    return 0


def _terminate_on_sigterm() -> None:
    import signal

    def interrupt(_signum, _frame):
        # shutting down already: a second SIGTERM (e.g. to the whole process group while the
        # interpreter waits for its threads) must not abort the shutdown with a traceback
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise OneScreenError(
            f"--until must be an ISO time such as 2026-11-24T08:00+08:00, not {text!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="cli.py", description="OneScreen 一屏观全城 — city operations dashboard."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    db = commands.add_parser("db", help="manage the database (embedded cluster, schema)")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = db_commands.add_parser("upgrade", help="create or migrate the schema")
    upgrade.add_argument("--revision", default="head", help="target revision (default: head)")
    upgrade.set_defaults(handler=cmd_db_upgrade)
    db_commands.add_parser("start", help="create/start the embedded cluster").set_defaults(
        handler=cmd_db_start
    )
    db_commands.add_parser("stop", help="stop the embedded cluster").set_defaults(
        handler=cmd_db_stop
    )
    db_commands.add_parser("status", help="where the database is and what it holds").set_defaults(
        handler=cmd_db_status
    )
    db_commands.add_parser("url", help="print the database URL (with password)").set_defaults(
        handler=cmd_db_url
    )
    db_commands.add_parser(
        "retention", help="drop readings and rollups older than the retention settings"
    ).set_defaults(handler=cmd_db_retention)

    seed = commands.add_parser("seed", help="generate the synthetic city")
    seed.add_argument(
        "--scale",
        choices=["tiny", "demo", "seed"],
        default="demo",
        help="tiny: 3k devices/6 h; demo: 20k/24 h; seed: 510k/24 h (8.4M readings)",
    )
    seed.add_argument(
        "--random-seed",
        type=int,
        default=get_settings_default("random_seed"),
        help="random seed (same seed + same --until = same city)",
    )
    seed.add_argument("--until", help="end of the generated window (ISO time; default: now)")
    seed.add_argument("--reset", action="store_true", help="replace an existing city")
    seed.add_argument(
        "--if-empty", action="store_true", help="exit quietly with 0 when a city is already there"
    )
    seed.add_argument("--quiet", action="store_true", help="no progress bar")
    seed.set_defaults(handler=cmd_seed)

    refresh = commands.add_parser("refresh", help="recompute the device status snapshot now")
    refresh.set_defaults(handler=cmd_refresh)

    streets = commands.add_parser(
        "import-streets", help="replace approximate street areas with real boundaries (GeoJSON)"
    )
    streets.add_argument("file", help="GeoJSON FeatureCollection of street/town polygons")
    streets.add_argument(
        "--datum",
        choices=["gcj02", "wgs84"],
        default="gcj02",
        help="datum of the file's coordinates (AMap data is gcj02)",
    )
    streets.add_argument(
        "--code-property",
        default="street_code",
        help="feature property holding the 9-digit street code",
    )
    streets.set_defaults(handler=cmd_import_streets)

    ingest_mqtt = commands.add_parser(
        "ingest-mqtt", help="consume device telemetry from the MQTT broker into the store"
    )
    ingest_mqtt.set_defaults(handler=cmd_ingest_mqtt)

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

    displays = commands.add_parser(
        "displays", help="video walls and kiosks: display tokens and saved wall playlists"
    )
    display_commands = displays.add_subparsers(
        dest="displays_command", required=True, metavar="WHAT"
    )
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
    selector.add_argument("--token", help="the token itself")
    revoke.set_defaults(handler=cmd_displays_tokens_revoke)

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

    users = commands.add_parser("users", help="people who sign in: roles, districts, audit")
    user_commands = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    roles = ["admin", "operator", "district_manager", "viewer"]
    ucreate = user_commands.add_parser("create", help="create a user (asks for the password)")
    ucreate.add_argument("username", help="2-64 of a-z 0-9 . _ -")
    ucreate.add_argument("--role", required=True, choices=roles)
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
    uupdate.add_argument("--role", choices=roles)
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

    letters = commands.add_parser("dead-letters", help="show readings that could not be stored")
    letters.add_argument("--limit", type=int, default=20)
    letters.set_defaults(handler=cmd_dead_letters)

    rules = commands.add_parser("rules", help="incident rules")
    rule_commands = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    rule_commands.add_parser("list", help="list the incident rules").set_defaults(
        handler=cmd_rules_list
    )
    rule_commands.add_parser(
        "run", help="run the rules engine alone (serve runs it too)"
    ).set_defaults(handler=cmd_rules_run)

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

    commands.add_parser(
        "web", help="the web server alone: gunicorn app:server with gunicorn.conf.py"
    ).set_defaults(handler=cmd_web)
    commands.add_parser(
        "jobs", help="incident rules, device status refresh and retention (one per database)"
    ).set_defaults(handler=cmd_jobs)

    simulate = commands.add_parser(
        "simulate", help="stream live readings of the seeded devices (MQTT or HTTP)"
    )
    simulate.add_argument(
        "--rate",
        type=float,
        help="readings per second (default: ONESCREEN_SIMULATE_RATE, 97)",
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
        default=20,
        metavar="MINUTES",
        help="calm minutes between rainstorms/typhoons (0: none; default 20)",
    )
    simulate.add_argument("--storm-now", action="store_true", help="start with a storm")
    simulate.set_defaults(handler=cmd_simulate)
    return parser


def get_settings_default(name: str) -> object:
    """A setting's default for --help text, without failing on a bad environment."""
    return Settings.model_fields[name].default


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; errors a user can fix print one line and exit non-zero."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    try:
        return handler(args, get_settings())
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except OneScreenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
