"""The local servers OneScreen starts (PostgreSQL, Mosquitto, Redis, nginx) and what a bench's
`serve` leaves behind: reuse, stop, a port someone else holds, nothing left running afterwards."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from bench.harness import _isolated_env, serving
from config import get_settings
from ingest.broker import parse_broker_url
from localservers.base import LocalServer, free_port, port_open
from localservers.mosquitto import BrokerError, ManagedBroker
from localservers.nginx import (
    ManagedNginx,
    ProxyError,
    compose_config,
    error_body,
    managed_nginx,
    render_config,
)
from localservers.postgres import EmbeddedPostgres
from localservers.redis import ManagedRedis

pytestmark = pytest.mark.timeout(180)


def _postgres(root: Path, port: int) -> EmbeddedPostgres:
    settings = get_settings()
    return EmbeddedPostgres(
        root=root, port=port, bin_dir=settings.pg_bin_dir, os_user=settings.pg_os_user
    )


SERVERS: dict[str, Callable[[Path, int], LocalServer]] = {
    "postgres": _postgres,
    "mosquitto": lambda root, port: ManagedBroker(root=root, port=port),
    "redis": lambda root, port: ManagedRedis(root=root, port=port),
}


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A directory the servers' unprivileged accounts can reach, removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="onescreen-local-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.parametrize("kind", SERVERS)
def test_a_second_handle_reuses_the_running_server_and_stop_leaves_nothing(kind, scratch):
    make = SERVERS[kind]
    server = make(scratch / kind, free_port())
    server.ensure_running()
    try:
        pid = server._pid()
        assert pid is not None and _pid_alive(pid) and port_open(server.port)
        # another process (here: another handle) finds it and starts no second one
        again = make(scratch / kind, server.port)
        assert again.is_running()
        assert again.start_if_stopped() is False
        assert server._pid() == pid
    finally:
        assert server.stop()
    assert not server.is_running() and not server.stop()
    assert not _pid_alive(pid) and not port_open(server.port)


@pytest.mark.parametrize("kind", SERVERS)
def test_a_port_someone_else_holds_is_named_with_the_setting_that_moves_it(kind, scratch):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        server = SERVERS[kind](scratch / kind, squatter.getsockname()[1])
        with pytest.raises(server.error, match="already taken") as raised:
            server.ensure_running()
    assert server.port_variable in str(raised.value) and server.url_variable in str(raised.value)
    assert not server.is_running()


def test_managed_broker_reports_why_it_could_not_start(scratch):
    broker = ManagedBroker(root=scratch / "mqtt", port=free_port(), binary="/bin/false")
    with pytest.raises(BrokerError, match="exited at start"):
        broker.ensure_running()
    assert not broker.pid_file.exists()


def test_managed_broker_moves_when_its_port_setting_changes(scratch):
    first = ManagedBroker(root=scratch / "mqtt", port=free_port())
    first.ensure_running()
    try:
        moved = ManagedBroker(root=scratch / "mqtt", port=free_port())
        assert moved.ensure_running() == moved.url
        host, port = parse_broker_url(moved.url)
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="moved")
        client.connect(host, port)  # refused if it still listened on the old port
        client.disconnect()
        assert not port_open(first.port)
    finally:
        ManagedBroker(root=scratch / "mqtt", port=0).stop()


def test_a_bench_server_gets_ports_and_a_data_dir_of_its_own(monkeypatch):
    settings = get_settings()
    monkeypatch.setenv("ONESCREEN_REDIS_URL", "redis://developer:6379/0")
    env, scratch = _isolated_env({"DATABASE_URL": "postgresql://x@127.0.0.1/y"})
    try:
        assert scratch is not None and env["ONESCREEN_DATA_DIR"] == str(scratch)
        assert int(env["ONESCREEN_MQTT_BROKER_PORT"]) != settings.mqtt_broker_port
        assert int(env["ONESCREEN_REDIS_PORT"]) != settings.redis_port
        assert env["ONESCREEN_REDIS_URL"] == env["ONESCREEN_MQTT_URL"] == ""
    finally:
        os.rmdir(scratch)
    given = {"DATABASE_URL": "postgresql://x@127.0.0.1/y", "ONESCREEN_MQTT_URL": "mqtt://b:1"}
    assert _isolated_env(given)[0]["ONESCREEN_MQTT_URL"] == "mqtt://b:1"


def _nginx(scratch: Path, **settings: object) -> ManagedNginx:
    chosen = get_settings().model_copy(update={"data_dir": scratch, **settings})
    # nothing listens on the web server's port: the proxy's own 502 answers
    return managed_nginx(chosen, host="127.0.0.1", port=free_port(), upstream_ports=(free_port(),))


def _answer(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def test_managed_nginx_restarts_with_a_new_config_and_stops(scratch):
    proxy = _nginx(scratch)
    proxy.restart()
    try:
        first = proxy._pid()
        # nginx rewrites its command line: still recognised as ours
        assert first is not None and proxy.is_running()
        assert _answer(proxy_url(proxy, "/")) == (
            502,
            "text/plain",
            error_body(502, json_body=False),
        )
        assert _answer(proxy_url(proxy, "/api/v1/health")) == (
            502,
            "application/json",
            error_body(502, json_body=True),
        )
        if os.geteuid() == 0:
            workers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _ppid(p) == first]
            assert workers and all(p.stat().st_uid != 0 for p in workers)
        proxy.restart()
        assert proxy._pid() not in (None, first) and not _pid_alive(first)
    finally:
        assert proxy.stop()
    assert not port_open(proxy.port) and not proxy.is_running()


def proxy_url(proxy: ManagedNginx, path: str) -> str:
    """`path` on the proxy."""
    return f"http://127.0.0.1:{proxy.port}{path}"


def _ppid(proc: Path) -> int:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def test_managed_nginx_names_the_port_someone_else_holds(scratch):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        proxy = _nginx(scratch)
        proxy.port = squatter.getsockname()[1]
        with pytest.raises(ProxyError, match=r"already taken.*--port"):
            proxy.restart()


@pytest.mark.parametrize("outer", [0, 1])
def test_the_proxy_configs_are_valid_nginx(scratch, outer):
    proxy = _nginx(scratch, trusted_proxies=outer)
    config = scratch / "check.conf"
    config.write_text(render_config(proxy.site(user=None)))
    (proxy.root / "tmp").mkdir(parents=True)
    check = subprocess.run(
        ["/usr/sbin/nginx", "-t", "-e", str(scratch / "t.log"), "-c", str(config)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    text = config.read_text()
    # without proxies in front, what a client says about itself is overwritten, not appended
    overwritten = "proxy_set_header X-Forwarded-For $remote_addr;"
    assert (overwritten in text) is (outer == 0)
    assert "$proxy_add_x_forwarded_for" not in text or outer
    for prefix, limit in get_settings().body_limits().items():
        assert (f"location {prefix} {{\n      client_max_body_size {limit};" in text) or not prefix


def test_the_compose_proxy_config_is_the_template():
    current = (Path(__file__).resolve().parents[2] / "docker" / "nginx.conf").read_text()
    assert current == compose_config(), (
        "docker/nginx.conf is out of date: python -m localservers.nginx > docker/nginx.conf"
    )


def test_what_a_bench_server_starts_is_stopped_with_it(live_city_url, scratch):
    """`serve` leaves its Mosquitto running by design (a developer's backlog survives a
    restart): the harness stops it, and the Redis, when the bench's server ends."""
    broker_port, redis_port = free_port(), free_port()
    env = {
        "DATABASE_URL": live_city_url,
        "ONESCREEN_DATA_DIR": str(scratch),
        "ONESCREEN_MQTT_BROKER_PORT": str(broker_port),
        "ONESCREEN_REDIS_PORT": str(redis_port),
        "ONESCREEN_WEB_WORKERS": "2",
        "ONESCREEN_SIMULATE": "false",
        "ONESCREEN_MQTT_CLIENT_ID": f"harness-{broker_port}",
        "ONESCREEN_LOG_LEVEL": "WARNING",
    }
    log_path = scratch / "serve.log"
    port = free_port()
    with serving(env, log_path=log_path, ready_path="/login", port=port):
        assert port_open(broker_port) and port_open(redis_port)
        assert (scratch / f"nginx-{port}" / "nginx.pid").exists()
    assert not port_open(broker_port) and not port_open(redis_port) and not port_open(port)
    log = log_path.read_text()
    assert f"harness: stopped the Mosquitto serve left on port {broker_port}" in log
    # serve itself stops the Redis and the nginx it started
    assert "stopped the redis-server" not in log and "stopped the nginx" not in log
    assert "Traceback" not in log
