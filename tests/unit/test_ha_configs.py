"""The HA deployment's generated files are their templates' output, HAProxy accepts its
configuration, and docker-compose.ha.yml wires what the local cluster runs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from localservers import haproxy, patroni
from localservers.ha import port_block

ROOT = Path(__file__).resolve().parents[2]


class _Reset(yaml.SafeLoader):
    """Reads compose's `!reset` tag (an override that empties a value)."""


_Reset.add_constructor("!reset", lambda loader, node: None)


@pytest.mark.parametrize(
    ("path", "render", "command"),
    [
        ("docker/patroni.yml", patroni.compose_config, "python -m localservers.patroni"),
        ("docker/haproxy.cfg", haproxy.compose_config, "python -m localservers.haproxy"),
    ],
)
def test_the_compose_files_are_the_templates(path, render, command):
    assert (ROOT / path).read_text() == render(), f"{path} is out of date: {command} > {path}"


def test_haproxy_accepts_both_configurations(tmp_path):
    if shutil.which("haproxy", path="/usr/sbin:/usr/bin") is None:
        pytest.fail("haproxy is needed (scripts/install-system-deps.sh)")
    nodes = (haproxy.Backend("node0", 5510, 5520), haproxy.Backend("node1", 5511, 5521))
    local = tmp_path / "local.cfg"
    local.write_text(haproxy.render_config(port=5502, read_port=5503, nodes=nodes))
    for config in (local, ROOT / "docker" / "haproxy.cfg"):
        check = subprocess.run(
            [shutil.which("haproxy", path="/usr/sbin:/usr/bin") or "", "-c", "-f", str(config)],
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stdout + check.stderr


def test_the_compose_patroni_settings_leave_each_node_to_its_environment():
    config = yaml.safe_load((ROOT / "docker" / "patroni.yml").read_text())
    assert "name" not in config and "authentication" not in config["postgresql"]
    assert config["etcd3"] == {"hosts": "etcd:2379"}
    dcs = config["bootstrap"]["dcs"]
    assert dcs["synchronous_mode"] is True and dcs["synchronous_mode_strict"] is False
    assert dcs["loop_wait"] + 2 * dcs["retry_timeout"] <= dcs["ttl"]  # Patroni's own rule
    assert all("samenet" in line for line in config["bootstrap"]["pg_hba"][1:])


def test_the_ha_override_puts_haproxy_in_the_databases_place():
    base = yaml.load((ROOT / "docker-compose.yml").read_text(), Loader=_Reset)
    ha = yaml.load((ROOT / "docker-compose.ha.yml").read_text(), Loader=_Reset)
    services = ha["services"]
    assert {"etcd", "pg0", "pg1", "db", "ingest-1"} <= set(services)
    # every service's DATABASE_URL names db:5432, which is now HAProxy's writers' port
    assert "@db:5432/" in base["x-onescreen"]["environment"]["DATABASE_URL"]
    assert "haproxy" in services["db"]["command"]
    assert services["app"]["environment"]["ONESCREEN_READ_DATABASE_URL"].startswith(
        "postgresql://db:5001/"
    )
    for name in ("pg0", "pg1"):
        env = services[name]["environment"]
        assert env["PATRONI_NAME"] == name
        assert env["PATRONI_POSTGRESQL_CONNECT_ADDRESS"] == f"{name}:5432"
    assert services["ingest-1"]["command"][-2:] == ["--worker", "1"]


def test_a_cluster_on_a_base_port_names_every_port_it_listens_on():
    assert port_block(50_000) == [50_000, 50_001, 50_002, 50_003, 50_010, 50_011, 50_020, 50_021]
