"""`db …` (embedded cluster, schema, retention) and `refresh` (the device status snapshot)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from cli.common import Subparsers, open_engine
from config import Settings
from localservers.ha import HaCluster


def register(commands: Subparsers) -> None:
    """Add `db` and its actions, and `refresh`."""
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
        "crash-leader",
        help="ONESCREEN_HA: kill the leading node as a host crash would (a drill: the replica "
        "takes over; `db start` brings the node back as a replica)",
    ).set_defaults(handler=cmd_db_crash_leader)
    db_commands.add_parser(
        "retention", help="drop readings and rollups older than the retention settings"
    ).set_defaults(handler=cmd_db_retention)

    refresh = commands.add_parser("refresh", help="recompute the device status snapshot now")
    refresh.set_defaults(handler=cmd_refresh)


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    """Create or migrate the schema to `--revision`."""
    from data import migrate

    engine = open_engine(settings)
    migrate.upgrade(engine, revision=args.revision)
    print(f"schema at revision {migrate.current_revision(engine)}")
    return 0


def cmd_db_start(args: argparse.Namespace, settings: Settings) -> int:
    """Create or start the embedded cluster."""
    from data.engine import describe_url, embedded_cluster

    if not settings.embedded:
        print("DATABASE_URL is set: OneScreen uses that server and manages no cluster of its own.")
        return 0
    cluster = embedded_cluster(settings)
    url = cluster.ensure_running()
    print(f"embedded PostgreSQL running: {describe_url(url)}")
    if isinstance(cluster, HaCluster):
        print(f"HA nodes: {_roles(cluster)}; replicas for dashboards: {cluster.read_url()}")
    return 0


def cmd_db_crash_leader(args: argparse.Namespace, settings: Settings) -> int:
    """Kill the HA cluster's leader outright and report how long until another leads."""
    from data.engine import embedded_cluster

    cluster = embedded_cluster(settings)
    if not settings.embedded or not isinstance(cluster, HaCluster):
        print("error: only the embedded HA cluster (ONESCREEN_HA=true) has a leader to crash")
        return 2
    leader = cluster.leader()
    if leader is None:
        print("error: no node leads now (`db start` starts the cluster)")
        return 1
    leader.kill()
    print(f"killed {leader.name} (Patroni and PostgreSQL, SIGKILL); waiting for a new leader…")
    took = cluster.wait_until(lambda: cluster.leader() is not None, timeout_s=120, what="leader")
    print(f"{_roles(cluster)}: a new leader after {took:.1f} s")
    return 0


def _roles(cluster: HaCluster) -> str:
    return ", ".join(f"{name} {role or 'down'}" for name, role in cluster.roles().items())


def cmd_db_stop(args: argparse.Namespace, settings: Settings) -> int:
    """Stop the embedded cluster."""
    from data.engine import embedded_cluster

    if not settings.embedded:
        print("DATABASE_URL is set: there is no embedded cluster to stop.")
        return 0
    stopped = embedded_cluster(settings).stop()
    print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")
    return 0


def cmd_db_status(args: argparse.Namespace, settings: Settings) -> int:
    """Where the database is, its server, schema revision and seed."""
    from data import migrate, writes
    from data.engine import check_database, create_db_engine, describe_url, embedded_cluster

    url = settings.database_url
    if url is None:  # the embedded cluster
        cluster = embedded_cluster(settings)
        state = "running" if cluster.is_running() else "stopped"
        port = cluster.proxy.port if isinstance(cluster, HaCluster) else cluster.port
        print(f"embedded cluster: {cluster.data_dir} ({state}, port {port})")
        if isinstance(cluster, HaCluster):
            print(f"HA nodes: {_roles(cluster)}")
        if state == "stopped":
            return 0
        url = cluster.url()
    engine = create_db_engine(url)
    print(f"database: {describe_url(url)}")
    print(f"server: PostgreSQL {check_database(engine, require_postgis=False)}")
    revision = migrate.current_revision(engine)
    print(f"schema: {revision or 'empty'} (code expects {migrate.head_revision()})")
    if revision:
        print(f"seed: {writes.get_meta(engine, key='seed') or 'none'}")
    return 0


def cmd_db_url(args: argparse.Namespace, settings: Settings) -> int:
    """Print the database URL, password included."""
    from data.engine import resolve_database_url

    print(resolve_database_url(settings).replace("postgresql+psycopg://", "postgresql://"))
    return 0


def cmd_db_retention(args: argparse.Namespace, settings: Settings) -> int:
    """Drop reading partitions and rollups older than the retention settings."""
    from data import writes

    today = datetime.now(UTC).astimezone().date()
    dropped = writes.apply_retention(
        open_engine(settings),
        today=today,
        reading_days=settings.reading_retention_days,
        rollup_days=settings.rollup_retention_days,
    )
    print(f"dropped {len(dropped)} reading partition(s): {', '.join(dropped) or '-'}")
    return 0


def cmd_refresh(args: argparse.Namespace, settings: Settings) -> int:
    """Recompute the device status snapshot now."""
    from data import writes

    devices = writes.refresh_status(open_engine(settings))
    print(f"status snapshot refreshed over {devices} devices")
    return 0
