"""Results computed once for every web worker: a Redis-backed, scope-keyed, single-flight cache.

A result (a query's value for one access scope and one set of arguments) is computed by one
worker and stored in Redis; every other worker, and every viewer, is served that copy. It is
current within the period slot it was computed in (slots of the dashboards' refresh period by
default, or the longer one a query declares with data.cache.fresh_for; each key's shifted
by a phase of its own), and for up to `quiet_seconds` more when no
writer has announced new data since, so a quiet city costs the database almost nothing. Slots
rather than ages: a key asked for by one viewer or by two hundred is computed once a slot.
When it is due, the first worker to take the key's lock recomputes it while the others go on
serving the previous copy, so a viewer waits for the database only when nobody has the result.

A change outdates only what it touches: each partition (access scope) carries tags — its
districts, or the city — whose generations are part of its keys, so an incident action in one
district makes that district's and the city's results recompute and leaves the others' in place
(`invalidate`), at most once per tag per `invalidate_interval_s` however many actions come; and a
sign-out drops the one remembered answer of that session (`forget`), in every worker.

Values travel pickled and HMAC-signed with a key derived from the database credentials, so
anything in Redis that was not written by a OneScreen process is refused, never unpickled.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import pickle
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import redis
from sqlalchemy.engine import Engine

from config import PROJECT_ROOT
from data.cache import Cached, Carrier, freeze, fresh_seconds
from data.scope import partition_tags
from serving.events import TAGS_KEY, EventListener
from serving.renewal import Renewer

log = logging.getLogger(__name__)

_T = TypeVar("_T")
KEY_PREFIX = "onescreen:result:"
LOCK_PREFIX = "onescreen:lock:"
# set while a tag may not be outdated again (the interval after its last outdating)
DUE_PREFIX = "onescreen:tag-due:"
# a flood of incident actions makes a district's results recompute at most once this often
INVALIDATE_INTERVAL_S = 1.0
# a forgotten key is forgotten once more this much later (a query's length: see forget)
FORGET_AGAIN_S = 1.0
# longer than any dashboard query should take; a crashed leader's lock frees itself then
LOCK_SECONDS = 30.0
# a worker with nothing to serve waits this long for the leader before computing itself
WAIT_FOR_LEADER_S = 5.0
_POLL_S = 0.01


@dataclass(frozen=True)
class _Entry:
    cached: Cached
    computed_at: float  # time.time() when the computation started
    version: int | None  # the data version it was computed at (None = unknown)


@dataclass(frozen=True)
class _Job:
    """One result to compute: `fn(**kwargs)` under `key`, fresh for `period`."""

    fn: Callable[..., Any]
    kwargs: dict[str, Any]
    key: str
    name: str
    period: float
    carry: Carrier | None = None


@dataclass
class CacheStats:
    """Counters for benches and the health endpoint."""

    local_hits: int = 0
    shared_hits: int = 0
    stale_served: int = 0
    # due answers served from their copy while a background thread renews them (busy worker)
    deferred: int = 0
    computed: int = 0
    waited: int = 0
    redis_errors: int = 0
    by_key: dict[str, int] = field(default_factory=dict, repr=False)


@functools.cache
def code_version() -> str:
    """A digest of the query code: results pickled by other code are never read back."""
    digest = hashlib.sha1(usedforsecurity=False)
    for path in sorted((PROJECT_ROOT / "data").glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def create_shared_cache(
    *,
    period_seconds: float,
    quiet_seconds: float,
    namespace: str,
    client: redis.Redis | None,
    events: EventListener | None,
    owner_url: str,
    max_local_entries: int = 512,
    invalidate_interval_s: float = INVALIDATE_INTERVAL_S,
    renewer: Renewer | None = None,
) -> SharedCache | None:
    """A shared cache on Redis `client` (None without one), its entries signed with a key
    derived from the owner's credentials."""
    from data.scope import derived_secret

    if client is None:
        return None
    return SharedCache(
        client,
        period_seconds=period_seconds,
        quiet_seconds=quiet_seconds,
        signing_key=derived_secret(owner_url, purpose="onescreen-cache").encode(),
        events=events,
        namespace=f"{namespace}:{code_version()}:",
        max_local_entries=max_local_entries,
        invalidate_interval_s=invalidate_interval_s,
        renewer=renewer,
    )


def _describe(fn: Callable, kwargs: dict[str, Any]) -> tuple[str, Hashable]:
    # engines differ per process; what identifies one across processes is where it points
    portable = {
        name: ("engine", value.url.render_as_string(hide_password=True))
        if isinstance(value, Engine)
        else value
        for name, value in kwargs.items()
    }
    return f"{fn.__module__}.{fn.__qualname__}", freeze(portable)


class SharedCache:
    """`fn(**kwargs)` per partition (access scope), computed once per period for all workers."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        period_seconds: float,
        quiet_seconds: float,
        signing_key: bytes,
        events: EventListener | None,
        namespace: str = "",
        max_local_entries: int = 512,
        clock: Callable[[], float] = time.time,
        tags_of: Callable[[Hashable], tuple[str, ...]] = partition_tags,
        invalidate_interval_s: float = INVALIDATE_INTERVAL_S,
        renewer: Renewer | None = None,
    ) -> None:
        if period_seconds <= 0 or quiet_seconds < 0:
            raise ValueError("period_seconds must be positive, quiet_seconds not negative")
        self.period_seconds = period_seconds
        self.quiet_seconds = quiet_seconds
        self.stats = CacheStats()
        self._client = client
        self._signing_key = signing_key
        self._events = events
        self._namespace = namespace
        self._clock = clock
        self._max_local = max_local_entries
        self._lock = threading.Lock()
        self._local: OrderedDict[str, _Entry] = OrderedDict()
        self._local_generation = 0
        self._flights: dict[str, threading.Event] = {}
        self._token = secrets.token_hex(8)
        self._tags_of = tags_of
        self._invalidate_interval_s = invalidate_interval_s
        # tag -> the generation it had when the latest outdating of it was put off
        self._pending: dict[str, int] = {}
        # computes deferrable results (get's `carry`) with a few slots, renewing in the background
        self._renewer = renewer
        if events is not None:
            events.on_forget(self._drop_local)

    # what callers use --------------------------------------------------------------------------

    def get(
        self,
        fn: Callable[..., _T],
        partition: Hashable = None,
        /,
        *,
        carry: Carrier | None = None,
        **kwargs: Any,
    ) -> Cached[_T]:
        """`fn(**kwargs)` as computed for `partition` within the last period (or the quiet
        allowance), by this worker or any other.

        With `carry` (which makes a computation runnable in another thread of this request),
        a due result may be renewed in the background while its recent copy is served, when
        this worker's renewer has no free slot (serving.renewal)."""
        key, name, generation = self._key(fn, partition, kwargs)
        period = fresh_seconds(fn, self.period_seconds)
        while True:
            entry = self._local_entry(key, generation)
            if entry is not None and self._current(entry, key, period):
                self.stats.local_hits += 1
                return entry.cached
            with self._lock:
                flight = self._flights.get(key)
                leader = flight is None
                if flight is None:
                    flight = self._flights[key] = threading.Event()
            if leader:
                break
            if entry is not None and self._clock() - entry.computed_at <= self._max_age(period):
                # another thread of this worker is renewing it: the previous copy will do, as
                # it does while another worker renews it (a wait here holds up a whole
                # request thread for a query's duration)
                self.stats.stale_served += 1
                return entry.cached
            # nothing (recent) to serve: share the other thread's answer
            flight.wait(LOCK_SECONDS)
        try:
            job = _Job(fn=fn, kwargs=kwargs, key=key, name=name, period=period, carry=carry)
            return self._fetch_or_compute(job, stale=entry)
        finally:
            with self._lock:
                self._flights.pop(key, None)
            flight.set()

    def clear(self) -> None:
        """Drop every shared result, in every worker (the next read of each recomputes)."""
        from serving.events import announce_cache_cleared

        with self._lock:
            self._local.clear()
        counters = announce_cache_cleared(source="cache", client=self._client)
        if counters is not None and self._events is not None:
            # this worker's next read must not wait for the channel to echo the new generation
            self._events.heard(*counters)

    def forget(self, fn: Callable[..., Any], partition: Hashable = None, /, **kwargs: Any) -> None:
        """Drop the one result `get(fn, partition, **kwargs)` would return, in every worker (e.g.
        a signed-out session's); every other result stays."""
        key, _, _ = self._key(fn, partition, kwargs)
        self._forget_key(key)
        # a computation that began before the change may store its answer just after: once more
        again = threading.Timer(FORGET_AGAIN_S, self._forget_key, (key,))
        again.daemon = True
        again.start()

    def _forget_key(self, key: str) -> None:
        from serving.events import announce_forgotten

        self._drop_local(key)
        try:
            self._client.delete(KEY_PREFIX + key)
        except redis.RedisError as error:
            self.stats.redis_errors += 1
            log.debug("shared cache forget failed: %s", error)
        announce_forgotten(key=key, source="cache", client=self._client)

    def invalidate(self, *tags: str) -> None:
        """Outdate, in every worker, the results of every partition tagged with any of `tags`
        (data.scope.partition_tags): at once, or — when the tag was outdated less than the
        interval ago — at the end of that interval, once for all the changes meanwhile."""
        for tag in tags:
            try:
                seen = int(cast(bytes | None, self._client.hget(TAGS_KEY, tag)) or 0)
            except redis.RedisError as error:
                self._lost_redis(error)
                return
            self._outdate(tag, seen)

    @property
    def pressed(self) -> bool:
        """Whether this worker's background renewals fall behind (serving.renewal)."""
        return self._renewer is not None and self._renewer.pressed

    def __len__(self) -> int:
        with self._lock:
            return len(self._local)

    # how -----------------------------------------------------------------------------------------

    def _key(
        self, fn: Callable, partition: Hashable, kwargs: dict[str, Any]
    ) -> tuple[str, str, int]:
        """The key of `fn(**kwargs)` in `partition` now (with the generation and its tags'),
        the query's name and the generation."""
        name, frozen = _describe(fn, kwargs)
        generation = self._generation()
        tags = self._events.state.tags if self._events is not None else {}
        stamp = "".join(f".{tags.get(tag, 0)}" for tag in self._tags_of(partition))
        digest = hashlib.sha256(repr((name, partition, frozen)).encode()).hexdigest()[:40]
        return f"{self._namespace}{generation}{stamp}:{digest}", name, generation

    def _drop_local(self, key: str) -> None:
        with self._lock:
            self._local.pop(key, None)

    def _lost_redis(self, error: Exception) -> None:
        # without Redis no other worker can be told: this one at least reads afresh
        self.stats.redis_errors += 1
        log.debug("shared cache invalidation failed: %s", error)
        with self._lock:
            self._local.clear()

    def _outdate(self, tag: str, seen: int) -> None:
        """Bump `tag` unless it was bumped in the last interval; then bump it when that ends,
        unless someone bumped it after `seen` (its generation when the change was made)."""
        from serving.events import announce_tag_bumped

        try:
            current = int(cast(bytes | None, self._client.hget(TAGS_KEY, tag)) or 0)
            if current > seen:
                return  # outdated since the change: nothing left to do
            interval_ms = max(1, int(self._invalidate_interval_s * 1000))
            if self._client.set(DUE_PREFIX + tag, self._token, nx=True, px=interval_ms):
                generation = announce_tag_bumped(tag=tag, source="cache", client=self._client)
                if generation is not None and self._events is not None:
                    # this worker's next read must not wait for the channel's echo
                    self._events.heard_tag(tag, generation)
                return
            wait_ms = int(cast(int, self._client.pttl(DUE_PREFIX + tag)))
        except redis.RedisError as error:
            self._lost_redis(error)
            return
        with self._lock:
            # one timer per tag and worker, for the latest change it must cover
            scheduled = tag in self._pending
            self._pending[tag] = max(seen, self._pending.get(tag, seen))
        if not scheduled:
            timer = threading.Timer(max(wait_ms, 1) / 1000 + 0.005, self._outdate_pending, (tag,))
            timer.daemon = True
            timer.start()

    def _outdate_pending(self, tag: str) -> None:
        with self._lock:
            seen = self._pending.pop(tag, None)
        if seen is not None:
            self._outdate(tag, seen)

    def _generation(self) -> int:
        generation = self._events.state.generation if self._events is not None else 0
        if generation != self._local_generation:
            with self._lock:
                self._local.clear()
                self._local_generation = generation
        return generation

    def _current(self, entry: _Entry, key: str, period: float) -> bool:
        now = self._clock()
        if self._period_of(key, now, period) == self._period_of(key, entry.computed_at, period):
            return True
        version = self._events.state.version if self._events is not None else None
        quiet = version is not None and entry.version == version
        return quiet and now - entry.computed_at < self._max_age(period)

    def _max_age(self, period: float) -> float:
        # the oldest a copy may be when served: a period, and the quiet allowance, which is
        # sized so no freshness badge turns amber
        return period + self.quiet_seconds

    def _period_of(self, key: str, moment: float, period: float) -> int:
        # periods are fixed slots of the clock, each key's shifted by its own phase: a key asked
        # for every 2 s or every 0.1 s is computed once a period either way, and keys fall due
        # spread over the period rather than all at once
        return int((moment + self._phase(key, period)) // period)

    def _phase(self, key: str, period: float) -> float:
        return int(key[-6:], 16) / 0xFFFFFF * period

    def _local_entry(self, key: str, generation: int) -> _Entry | None:
        with self._lock:
            if generation != self._local_generation:
                return None
            entry = self._local.get(key)
            if entry is not None:
                self._local.move_to_end(key)
            return entry

    def _remember(self, key: str, entry: _Entry) -> None:
        with self._lock:
            self._local[key] = entry
            self._local.move_to_end(key)
            while len(self._local) > self._max_local:
                self._local.popitem(last=False)

    def _fetch_or_compute(self, job: _Job, *, stale: _Entry | None) -> Cached:
        key = job.key
        try:
            shared, locked = self._load_or_lock(key, job.period)
        except redis.RedisError as error:
            # Redis away: this worker still answers, from the database
            self.stats.redis_errors += 1
            log.debug("shared cache read failed: %s", error)
            return self._compute(job, publish=False).cached
        if shared is not None and (stale is None or shared.computed_at >= stale.computed_at):
            stale = shared
            self._remember(key, shared)
            if self._current(shared, key, job.period):
                if locked:  # Redis judged it due a hair before this clock did: let the lock go
                    self._release_lock(key)
                self.stats.shared_hits += 1
                return shared.cached
        if locked:
            return self._renew(job, stale=stale)
        if stale is not None:
            # someone else is recomputing it: the previous copy is good for one more refresh
            self.stats.stale_served += 1
            return stale.cached
        return self._wait_for_leader(job)

    def _renew(self, job: _Job, *, stale: _Entry | None) -> Cached:
        """Recompute a due result under our lock: now, or — a deferrable one in a worker whose
        slots are all busy, with a recent copy — in the background while that copy serves."""
        renewer = self._renewer
        if renewer is None or job.carry is None:
            return self._locked_compute(job).cached
        if renewer.try_slot():
            try:
                return self._locked_compute(job).cached
            finally:
                renewer.release()
        if stale is None or self._clock() - stale.computed_at > renewer.max_age_seconds:
            # nothing recent enough to show: this viewer waits for the answer
            return self._locked_compute(job).cached
        if renewer.later(job.carry(functools.partial(self._locked_compute, job))):
            self.stats.deferred += 1
        else:  # the queue is full: a later request will try again
            self._release_lock(job.key)
            self.stats.stale_served += 1
        return stale.cached

    def _locked_compute(self, job: _Job) -> _Entry:
        try:
            return self._compute(job, publish=True)
        except BaseException:
            self._release_lock(job.key)
            raise

    def _wait_for_leader(self, job: _Job) -> Cached:
        """The leader's answer when it stores one within WAIT_FOR_LEADER_S, else our own."""
        self.stats.waited += 1
        deadline = time.monotonic() + WAIT_FOR_LEADER_S
        while time.monotonic() < deadline:
            time.sleep(_POLL_S)
            try:
                shared = self._load(job.key)
            except redis.RedisError:
                break
            if shared is not None:
                self._remember(job.key, shared)
                return shared.cached
        return self._compute(job, publish=False).cached

    def _compute(self, job: _Job, *, publish: bool) -> _Entry:
        """`job` computed now, kept here, and (`publish`) stored for every worker, our lock let
        go."""
        # the version before the query: data announced while it runs makes the result due
        version = self._events.state.version if self._events is not None else None
        started = self._clock()
        as_of = datetime.now(UTC)
        value = job.fn(**job.kwargs)
        cached = Cached(value=value, as_of=as_of)
        entry = _Entry(cached=cached, computed_at=started, version=version)
        self.stats.computed += 1
        self.stats.by_key[job.name] = self.stats.by_key.get(job.name, 0) + 1
        self._remember(job.key, entry)
        if publish:
            try:
                self._store_and_unlock(job.key, entry, job.period)
            except redis.RedisError as error:
                # the lock frees itself after LOCK_SECONDS; meanwhile others serve their copy
                self.stats.redis_errors += 1
                log.debug("shared cache write failed: %s", error)
        return entry

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._signing_key, payload, hashlib.sha256).digest()

    def _blob(self, entry: _Entry) -> bytes:
        # signature, then a plain header Redis can judge currency by, then the pickle; the
        # signature covers both, and the unpickled entry is judged again in Python
        payload = pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL)
        version = -1 if entry.version is None else entry.version
        signed = f"{entry.computed_at:.6f} {version}\n".encode() + payload
        return self._sign(signed) + signed

    def _store_and_unlock(self, key: str, entry: _Entry, period: float) -> None:
        # kept a while past its use: a stale copy beats a wait while the next one computes
        ttl_ms = int(self._max_age(period) * 4 * 1000) + 1000
        self._client.eval(
            _STORE_AND_UNLOCK,
            2,
            KEY_PREFIX + key,
            LOCK_PREFIX + key,
            self._blob(entry),
            ttl_ms,
            self._token,
        )

    def _load_or_lock(self, key: str, period: float) -> tuple[_Entry | None, bool]:
        """The stored copy, and whether its lock was taken for us because that copy is missing
        or due: one round trip for what a miss used to take two."""
        now = self._clock()
        slot = self._period_of(key, now, period)
        phase = self._phase(key, period)
        version = self._events.state.version if self._events is not None else None
        blob, locked = cast(
            list,
            self._client.eval(
                _LOAD_OR_LOCK,
                2,
                KEY_PREFIX + key,
                LOCK_PREFIX + key,
                self._token,
                int(LOCK_SECONDS * 1000),
                repr(slot * period - phase),
                -2 if version is None else version,
                repr(now - self._max_age(period)),
            ),
        )
        return self._unseal(key, blob), bool(locked)

    def _load(self, key: str) -> _Entry | None:
        # redis-py types every reply as "awaitable or not"; a sync client's is the bytes
        return self._unseal(key, cast(bytes | None, self._client.get(KEY_PREFIX + key)))

    def _unseal(self, key: str, blob: bytes | None) -> _Entry | None:
        """The entry in `blob` if we signed it, else None (never unpickled)."""
        if not blob or len(blob) < 32:
            return None
        signature, signed = blob[:32], blob[32:]
        if not hmac.compare_digest(signature, self._sign(signed)):
            log.warning("shared cache entry with a bad signature ignored (key %s)", key)
            return None
        try:
            entry = pickle.loads(signed[signed.index(b"\n") + 1 :])
        except Exception as error:  # a class that moved since: recompute rather than fail
            log.warning("shared cache entry unreadable (key %s): %s", key, error)
            return None
        return entry if isinstance(entry, _Entry) else None

    def _release_lock(self, key: str) -> None:
        try:
            # only our own lock: a slow computation may have outlived it and another taken it
            self._client.eval(_RELEASE, 1, LOCK_PREFIX + key, self._token)
        except redis.RedisError:
            self.stats.redis_errors += 1


# KEYS: result, lock; ARGV: token, lock ms, slot start, data version (-2: unknown), oldest
# servable. Returns {blob or false, 1 if the lock was taken}: taken only when the copy is missing
# or due, judged as _current does (this period's slot, or the quiet allowance at the same data
# version) from the header the blob carries after its 32-byte signature.
_LOAD_OR_LOCK = """
local blob = redis.call('get', KEYS[1])
if blob then
  local eol = string.find(blob, '\\n', 33, true)
  if eol then
    local at, version = string.match(string.sub(blob, 33, eol - 1), '^(%S+) (%S+)$')
    at, version = tonumber(at), tonumber(version)
    if at and version and (at >= tonumber(ARGV[3])
        or (version == tonumber(ARGV[4]) and at > tonumber(ARGV[5]))) then
      return {blob, 0}
    end
  end
end
local locked = redis.call('set', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
return {blob or false, locked}
"""

# KEYS: result, lock; ARGV: blob, ttl ms, token. Stores the copy and lets go of our own lock
# (only ours: a slow computation may have outlived it and another taken it).
_STORE_AND_UNLOCK = """
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('get', KEYS[2]) == ARGV[3] then redis.call('del', KEYS[2]) end
return 1
"""

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
