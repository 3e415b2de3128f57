"""Which MQTT broker the ingest side talks to: ONESCREEN_MQTT_URL, or the managed Mosquitto."""

from __future__ import annotations

from urllib.parse import urlsplit

from config import Settings
from localservers.mosquitto import BrokerError, managed_broker


def broker_url(settings: Settings) -> str:
    """ONESCREEN_MQTT_URL when set, otherwise the managed broker's URL (started on demand)."""
    if settings.mqtt_url:
        return settings.mqtt_url
    return managed_broker(settings).ensure_running()


def parse_broker_url(url: str) -> tuple[str, int]:
    """Host and port of an mqtt:// (or tcp://) URL; port 1883 when not given."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise BrokerError(f"broker URL must look like mqtt://host:1883, not {url!r}")
    return parts.hostname, parts.port or 1883
