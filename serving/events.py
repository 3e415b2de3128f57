"""The Redis link every process shares: writers announce new data, web workers listen.

Writers (ingest, incident rules, status refresh, incident handling) call `announce_new_data` on
the Redis client their process made from its settings (`connect`), which bumps a data version
and publishes it. Each web worker keeps one listener thread that
follows the channel, so it knows the current version without asking anyone; the shared cache
uses it to keep results that no new data has outdated. Two narrower notices outdate only part of
the shared results: a tag (a district, or the city) bumped when something in it changed, and one
forgotten key (a signed-out session). Without Redis all of this is a no-op.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import redis

log = logging.getLogger(__name__)

CHANNEL = "onescreen:events"
VERSION_KEY = "onescreen:data-version"
GENERATION_KEY = "onescreen:cache-generation"
# a hash: tag (district adcode, or "*" for the city) -> its generation
TAGS_KEY = "onescreen:cache-tags"
# a writer never waits long for Redis: the data is committed already, the notice is a courtesy
SOCKET_TIMEOUT_S = 0.5
_WARN_EVERY_S = 60.0


def connect(url: str | None) -> redis.Redis | None:
    """A Redis client (thread-safe pool) for `url`, None without one; connects on first use."""
    if not url:
        return None
    return redis.Redis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=SOCKET_TIMEOUT_S,
        health_check_interval=30,
    )


_last_warning = 0.0


def _warn(message: str, error: Exception) -> None:
    global _last_warning
    if time.monotonic() - _last_warning > _WARN_EVERY_S:
        _last_warning = time.monotonic()
        log.warning("%s: %s", message, error)


def announce_new_data(*, source: str, client: redis.Redis | None) -> None:
    """Tell every web worker, on `client` (None: no Redis, nothing to tell), that `source`
    committed new data (after the commit)."""
    _publish(VERSION_KEY, kind="data", source=source, client=client)


def announce_cache_cleared(*, source: str, client: redis.Redis | None) -> tuple[int, int] | None:
    """Tell every web worker, on `client`, to drop shared results now (e.g. after an incident
    action); the new (version, generation), None without Redis or if it did not take it."""
    return _publish(GENERATION_KEY, kind="clear", source=source, client=client)


def announce_tag_bumped(*, tag: str, source: str, client: redis.Redis | None) -> int | None:
    """Tell every web worker, on `client`, that the results tagged `tag` are outdated (e.g. a
    district's after an incident action there); the tag's new generation, None without Redis."""
    if client is None:
        return None
    try:
        generation = int(cast(int, client.hincrby(TAGS_KEY, tag, 1)))
        notice = {"kind": "tag", "source": source, "tag": tag, "tag_generation": generation}
        client.publish(CHANNEL, json.dumps(notice))
        return generation
    except redis.RedisError as error:
        _warn("could not announce outdated results on Redis", error)
        return None


def announce_forgotten(*, key: str, source: str, client: redis.Redis | None) -> bool:
    """Tell every web worker, on `client`, to drop the one shared result `key` from its own
    copy (e.g. a signed-out session's); whether it was told."""
    if client is None:
        return False
    try:
        client.publish(CHANNEL, json.dumps({"kind": "forget", "source": source, "key": key}))
        return True
    except redis.RedisError as error:
        _warn("could not announce a forgotten result on Redis", error)
        return False


def _publish(
    counter_key: str, *, kind: str, source: str, client: redis.Redis | None
) -> tuple[int, int] | None:
    if client is None:
        return None
    try:
        with client.pipeline(transaction=True) as pipe:
            pipe.incr(counter_key)
            pipe.get(VERSION_KEY)
            pipe.get(GENERATION_KEY)
            _, version, generation = pipe.execute()
            client.publish(
                CHANNEL,
                json.dumps(
                    {
                        "kind": kind,
                        "source": source,
                        "version": int(version or 0),
                        "generation": int(generation or 0),
                    }
                ),
            )
            return int(version or 0), int(generation or 0)
    except redis.RedisError as error:
        _warn("could not announce new data on Redis", error)
        return None


@dataclass
class EventState:
    """What this worker last heard: the data version and cache generation (None = unknown)."""

    version: int | None = None
    generation: int = 0
    connected: bool = False
    messages: int = 0
    # each tag's generation (a tag never heard of is at 0)
    tags: dict[str, int] = field(default_factory=dict)


class EventListener:
    """A daemon thread following the channel; reconnects with backoff when Redis goes away."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self.state = EventState()
        self._changed = threading.Condition()
        self._forget_handlers: list[Callable[[str], None]] = []
        self._thread = threading.Thread(target=self._run, name="onescreen-events", daemon=True)
        self._thread.start()

    def wait_for_generation(self, generation: int, *, timeout_s: float) -> bool:
        """Block until the generation reaches `generation` (tests, cache clears)."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self.state.generation >= generation, timeout=timeout_s
            )

    def on_forget(self, handler: Callable[[str], None]) -> None:
        """Call `handler(key)` for every forgotten key announced (in the listener's thread)."""
        self._forget_handlers.append(handler)

    def _run(self) -> None:
        backoff = 0.5
        while True:
            try:
                self._follow()
            except (redis.RedisError, OSError, ValueError) as error:
                _warn("Redis event channel lost", error)
            with self._changed:
                self.state.connected = False
                # without the channel nothing proves a result current: treat all as changed
                self.state.version = None
                self._changed.notify_all()
            time.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    def _follow(self) -> None:
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(CHANNEL)
            # read the counters after subscribing, so no announcement falls in between
            # redis-py types every reply as "awaitable or not"; a sync client's is the list
            replies = cast(list[bytes | None], self._client.mget(VERSION_KEY, GENERATION_KEY))
            version, generation = replies
            tags = cast(dict[bytes, bytes], self._client.hgetall(TAGS_KEY))
            with self._changed:
                # Redis's word over ours: a restarted Redis counts tags from 0 again
                self.state.tags = {tag.decode(): int(value) for tag, value in tags.items()}
            self._update(int(version or 0), int(generation or 0), connected=True)
            while True:
                message = pubsub.get_message(timeout=5.0)
                if message is None:
                    pubsub.ping()  # a dead connection shows itself here, not in silence
                    continue
                if message.get("type") != "message":
                    continue  # the answer to our ping
                self._dispatch(json.loads(message["data"]))
        finally:
            pubsub.close()

    def _dispatch(self, payload: dict[str, Any]) -> None:
        kind = payload.get("kind")
        if kind == "tag":
            self.heard_tag(str(payload["tag"]), int(payload["tag_generation"]))
        elif kind == "forget":
            for handler in self._forget_handlers:
                handler(str(payload["key"]))
        else:
            self._update(int(payload["version"]), int(payload["generation"]), connected=True)

    def heard_tag(self, tag: str, generation: int) -> None:
        """Take a tag's generation (announced, or published by this process itself)."""
        with self._changed:
            tags = self.state.tags
            # copy on write: readers take the dict without the lock
            if generation > tags.get(tag, 0):
                self.state.tags = {**tags, tag: generation}
            self.state.messages += 1
            self._changed.notify_all()

    def heard(self, version: int, generation: int) -> None:
        """Take counters this process published itself, before the channel echoes them."""
        self._update(version, generation, connected=self.state.connected)

    def _update(self, version: int, generation: int, *, connected: bool) -> None:
        with self._changed:
            state = self.state
            state.connected = connected
            # announcements may arrive out of order across publishers: keep the highest
            state.version = max(version, state.version or 0)
            state.generation = max(generation, state.generation)
            state.messages += 1
            self._changed.notify_all()
