"""One settings object for OneScreen, read from the environment and `.env`, validated early."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent
CITY_TIMEZONE = "Asia/Shanghai"
# where Dash serves scripts and styles: public (no session needed) and versioned by their URLs,
# so the proxy keeps them (localservers.nginx) and the session gate lets them by (web.session)
STATIC_PREFIXES = ("/assets/", "/_dash-component-suites/")
# Debian's Chromium: the tests, the benches and the review's PDF print with it
CHROMIUM = os.environ.get("ONESCREEN_CHROMIUM", "/usr/bin/chromium")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


class Settings(BaseSettings):
    """Every OneScreen setting; environment variables are `ONESCREEN_<NAME>` except DATABASE_URL."""

    model_config = SettingsConfigDict(
        env_prefix="ONESCREEN_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    database_url: str | None = Field(
        default=None,
        validation_alias="DATABASE_URL",
        description="PostgreSQL+PostGIS URL; unset = the project-managed embedded cluster.",
    )
    data_dir: Path = Field(
        default=PROJECT_ROOT / ".onescreen",
        description="Where the embedded cluster and other local state live (git-ignored).",
    )
    pg_bin_dir: Path = Field(
        default=Path("/usr/lib/postgresql/15/bin"),
        description="PostgreSQL 15 server binaries (initdb, pg_ctl, postgres).",
    )
    pg_port: int = Field(default=54329, ge=1024, le=65535, description="Embedded cluster port.")
    pg_os_user: str = Field(
        default="onescreen",
        description="Unprivileged OS user that owns the embedded cluster when run as root.",
    )
    ha: bool = Field(
        default=False,
        description="Run the embedded database highly available: two Patroni nodes (a leader "
        "and a synchronous replica that takes over on its own), etcd, and HAProxy in front "
        "(writes to the leader, dashboard reads to the replica).",
    )
    ha_base_port: int = Field(
        default=54400,
        ge=1024,
        le=65500,
        description="First of the HA cluster's ports: etcd +0/+1, HAProxy writes +2 and reads +3, "
        "node i's PostgreSQL +10+i and its Patroni API +20+i.",
    )
    reading_retention_days: int = Field(
        default=35,
        ge=2,
        le=3650,
        description="Daily reading partitions older than this are dropped.",
    )
    rollup_retention_days: int = Field(
        default=400, ge=2, le=36500, description="15-minute and hourly rollups kept this long."
    )
    host: str = Field(default="127.0.0.1", description="Address the web server binds to.")
    port: int = Field(default=8050, ge=1, le=65535, description="Web server port.")
    debug: bool = Field(default=False, description="Dash debug mode (never in production).")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    demo_scale: Literal["tiny", "demo", "seed"] = Field(
        default="demo", description="Scale `make run` seeds on first start."
    )
    random_seed: int = Field(default=20260701, description="Seed of the synthetic city.")
    status_refresh_seconds: float = Field(
        default=15, ge=5, le=3600, description="How often `serve` recomputes online/offline."
    )

    ui_refresh_seconds: float = Field(
        default=3, ge=0.2, le=3600, description="How often open dashboards re-read their figures."
    )
    ui_stale_seconds: float = Field(
        default=15,
        ge=3,
        le=86400,
        description="A panel whose data is older than this turns amber and says it is delayed.",
    )
    # Live ingest -------------------------------------------------------------------------------
    mqtt_url: str | None = Field(
        default=None,
        description="MQTT broker (mqtt://host:port); unset = a Mosquitto that serve starts itself.",
    )
    mqtt_broker_port: int = Field(
        default=18830, ge=1024, le=65535, description="Port of the self-started Mosquitto."
    )
    mqtt_topic_prefix: str = Field(
        default="onescreen",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Topics are <prefix>/<source>/telemetry.",
    )
    mqtt_client_id: str = Field(
        default="onescreen-ingest",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Client id of the ingest worker's persistent MQTT session.",
    )
    mqtt_share_group: str | None = Field(
        default=None,
        pattern=r"^([A-Za-z0-9_-]{1,64})?$",
        description="Ingest workers subscribe as this MQTT shared-subscription group "
        "($share/<group>/…), so several split the telemetry; unset = ONESCREEN_MQTT_CLIENT_ID "
        "(one group per deployment: two databases on one broker never split each other's "
        "messages); empty = a plain subscription, for a broker without shared subscriptions "
        "(then run one worker).",
    )
    ingest_workers: int = Field(
        default=1,
        ge=1,
        le=16,
        description="MQTT ingest workers serve runs; each has a stable login and persistent "
        "session of its own (a dead one's share waits for it in the broker).",
    )
    mqtt_worker: int = Field(
        default=0,
        ge=0,
        le=15,
        description="Which ingest worker this process is (0 … ONESCREEN_INGEST_WORKERS − 1): "
        "it picks the worker's own login and session.",
    )
    mqtt_username: str | None = Field(
        default=None,
        description="MQTT login of this process (serve gives its ingest worker and simulator "
        "theirs); unset = the ingest service's own, generated once in the data directory.",
    )
    mqtt_password: SecretStr | None = Field(
        default=None, description="Password of ONESCREEN_MQTT_USERNAME (never on a command line)."
    )
    mqtt_auth_dir: Path | None = Field(
        default=None,
        description="Where the ingest worker writes the broker's password and ACL files for a "
        "broker it does not manage (ONESCREEN_MQTT_URL; compose: a volume the broker watches).",
    )
    mqtt_max_message_bytes: int = Field(
        default=256 * 1024,
        ge=16 * 1024,
        le=256 * 1024 * 1024,
        description="Largest MQTT message the managed broker accepts (a 2,000-reading batch is "
        "~170 KB; larger batches go over HTTP or in several messages).",
    )
    ingest_token: SecretStr | None = Field(
        default=None,
        description="The ingest token `simulate` sends with when --token is not given "
        "(serve passes the simulator's this way, never on its command line).",
    )
    ingest_max_rows: int = Field(
        default=10_000, ge=1, le=1_000_000, description="Most readings one request may carry."
    )
    ingest_max_future_seconds: float = Field(
        default=300,
        ge=0,
        le=86400,
        description="How far ahead of the server clock a reading may be.",
    )
    rules_interval_seconds: float = Field(
        default=2, ge=0.2, le=600, description="How often the incident rules run."
    )
    # 30 min: twice the clock rule's 15-min skew, so a device a little off still raises live
    # alarms (and its clock incident); long enough for a broker or worker restart's backlog and
    # a client's retries; older than the shortest forecast horizon, so no longer news
    live_window_seconds: float = Field(
        default=1800,
        ge=60,
        le=86400,
        description="Readings arriving later than this after their timestamp are history: stored"
        " and counted, but they open no live incident (a past one is recorded, resolved).",
    )
    simulate: bool = Field(
        default=True, description="`serve` streams the live synthetic city (simulator) too."
    )
    simulate_rate: float | None = Field(
        default=None,
        gt=0,
        le=1_000_000,
        description="Readings per second the simulator sends; unset: the seeded city's own"
        " (its devices at their real intervals), at least the real platform's 97/s.",
    )
    simulate_transport: Literal["mqtt", "http"] = Field(
        default="mqtt", description="Ingest path the simulator uses."
    )
    map_tile_url: str | None = Field(
        default=None,
        description="Optional raster tile URL template ({z}/{x}/{y}); none = vector-only map.",
    )
    map_tile_datum: Literal["wgs84", "gcj02"] = Field(
        default="wgs84", description="Datum the tiles are drawn in (AMap/Gaode tiles: gcj02)."
    )
    map_tile_attribution: str = Field(default="", description="Attribution shown with the tiles.")
    # Access control ----------------------------------------------------------------------------
    environment: Literal["development", "production"] = Field(
        default="development",
        description="production: secure cookies and HSTS required, debug mode refused.",
    )
    web_database_url: str | None = Field(
        default=None,
        description=(
            "Login of the web role onescreen_web (no owner rights, bound by row-level security);"
            " unset = derived from DATABASE_URL and provisioned at start."
        ),
    )
    session_hours: float = Field(
        default=12, gt=0, le=24 * 30, description="A login lasts at most this long."
    )
    session_idle_minutes: float = Field(
        default=60, gt=0, le=24 * 60, description="A login unused this long ends."
    )
    cookie_secure: bool | None = Field(
        default=None,
        description="Session cookie only over HTTPS; unset = on in production, off otherwise.",
    )
    trusted_proxies: int = Field(
        default=0,
        ge=0,
        le=5,
        description="Reverse proxies in front whose X-Forwarded-For the login throttle trusts.",
    )

    # Production serving and scale-out -------------------------------------------------------------
    read_database_url: str | None = Field(
        default=None,
        description=(
            "A streaming replica for dashboard reads (host, port, database; the web role's login"
            " replicates with it). Writes stay on DATABASE_URL. Unset = read from the primary."
        ),
    )
    redis_url: str | None = Field(
        default=None,
        description=(
            "Redis shared by every web worker: the results cache and the new-data channel."
            " Unset = `serve` starts a local redis-server when it is installed."
        ),
    )
    redis_port: int = Field(
        default=56379, ge=1024, le=65535, description="Port of the Redis `serve` starts."
    )
    web_workers: int = Field(
        default=2,
        ge=1,
        le=64,
        description="gunicorn worker processes (`serve` with 1, or in debug mode, runs one).",
    )
    web_instances: int = Field(
        default=1,
        ge=1,
        le=8,
        description="Web servers (each a gunicorn with ONESCREEN_WEB_WORKERS workers) that serve "
        "runs behind its nginx: one can die or restart while the others answer.",
    )
    web_threads: int = Field(default=8, ge=1, le=64, description="Threads per web worker.")
    answer_slots: int = Field(
        # 1: measured at 200 distinct views (bench.load), a second slot's renders starved the
        # requests that serve copies (p50 976 → 406 ms with one)
        default=1,
        ge=0,
        le=64,
        description="Panel answers a web worker computes at once before it serves a due answer's "
        "recent copy and renews it in the background (0: always compute in the request).",
    )
    web_timeout_seconds: float = Field(
        default=60,
        ge=5,
        le=600,
        description="A request running longer is stopped (gunicorn's timeout; the proxy waits"
        " a little longer).",
    )
    proxy: Literal["nginx", "none"] = Field(
        default="nginx",
        description="`serve` puts a managed nginx in front of the web server (none: the web"
        " server listens on the public address itself).",
    )
    proxy_client_timeout_seconds: float = Field(
        default=10,
        ge=1,
        le=300,
        description="The proxy drops a client that takes longer to send its headers, the next"
        " piece of its body, or to read the next piece of the answer (408).",
    )
    proxy_connections_per_ip: int = Field(
        default=128,
        ge=4,
        # nginx's limit_conn refuses to start at 65,536 or more
        le=65_535,
        description="Requests the proxy serves at once for one client address (more: 429).",
    )
    callback_max_bytes: int = Field(
        default=1_048_576,
        ge=16_384,
        le=64 * 1_048_576,
        description="Largest body a Dash callback request may have (bytes); larger ones get 413.",
    )
    form_max_bytes: int = Field(
        default=16_384,
        ge=1_024,
        le=1_048_576,
        description="Largest body of any other request (sign-in forms, …); larger ones get 413.",
    )
    web_db_connect_timeout_seconds: int = Field(
        default=3, ge=2, le=60, description="A web request's database connection opens within."
    )
    web_db_statement_timeout_seconds: float = Field(
        default=15,
        gt=0,
        le=3600,
        description="A web request's SQL statement is cancelled after (jobs have no such limit).",
    )
    web_db_lock_timeout_seconds: float = Field(
        default=5, gt=0, le=3600, description="A web request's statement waits for a lock at most."
    )
    web_db_idle_transaction_seconds: float = Field(
        default=60,
        gt=0,
        le=86400,
        description="A web request's transaction left idle this long ends (its locks with it).",
    )
    web_db_pool_timeout_seconds: float = Field(
        default=5, gt=0, le=300, description="A web request waits for a pooled connection at most."
    )
    health_timeout_seconds: float = Field(
        default=2,
        gt=0,
        le=30,
        description="/api/v1/health and /ready answer 503 when the database is slower than this.",
    )
    cache_seconds: float | None = Field(
        default=None,
        gt=0,
        le=300,
        description=(
            "Shared results are recomputed at most this often while new data arrives"
            " (unset = the refresh period, ONESCREEN_UI_REFRESH_SECONDS)."
        ),
    )
    callback_rate_limit: str | None = Field(
        default=None,
        description=(
            "Dash callbacks one session (display, address) may send, Flask-Limiter notation"
            " ('40 per 2 seconds;480 per minute'); more get 429 and the page retries at its next"
            " refresh. Unset = sized from the refresh period (web.ratelimit.callback_rate)."
        ),
    )
    callback_concurrency: int = Field(
        default=6,
        ge=1,
        le=64,
        description=(
            "Dash callbacks one session (display, address) may have in flight at once (a browser"
            " opens at most 6 connections to a server: no page is ever refused by this)."
        ),
    )
    callback_queue_seconds: float = Field(
        default=0.25,
        ge=0,
        le=10,
        description="How long a callback over the concurrency limit waits for a slot before 429.",
    )
    sign_in_rate_limit: str = Field(
        default="20 per minute;200 per hour",
        description="Posts of the sign-in, sign-out and setup forms per client address and form.",
    )

    @field_validator("map_tile_url")
    @classmethod
    def _tile_url_is_template(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        if not value.startswith(("http://", "https://", "/")) or "{z}" not in value:
            raise ValueError("must be an http(s) or /path URL template containing {z}, {x}, {y}")
        return value.strip()

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        if not value.startswith(("mqtt://", "tcp://")):
            raise ValueError("must look like mqtt://host:1883")
        return value.strip()

    @field_validator("database_url", "web_database_url", "read_database_url")
    @classmethod
    def _url_is_postgres(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        if not value.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
            raise ValueError(
                "must start with postgresql:// (e.g. postgresql://user:pw@host:5432/db)"
            )
        return value.strip()

    @field_validator("callback_rate_limit", "sign_in_rate_limit")
    @classmethod
    def _rate_limit(cls, value: str | None, info: ValidationInfo) -> str | None:
        from limits import parse_many

        if value is None or not value.strip():
            if info.field_name == "callback_rate_limit":
                return None  # sized from the refresh period
            value = ""
        try:
            parse_many(value)
        except ValueError:
            raise ValueError("must look like '40 per 2 seconds;480 per minute'") from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        if not value.strip().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix:// (redis://host:6379/0)")
        return value.strip()

    @model_validator(mode="after")
    def _stale_after_a_refresh(self) -> Settings:
        # otherwise every panel would turn amber between two refreshes
        if self.ui_stale_seconds <= self.ui_refresh_seconds:
            raise ValueError(
                f"ONESCREEN_UI_STALE_SECONDS ({self.ui_stale_seconds:g}) must be longer than "
                f"ONESCREEN_UI_REFRESH_SECONDS ({self.ui_refresh_seconds:g})"
            )
        return self

    @model_validator(mode="after")
    def _production_is_locked_down(self) -> Settings:
        if self.environment == "production":
            if self.debug:
                raise ValueError(
                    "ONESCREEN_DEBUG cannot be on with ONESCREEN_ENVIRONMENT=production"
                )
            if self.cookie_secure is False:
                raise ValueError(
                    "ONESCREEN_COOKIE_SECURE cannot be off with ONESCREEN_ENVIRONMENT=production"
                )
        return self

    @property
    def secure_cookies(self) -> bool:
        """Whether session cookies carry the Secure flag."""
        if self.cookie_secure is None:
            return self.environment == "production"
        return self.cookie_secure

    @property
    def ingest_max_bytes(self) -> int:
        """Largest ingest request body: a reading is ~100 bytes of JSON, room for formatting."""
        return self.ingest_max_rows * 400

    def body_limits(self) -> dict[str, int]:
        """The largest request body per route prefix (longest prefix wins; "" = the rest):
        the one table the reverse proxy and the app both enforce."""
        return {
            "/api/v1/readings": self.ingest_max_bytes,
            "/_dash-update-component": self.callback_max_bytes,
            "": self.form_max_bytes,
        }

    @property
    def embedded(self) -> bool:
        """True when OneScreen manages its own local PostgreSQL cluster."""
        return self.database_url is None


def load_settings(**overrides: Any) -> Settings:
    """Build and validate settings, turning pydantic's report into one readable ConfigError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            if not field:  # a rule across settings: its message names them
                problems.append(str(error["msg"]).removeprefix("Value error, "))
                continue
            env_name = "DATABASE_URL" if field == "DATABASE_URL" else f"ONESCREEN_{field.upper()}"
            problems.append(f"{env_name}: {error['msg']}")
        raise ConfigError("invalid configuration — " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, validated once."""
    return load_settings()
