"""MQTT ingest worker: a persistent QoS 1 session on `<prefix>/+/telemetry` (a shared
subscription of the ingest group, so several workers split the load) under its own service
login; a message is acknowledged only after its rows are committed, so a crash loses nothing
and (the store being idempotent) a redelivery duplicates nothing. It also keeps the broker's
logins in step with the database's tokens."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from config import Settings
from data.errors import OneScreenError
from ingest.broker import MqttCredentials, parse_broker_url
from ingest.service import Ingestor, Message

log = logging.getLogger(__name__)

# one transaction takes at most this much; more waits for the next round
MAX_MESSAGES_PER_COMMIT = 200
MAX_ROWS_PER_COMMIT = 50_000
# how long a round waits for more messages before committing what it has
LINGER_S = 0.05
ROW_ESTIMATE_BYTES = 90
# the longest wait between tries while the store is away: a failover takes ~10 s, and a try
# (one connection attempt) costs nothing worth saving
STORE_RETRY_MAX_S = 2.0
# how long a stopping worker waits for the broker to confirm it left the shared subscription
UNSUBSCRIBE_WAIT_S = 3.0
# how often the broker's password and ACL files are compared with the database's tokens
SYNC_EVERY_S = 5.0


@dataclass
class _Received:
    mid: int
    qos: int
    generation: int
    message: Message


@dataclass
class WorkerStats:
    """Counters since start, for logs and tests."""

    messages: int = 0
    stored: int = 0
    duplicate: int = 0
    rejected_rows: int = 0
    dead_letters: int = 0
    commits: int = 0
    retries: int = 0
    disconnects: int = 0


class MqttIngestWorker:
    """Consumes telemetry into the store until `stop()`."""

    def __init__(
        self,
        ingestor: Ingestor,
        *,
        broker_url: str,
        client_id: str,
        topic_prefix: str,
        credentials: MqttCredentials | None = None,
        share_group: str = "",
    ) -> None:
        self.ingestor = ingestor
        self.host, self.port = parse_broker_url(broker_url)
        self.plain_topic = f"{topic_prefix}/+/telemetry"
        # a shared subscription: the broker hands each message to one worker of the group
        self.topic = f"$share/{share_group}/{self.plain_topic}" if share_group else self.plain_topic
        self.stats = WorkerStats()
        self._queue: deque[_Received] = deque()
        self._arrived = threading.Condition()
        self._stop = threading.Event()
        # acks name message ids of one connection: after a reconnect the broker resends what was
        # not acknowledged, so acks for the old connection's ids must not be sent
        self._generation = 0
        self.connected = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        if credentials is not None:
            self.client.username_pw_set(credentials.username, credentials.password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)

    # network thread ------------------------------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: object,
        _flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.warning("MQTT connect refused: %s", reason_code)
            return
        if self.topic != self.plain_topic:
            # a session that once subscribed plainly would otherwise get every message twice
            client.unsubscribe(self.plain_topic)
        client.subscribe(self.topic, qos=1)
        self.connected.set()
        log.info("MQTT ingest subscribed to %s on %s:%d", self.topic, self.host, self.port)

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        self.connected.clear()
        self.stats.disconnects += 1
        with self._arrived:
            self._generation += 1
            # not acknowledged, so the broker sends these again on the next connection
            self._queue.clear()
        if not self._stop.is_set():
            log.warning("MQTT disconnected (%s); reconnecting", reason_code)

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._arrived:
            self._queue.append(
                _Received(
                    mid=msg.mid,
                    qos=msg.qos,
                    generation=self._generation,
                    message=Message(topic=msg.topic, payload=bytes(msg.payload)),
                )
            )
            self._arrived.notify()

    # worker thread -------------------------------------------------------------------------

    def run(self) -> None:
        """Connect and consume until stop() is called."""
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        try:
            while not self._stop.is_set():
                taken = self._take()
                if taken:
                    self._commit(taken)
        finally:
            self._leave_group()
            self.client.disconnect()
            self.client.loop_stop()

    def _leave_group(self) -> None:
        """On a clean stop, leave the shared subscription: Mosquitto keeps handing a share of
        the messages to a member that is away, and one that is not coming back (retired, or a
        test's server) would hold them for ever. A crash leaves it subscribed, its share waiting
        for its return (the supervisor restarts it)."""
        if self.topic == self.plain_topic or not self.connected.is_set():
            return
        left = threading.Event()
        self.client.on_unsubscribe = lambda *_args: left.set()
        self.client.unsubscribe(self.topic)
        if not left.wait(UNSUBSCRIBE_WAIT_S):
            log.warning("the broker did not confirm leaving %s", self.topic)

    def stop(self) -> None:
        """Finish the current round and disconnect."""
        self._stop.set()
        with self._arrived:
            self._arrived.notify_all()

    def _take(self) -> list[_Received]:
        with self._arrived:
            if not self._queue:
                self._arrived.wait(timeout=0.5)
            if not self._queue:
                return []
        if len(self._queue) < MAX_MESSAGES_PER_COMMIT:
            # a moment more fills the round: fewer, larger commits
            time.sleep(LINGER_S)
        taken: list[_Received] = []
        rows = 0
        with self._arrived:
            while (
                self._queue and len(taken) < MAX_MESSAGES_PER_COMMIT and rows < MAX_ROWS_PER_COMMIT
            ):
                item = self._queue.popleft()
                taken.append(item)
                rows += len(item.message.payload) // ROW_ESTIMATE_BYTES + 1
        return taken

    def _commit(self, taken: list[_Received]) -> None:
        delay = 0.5
        while True:
            try:
                outcomes = self.ingestor.ingest_messages([item.message for item in taken])
                break
            except (SQLAlchemyError, OneScreenError) as exc:
                # not acknowledged: keep the messages and try again until the store is back
                self.stats.retries += 1
                log.warning(
                    "store unavailable, retrying in %.1f s: %s", delay, str(exc).splitlines()[0]
                )
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, STORE_RETRY_MAX_S)
        self.stats.commits += 1
        for outcome in outcomes:
            self.stats.messages += 1
            if outcome.result is None:
                self.stats.dead_letters += 1
                log.warning("dead letter from %s: %s", outcome.message.topic, outcome.reason)
                continue
            self.stats.stored += outcome.result.stored
            self.stats.duplicate += outcome.result.duplicate
            self.stats.rejected_rows += outcome.result.rejected
            if outcome.result.rejected:
                self.stats.dead_letters += 1
        with self._arrived:
            generation = self._generation
        for item in taken:
            if item.generation == generation:
                self.client.ack(item.mid, item.qos)


def share_group(settings: Settings) -> str:
    """The ingest workers' shared-subscription group: the setting, or the deployment's client
    id ("" = a plain subscription)."""
    chosen = settings.mqtt_share_group
    return settings.mqtt_client_id if chosen is None else chosen


def run_worker(settings: Settings, *, stop: threading.Event | None = None) -> WorkerStats:
    """The `ingest-mqtt` command: consume until SIGTERM/SIGINT (or `stop`)."""
    from data.engine import create_db_engine, resolve_database_url
    from ingest.broker import broker_url, ingest_credentials
    from serving.events import connect

    engine = create_db_engine(resolve_database_url(settings))
    ingestor = Ingestor(
        engine,
        max_rows=max(settings.ingest_max_rows, 1),
        max_future_s=settings.ingest_max_future_seconds,
        retention_days=settings.reading_retention_days,
        topic_prefix=settings.mqtt_topic_prefix,
        redis=connect(settings.redis_url),
    )
    credentials = ingest_credentials(settings)
    worker = MqttIngestWorker(
        ingestor,
        broker_url=broker_url(settings, engine=engine),
        # the broker takes the login as the client id; say so rather than be renamed
        client_id=credentials.username,
        topic_prefix=settings.mqtt_topic_prefix,
        credentials=credentials,
        share_group=share_group(settings),
    )
    thread = threading.Thread(target=worker.run, name="mqtt-ingest", daemon=True)
    thread.start()
    try:
        _watch(worker, thread, settings=settings, engine=engine, stop=stop)
    except KeyboardInterrupt:
        pass
    finally:
        worker.stop()
        thread.join(15)
    return worker.stats


def _watch(
    worker: MqttIngestWorker,
    thread: threading.Thread,
    *,
    settings: Settings,
    engine: Engine,
    stop: threading.Event | None,
) -> None:
    """Log the rate every 10 s and keep the broker's logins in step with the tokens."""
    from ingest.broker import sync_broker_auth

    last = last_sync = time.monotonic()
    last_stored = 0
    failing = ""  # said once until it changes: a process that may not write them says so once
    while thread.is_alive():
        if stop is not None and stop.wait(1.0):
            break
        if stop is None:
            time.sleep(1.0)
        if time.monotonic() - last_sync >= SYNC_EVERY_S:
            last_sync = time.monotonic()
            try:
                if sync_broker_auth(engine, settings):
                    log.info("broker logins rewritten from the tokens")
                failing = ""
            except (SQLAlchemyError, OneScreenError, OSError) as exc:
                if str(exc) != failing:
                    log.warning("cannot update the broker's logins: %s", str(exc).splitlines()[0])
                failing = str(exc)
        if time.monotonic() - last >= 10:
            rate = (worker.stats.stored - last_stored) / (time.monotonic() - last)
            log.info("mqtt ingest: %.0f readings/s stored; totals %s", rate, worker.stats)
            last, last_stored = time.monotonic(), worker.stats.stored
