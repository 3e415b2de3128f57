"""Settings: defaults, environment, and readable errors for bad values."""

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
    ],
)
def test_bad_values_name_the_variable(monkeypatch, variable, value, expected):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert expected in str(caught.value)
    assert "Traceback" not in str(caught.value)
