"""Settings: defaults, environment, and readable errors for bad values."""

import tempfile
from pathlib import Path

import pytest

from config import ConfigError, load_settings


def test_defaults_use_the_embedded_cluster(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = load_settings()
    assert settings.embedded
    assert settings.database_url is None
    assert settings.pg_port == 54329


def test_database_url_from_environment(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db.example:5432/city")
    settings = load_settings()
    assert not settings.embedded
    assert settings.database_url == "postgresql://u:p@db.example:5432/city"


def test_blank_database_url_means_embedded(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "  ")
    assert load_settings().embedded


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DATABASE_URL", "mysql://u@h/db", "DATABASE_URL"),
        ("ONESCREEN_PG_PORT", "eighty", "ONESCREEN_PG_PORT"),
        ("ONESCREEN_PG_PORT", "80", "ONESCREEN_PG_PORT"),
        ("ONESCREEN_READING_RETENTION_DAYS", "1", "ONESCREEN_READING_RETENTION_DAYS"),
        ("ONESCREEN_LOG_LEVEL", "LOUD", "ONESCREEN_LOG_LEVEL"),
        ("ONESCREEN_REDIS_URL", "localhost:6379", "ONESCREEN_REDIS_URL"),
        ("ONESCREEN_READ_DATABASE_URL", "mysql://replica/db", "ONESCREEN_READ_DATABASE_URL"),
        ("ONESCREEN_WEB_WORKERS", "0", "ONESCREEN_WEB_WORKERS"),
        ("ONESCREEN_CACHE_SECONDS", "-1", "ONESCREEN_CACHE_SECONDS"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch, variable, value, expected):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert expected in str(caught.value)
    assert "Traceback" not in str(caught.value)


def test_embedded_data_dir_moves_out_of_unreachable_checkouts(monkeypatch, tmp_path):
    import os

    from data.engine import SYSTEM_DATA_ROOT, embedded_data_dir

    monkeypatch.delenv("ONESCREEN_DATA_DIR", raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    locked = tmp_path / "home"
    locked.mkdir(mode=0o700)
    default = load_settings()
    # as if the checkout (and so the default data dir) sat inside a private home directory
    object.__setattr__(default, "data_dir", locked / "repo" / ".onescreen")
    assert embedded_data_dir(default).parent == SYSTEM_DATA_ROOT
    explicit = load_settings(data_dir=locked / "repo" / ".onescreen")
    assert embedded_data_dir(explicit) == locked / "repo" / ".onescreen"
    open_dir = Path(tempfile.mkdtemp(prefix="onescreen-open-"))
    open_dir.chmod(0o755)
    try:
        reachable = load_settings()
        object.__setattr__(reachable, "data_dir", open_dir / ".onescreen")
        assert embedded_data_dir(reachable) == open_dir / ".onescreen"
    finally:
        open_dir.rmdir()


def test_panels_must_not_go_stale_between_two_refreshes():
    with pytest.raises(ConfigError, match=r"ONESCREEN_UI_STALE_SECONDS .* must be longer"):
        load_settings(ui_refresh_seconds=30, ui_stale_seconds=15)
    assert load_settings(ui_refresh_seconds=3, ui_stale_seconds=15).ui_stale_seconds == 15


def test_broker_url_must_be_mqtt():
    with pytest.raises(ConfigError, match="ONESCREEN_MQTT_URL"):
        load_settings(mqtt_url="http://broker:1883")
    assert load_settings(mqtt_url=" ").mqtt_url is None


def test_production_refuses_debug_and_insecure_cookies(monkeypatch):
    monkeypatch.setenv("ONESCREEN_ENVIRONMENT", "production")
    assert load_settings().secure_cookies  # on by default in production
    monkeypatch.setenv("ONESCREEN_DEBUG", "true")
    with pytest.raises(ConfigError, match="ONESCREEN_DEBUG"):
        load_settings()
    monkeypatch.setenv("ONESCREEN_DEBUG", "false")
    monkeypatch.setenv("ONESCREEN_COOKIE_SECURE", "false")
    with pytest.raises(ConfigError, match="ONESCREEN_COOKIE_SECURE"):
        load_settings()


def test_development_cookies_follow_the_setting(monkeypatch):
    monkeypatch.delenv("ONESCREEN_ENVIRONMENT", raising=False)
    monkeypatch.delenv("ONESCREEN_COOKIE_SECURE", raising=False)
    assert not load_settings().secure_cookies
    monkeypatch.setenv("ONESCREEN_COOKIE_SECURE", "true")
    assert load_settings().secure_cookies


def test_the_ingest_group_and_worker_counts_refuse_what_a_broker_or_serve_cannot_use():
    for bad in ("a/b", "a+b", "#", "x" * 65):
        with pytest.raises(ConfigError, match="ONESCREEN_MQTT_SHARE_GROUP"):
            load_settings(mqtt_share_group=bad)
    assert load_settings(mqtt_share_group="").mqtt_share_group == ""  # a plain subscription
    from ingest.mqtt_worker import share_group

    # by default one group per deployment, named by its client id
    assert share_group(load_settings(mqtt_client_id="city-a")) == "city-a"
    assert share_group(load_settings(mqtt_share_group="", mqtt_client_id="city-a")) == ""
    for name, bad in (("ingest_workers", 0), ("ingest_workers", 17), ("mqtt_worker", 16)):
        with pytest.raises(ConfigError, match=f"ONESCREEN_{name.upper()}"):
            load_settings(**{name: bad})
    with pytest.raises(ConfigError, match="ONESCREEN_WEB_INSTANCES"):
        load_settings(web_instances=9)
    with pytest.raises(ConfigError, match="ONESCREEN_HA_BASE_PORT"):
        load_settings(ha_base_port=65530)  # its block of ports would run past 65535
