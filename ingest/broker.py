"""Which MQTT broker the ingest side talks to (ONESCREEN_MQTT_URL, or the managed Mosquitto), the
logins it knows, and the files it is given: derived from the database's tokens, rewritten
whenever they change."""

from __future__ import annotations

import fcntl
import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import Engine

from config import Settings
from data.displays import write_private
from data.ingest_store import mosquitto_password_hash, mqtt_logins
from localservers.mosquitto import (
    BrokerAuth,
    BrokerError,
    BrokerLogin,
    managed_broker,
    write_auth_files,
)

# what a token's login may publish to: its own telemetry topic, under any prefix
TOKEN_TOPIC = "+/{login}/telemetry"
# what the ingest service reads: every token's telemetry (and nothing else)
INGEST_READ = "+/+/telemetry"
SERVICE_FILE = "mqtt-service-logins.json"


@dataclass(frozen=True)
class MqttCredentials:
    """A login and password to connect with."""

    username: str
    password: str


def broker_url(settings: Settings, *, engine: Engine | None = None) -> str:
    """ONESCREEN_MQTT_URL when set, otherwise the managed broker's URL (started on demand). With
    `engine`, the broker's logins are first brought in step with that database's tokens."""
    if engine is not None:
        sync_broker_auth(engine, settings)
    return settings.mqtt_url or managed_broker(settings).ensure_running()


def parse_broker_url(url: str) -> tuple[str, int]:
    """Host and port of an mqtt:// (or tcp://) URL; port 1883 when not given."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise BrokerError(f"broker URL must look like mqtt://host:1883, not {url!r}")
    return parts.hostname, parts.port or 1883


def broker_auth(engine: Engine, settings: Settings) -> BrokerAuth:
    """Every live token's login (publish to its own topic only) and the ingest service's
    logins (read telemetry only); nobody else, and nothing else."""
    ingest_credentials(settings)  # the service's own login exists before the broker is told
    logins = [
        BrokerLogin(username, digest, publish=(TOKEN_TOPIC.format(login=username),))
        for username, digest in mqtt_logins(engine)
    ]
    logins += [
        BrokerLogin(username, digest, read=(INGEST_READ,))
        for username, digest in _service_logins(settings).items()
    ]
    return BrokerAuth(tuple(logins))


def sync_broker_auth(engine: Engine, settings: Settings) -> bool:
    """Rewrite the broker's password and ACL files from the database: the managed broker's (it
    reloads them if it runs; if not, they are written when it starts), or, for a broker
    OneScreen does not run, those in ONESCREEN_MQTT_AUTH_DIR (it watches them). Whether they
    changed; False when OneScreen writes none (an external broker without an auth directory)."""
    if settings.mqtt_url:
        if settings.mqtt_auth_dir is None:
            return False
        settings.mqtt_auth_dir.mkdir(parents=True, exist_ok=True)
        return write_auth_files(broker_auth(engine, settings), settings.mqtt_auth_dir)
    return managed_broker(settings).apply_auth(broker_auth(engine, settings))


def ingest_credentials(settings: Settings, *, worker: int | None = None) -> MqttCredentials:
    """An ingest worker's MQTT login (and, the broker taking logins as client ids, its
    persistent session's id): ONESCREEN_MQTT_USERNAME/PASSWORD when given, for this process's
    own worker (ONESCREEN_MQTT_WORKER, or `worker` naming it); otherwise the one made for worker
    `worker`, generated once into the data directory."""
    own = worker is None or worker == settings.mqtt_worker
    if own and settings.mqtt_username and settings.mqtt_password:
        return MqttCredentials(settings.mqtt_username, settings.mqtt_password.get_secret_value())
    return service_login(settings, name=worker_login_name(settings, worker=worker))


def worker_login_name(settings: Settings, *, worker: int | None = None) -> str:
    """The service-login name of ingest worker `worker`: worker 0 keeps the name one worker
    always had (and with it the backlog of its session), the others are numbered."""
    index = settings.mqtt_worker if worker is None else worker
    return settings.mqtt_client_id if index == 0 else f"{settings.mqtt_client_id}-{index}"


def service_login(settings: Settings, *, name: str) -> MqttCredentials:
    """A service login with read access to telemetry, made once for `name` and kept (login,
    password and its hash) in `<data dir>/mqtt-service-logins.json`, readable by this account
    only. The login is `name` and a random suffix: Mosquitto 2.0.11 discards an offline
    persistent session's queue when an anonymous connection names its client id (even though
    it refuses the connection), so that id must be one nobody can guess."""
    path = _service_file(settings)
    # ingest workers starting together (compose's ingest and ingest-1) each add theirs
    with _locked(path.with_name(path.name + ".lock")):
        logins = _read_service_file(path)
        if name not in logins:
            password = secrets.token_urlsafe(32)
            logins[name] = {
                "login": f"{name}-{secrets.token_hex(8)}",
                "password": password,
                "hash": mosquitto_password_hash(password),
            }
            write_private(path, json.dumps(logins, indent=1) + "\n")
    return MqttCredentials(logins[name]["login"], logins[name]["password"])


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _service_logins(settings: Settings) -> dict[str, str]:
    """Login → password hash of the service logins kept in the data directory."""
    logins = _read_service_file(_service_file(settings))
    return {entry["login"]: entry["hash"] for entry in logins.values()}


def _service_file(settings: Settings) -> Path:
    from data.engine import embedded_data_dir

    return embedded_data_dir(settings) / SERVICE_FILE


def _read_service_file(path: Path) -> dict[str, dict[str, str]]:
    try:
        logins = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise BrokerError(f"cannot read the MQTT service logins in {path}: {exc}") from None
    return logins if isinstance(logins, dict) else {}
