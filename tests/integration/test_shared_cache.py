"""The Redis-backed shared cache and the new-data channel, against a real redis-server."""

from __future__ import annotations

import pickle
import threading
import time
from pathlib import Path

import pytest
import redis

from data.cache import TtlCache, fresh_for
from localservers.base import free_port
from serving import events
from serving.events import EventListener
from serving.renewal import Renewer
from serving.shared_cache import KEY_PREFIX, LOCK_PREFIX, SharedCache


class Clock:
    """A settable time.time()."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    connection = redis.Redis.from_url(redis_url)
    connection.flushdb()
    yield connection
    connection.close()


def make_cache(
    client,
    *,
    clock=None,
    listener=None,
    period=5.0,
    quiet=0.0,
    key=b"k",
    interval=1.0,
    renewer=None,
):
    return SharedCache(
        client,
        period_seconds=period,
        quiet_seconds=quiet,
        signing_key=key,
        events=listener,
        clock=clock or Clock(),
        invalidate_interval_s=interval,
        renewer=renewer,
    )


class Counted:
    """A query that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()
        # the shared key names a query by its qualified name: one per instance here
        self.__qualname__ = f"Counted.{id(self)}"

    def __call__(self, *, district: str = "*", pause: float = 0.0) -> dict:
        with self.lock:
            self.calls += 1
        time.sleep(pause)
        return {"district": district, "call": self.calls}


def test_two_workers_compute_once_and_share_the_result(client):
    clock = Clock()
    query = Counted()
    first, second = make_cache(client, clock=clock), make_cache(client, clock=clock)
    a = first.get(query, "*", district="310115")
    b = second.get(query, "*", district="310115")
    assert query.calls == 1
    assert a.value == b.value == {"district": "310115", "call": 1}
    assert a.as_of == b.as_of
    assert second.stats.shared_hits == 1 and second.stats.computed == 0


def test_one_computation_per_period_however_often_it_is_asked(client):
    clock = Clock()
    query = Counted()
    caches = [make_cache(client, clock=clock, period=5.0) for _ in range(3)]
    # 60 s of requests: every 0.1 s from three workers
    for step in range(600):
        clock.now = 1_000_000.0 + step * 0.1
        caches[step % 3].get(query, "*", district="310101")
    assert 12 <= query.calls <= 13
    # and a key asked only every 4.9 s is computed about as often, not once per request
    sparse = Counted()
    for step in range(13):
        clock.now = 2_000_000.0 + step * 4.9
        caches[step % 3].get(sparse, "*", district="310101")
    assert sparse.calls <= 13


def test_periods_of_different_keys_fall_due_at_different_moments(client):
    cache = make_cache(client, period=10.0)
    keys = [f"{n:040x}" for n in range(0, 2**24, 2**20)]
    turned_over = {
        cache._period_of(key, 5.0, 10.0) - cache._period_of(key, 0.0, 10.0) for key in keys
    }
    # within the same 5 s some keys fall due and others do not
    assert turned_over == {0, 1}


def test_scopes_never_share_results(client):
    query = Counted()
    cache = make_cache(client)
    city = cache.get(query, ("*", True), district="x")
    pudong = cache.get(query, ("310115", True), district="x")
    viewer = cache.get(query, ("*", False), district="x")
    assert query.calls == 3
    assert len({city.value["call"], pudong.value["call"], viewer.value["call"]}) == 3


def test_quiet_results_serve_longer_until_new_data_is_announced(client):
    listener = EventListener(client)
    assert wait_until(lambda: listener.state.connected)
    clock = Clock()
    query = Counted()
    cache = make_cache(client, clock=clock, listener=listener, period=5.0, quiet=10.0)
    cache.get(query, "*")
    clock.now += 11.0  # a later period, within period + quiet: nothing new was written
    cache.get(query, "*")
    assert query.calls == 1
    version = listener.state.version
    events.announce_new_data(source="test", client=client)
    assert wait_until(lambda: listener.state.version == version + 1)
    cache.get(query, "*")
    assert query.calls == 2
    clock.now += 16.0  # past period + quiet: due even when quiet
    cache.get(query, "*")
    assert query.calls == 3


def test_the_previous_copy_serves_while_another_worker_recomputes(client):
    clock = Clock()
    query = Counted()
    cache = make_cache(client, clock=clock, period=5.0)
    first = cache.get(query, "*")
    clock.now += 30.0
    # another worker holds the key's lock: this one must not wait for it, nor compute too
    for key in client.scan_iter(KEY_PREFIX + "*"):
        client.set(LOCK_PREFIX + key.decode()[len(KEY_PREFIX) :], "other", px=5000)
    again = cache.get(query, "*")
    assert again.value == first.value and query.calls == 1
    assert cache.stats.stale_served == 1


def test_without_any_copy_a_worker_waits_for_the_leader(client):
    query = Counted()
    leader, follower = make_cache(client), make_cache(client)
    answers = []
    thread = threading.Thread(
        target=lambda: answers.append(leader.get(query, "*", pause=0.5).value)
    )
    thread.start()
    time.sleep(0.1)
    answers.append(follower.get(query, "*", pause=0.5).value)
    thread.join()
    assert query.calls == 1 and answers[0] == answers[1]
    assert follower.stats.waited == 1


def test_threads_of_one_worker_share_one_computation(client):
    query = Counted()
    cache = make_cache(client)
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get(query, "*", pause=0.3).value))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert query.calls == 1 and len(results) == 8


class Slow(Counted):
    """A query whose duration is set on it, not passed (arguments are part of the key)."""

    pause = 0.0

    def __call__(self, *, district: str = "*") -> dict:
        return super().__call__(district=district, pause=self.pause)


def renewal_under_way(cache: SharedCache, query: Slow) -> threading.Thread:
    """Start a thread renewing `query`'s result (slowly); return once it has begun."""
    query.pause = 0.5
    calls = query.calls
    thread = threading.Thread(target=lambda: cache.get(query, "*"))
    thread.start()
    deadline = time.monotonic() + 5
    while query.calls == calls and time.monotonic() < deadline:
        time.sleep(0.005)
    return thread


def test_a_thread_with_the_previous_copy_does_not_wait_for_another_threads_renewal(client):
    clock = Clock()
    query = Slow()
    cache = make_cache(client, clock=clock, period=5.0)
    first = cache.get(query, "*")
    clock.now += 5.0  # the next period: due
    renewing = renewal_under_way(cache, query)
    started = time.monotonic()
    again = cache.get(query, "*")
    waited = time.monotonic() - started
    renewing.join()
    assert again.value == first.value and waited < 0.25
    assert cache.stats.stale_served == 1
    # and the renewal's result is what the next request gets
    assert cache.get(query, "*").value["call"] == 2 and query.calls == 2


def test_a_copy_older_than_a_current_one_can_be_waits_for_the_renewal_instead(client):
    # older than period + quiet allowance: served, it could turn a freshness badge amber
    clock = Clock()
    query = Slow()
    cache = make_cache(client, clock=clock, period=5.0, quiet=1.0)
    cache.get(query, "*")
    clock.now += 5.0 + 1.0 + 0.5
    renewing = renewal_under_way(cache, query)
    again = cache.get(query, "*")
    renewing.join()
    assert again.value["call"] == 2 and query.calls == 2
    assert cache.stats.stale_served == 0


def test_entries_not_signed_with_our_key_are_never_unpickled(client, tmp_path: Path):
    marker = tmp_path / "pwned"
    query = Counted()
    honest = make_cache(client, key=b"ours")
    honest.get(query, "*")  # creates the key
    (key,) = list(client.scan_iter(KEY_PREFIX + "*"))

    class Exploit:
        def __reduce__(self):
            return (marker.write_text, ("ran",))

    payload = pickle.dumps(Exploit())
    client.set(key, b"\0" * 32 + payload)  # a forged signature
    honest._local.clear()
    honest.get(query, "*")
    assert not marker.exists()
    assert query.calls == 2  # refused, recomputed
    # the same cache signed by another deployment's key is refused as well
    stranger = make_cache(client, key=b"theirs")
    stranger.get(query, "*")
    assert query.calls == 3


def test_clear_reaches_every_worker(client):
    listeners = [EventListener(client), EventListener(client)]
    assert wait_until(lambda: all(listener.state.connected for listener in listeners))
    query = Counted()
    one = make_cache(client, listener=listeners[0])
    two = make_cache(client, listener=listeners[1])
    one.get(query, "*")
    two.get(query, "*")
    assert query.calls == 1
    generation = listeners[1].state.generation
    one.clear()
    # the worker that cleared sees its new generation at once
    one.get(query, "*")
    assert query.calls == 2
    assert listeners[1].wait_for_generation(generation + 1, timeout_s=5)
    two.get(query, "*")
    assert query.calls == 2  # the other worker takes the fresh result from Redis
    assert two.stats.shared_hits >= 1


def _workers(client, n=2, **options):
    listeners = [EventListener(client) for _ in range(n)]
    assert wait_until(lambda: all(listener.state.connected for listener in listeners))
    return [make_cache(client, listener=listener, **options) for listener in listeners]


def test_forget_drops_one_result_in_every_worker_and_nothing_else(client):
    one, two = _workers(client)
    generation = one._events.state.generation
    session, other = Counted(), Counted()
    for cache in (one, two):
        cache.get(session, None, district="token-a")
        cache.get(other, None, district="token-b")
    assert session.calls == other.calls == 1
    one.forget(session, None, district="token-a")
    # the other worker hears of it and drops its own copy: its next read is a fresh one
    assert wait_until(lambda: len(two) == 1)
    two.get(session, None, district="token-a")
    one.get(session, None, district="token-a")
    assert session.calls == 2
    two.get(other, None, district="token-b")
    assert other.calls == 1 and one._events.state.generation == generation


def test_invalidate_outdates_the_tagged_partitions_only(client):
    one, two = _workers(client)
    queries = {partition: Counted() for partition in (("310115", True), ("310101", True))}
    queries[("*", False)] = Counted()
    queries[("310101,310115", False)] = Counted()
    for cache in (one, two):
        for partition, query in queries.items():
            cache.get(query, partition)
    one.invalidate("310115", "*")
    assert wait_until(lambda: two._events.state.tags.get("310115") == 1)
    for cache in (one, two):
        for partition, query in queries.items():
            cache.get(query, partition)
    calls = {partition[0]: query.calls for partition, query in queries.items()}
    assert calls == {"310115": 2, "310101": 1, "*": 2, "310101,310115": 2}


def test_invalidations_come_at_most_once_per_interval_and_cover_the_last(client):
    (cache,) = _workers(client, n=1, interval=0.4)
    for _ in range(20):
        cache.invalidate("310104")
    assert int(client.hget(events.TAGS_KEY, "310104")) == 1
    # the changes after the first are covered by one more, when the interval ends
    assert wait_until(lambda: int(client.hget(events.TAGS_KEY, "310104")) == 2, timeout_s=2)
    time.sleep(0.6)
    assert int(client.hget(events.TAGS_KEY, "310104")) == 2


def test_a_missing_redis_costs_the_cache_not_the_answer():
    dead = redis.Redis(host="127.0.0.1", port=free_port(), socket_timeout=0.2)
    query = Counted()
    cache = make_cache(dead)
    assert cache.get(query, "*", district="310104").value["district"] == "310104"
    assert cache.stats.redis_errors >= 1


def test_announcements_without_redis_are_a_no_op():
    assert events.connect(None) is None and events.connect("") is None
    events.announce_new_data(source="test", client=None)  # nothing to tell, nothing raised
    assert events.announce_cache_cleared(source="test", client=None) is None


def test_the_listener_reconnects_after_redis_drops_it(client):
    listener = EventListener(client)
    assert wait_until(lambda: listener.state.connected)
    client.client_kill_filter(_type="pubsub")
    version = listener.state.version or 0
    # announcements made after the reconnect are heard again
    assert wait_until(
        lambda: events.announce_new_data(source="test", client=client)
        or (listener.state.version or 0) > version,
        timeout_s=15,
    )


def wait_until(condition, *, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


class CountingRedis(redis.Redis):
    """A client that counts the commands it sends (each one round trip)."""

    sent = 0

    def execute_command(self, *args, **options):
        self.sent += 1
        return super().execute_command(*args, **options)


def test_a_miss_costs_two_round_trips_and_a_shared_hit_one(client, redis_url: str):
    clock = Clock()
    query = Counted()
    counting = [CountingRedis.from_url(redis_url) for _ in range(2)]
    first, second = (make_cache(one, clock=clock) for one in counting)
    first.get(query, "*")  # load-or-lock, then store-and-unlock
    second.get(query, "*")  # load-or-lock finds it current and takes no lock
    assert (counting[0].sent, counting[1].sent) == (2, 1)
    assert query.calls == 1 and second.stats.shared_hits == 1
    assert not list(client.scan_iter(LOCK_PREFIX + "*"))  # the leader's lock is gone
    for one in counting:
        one.close()


def test_a_due_copy_is_locked_for_one_worker_only(client):
    clock = Clock()
    query = Counted()
    first, second = make_cache(client, clock=clock), make_cache(client, clock=clock)
    first.get(query, "*")
    clock.now += 5.0  # the next period: due for both
    key = next(iter(first._local))
    shared, locked = first._load_or_lock(key, 5.0)
    assert shared is not None and locked  # the copy, to serve meanwhile, and the lock
    again, also_locked = second._load_or_lock(key, 5.0)
    assert again is not None and not also_locked
    assert second.get(query, "*").value == shared.cached.value  # served stale, not computed
    assert query.calls == 1 and second.stats.stale_served == 1


def test_a_query_fresh_for_longer_than_the_period_is_kept_that_long(client):
    clock = Clock()
    slow, live = fresh_for(60.0)(Counted()), Counted()
    first, second = make_cache(client, clock=clock), make_cache(client, clock=clock)
    for step in range(12):  # a minute of 5-s refreshes, alternating between workers
        cache = first if step % 2 else second
        cache.get(slow, "*")
        cache.get(live, "*")
        clock.now += 5.0
    assert live.calls >= 11  # once a period
    assert slow.calls <= 2  # once in its own minute (its slot may start mid-way)
    calls = slow.calls
    clock.now += 60.0
    assert first.get(slow, "*").value["call"] == calls + 1


def test_the_local_cache_keeps_a_slow_query_for_its_own_freshness():
    clock = Clock()
    cache = TtlCache(ttl_seconds=2.0, clock=clock)
    slow, live = fresh_for(30.0)(Counted()), Counted()
    for _ in range(10):
        cache.get(slow, "*")
        cache.get(live, "*")
        clock.now += 2.5
    assert (slow.calls, live.calls) == (1, 10)
    with pytest.raises(ValueError, match="positive"):
        fresh_for(0)


def carry(job):
    """What the web tier's carrier does, minus the request: run `job` as given."""
    return job


def wait_for(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    return condition()


def busy_worker(client, clock, *, max_age: float = 15.0) -> tuple[SharedCache, Renewer]:
    """A cache whose only computing slot is taken (until the test gives it back)."""
    renewer = Renewer(slots=1, queue_size=2, max_age_seconds=max_age)
    assert renewer.try_slot()
    return make_cache(client, clock=clock, renewer=renewer), renewer


def test_a_busy_worker_serves_the_copy_and_renews_it_in_the_background(client):
    clock = Clock()
    query = Counted()
    cache, renewer = busy_worker(client, clock)
    first = cache.get(query, "*", carry=carry)  # no copy yet: computed in the request
    clock.now += 5.0  # due
    started = time.monotonic()
    again = cache.get(query, "*", carry=carry)
    assert again.value == first.value and time.monotonic() - started < 1.0
    assert cache.stats.deferred == 1 and query.calls == 1
    # the renewal waits for a slot, then stores the new copy for every worker
    renewer.release()
    assert wait_for(lambda: query.calls == 2)
    other = make_cache(client, clock=clock)
    assert wait_for(lambda: other.get(query, "*").value["call"] == 2)
    assert wait_for(lambda: not list(client.scan_iter(LOCK_PREFIX + "*")))  # lock let go
    assert cache.get(query, "*", carry=carry).value["call"] == 2


def test_a_worker_with_a_free_slot_answers_fresh(client):
    clock = Clock()
    query = Counted()
    cache = make_cache(
        client, clock=clock, renewer=Renewer(slots=1, queue_size=2, max_age_seconds=15)
    )
    cache.get(query, "*", carry=carry)
    clock.now += 5.0
    assert cache.get(query, "*", carry=carry).value["call"] == 2
    assert cache.stats.deferred == 0


def test_only_deferrable_results_and_recent_copies_are_served_while_renewing(client):
    clock = Clock()
    query, plain = Counted(), Counted()
    cache, _renewer = busy_worker(client, clock, max_age=7.0)
    cache.get(query, "*", carry=carry)
    cache.get(plain, "*")
    clock.now += 5.0
    # a result asked for without a carrier (a data read inside an answer) is computed now
    assert cache.get(plain, "*").value["call"] == 2
    clock.now += 5.0  # 10 s old: older than the 7 s a copy may be while it renews
    assert cache.get(query, "*", carry=carry).value["call"] == 2
    assert cache.stats.deferred == 0


def test_a_full_renewal_queue_serves_the_copy_lets_the_lock_go_and_presses(client):
    clock = Clock()
    queries = [Counted() for _ in range(4)]
    cache, renewer = busy_worker(client, clock)  # queue of two, slot never freed
    for query in queries:
        cache.get(query, "*", carry=carry)
    clock.now += 5.0
    answers = [cache.get(queries[0], "*", carry=carry).value["call"]]
    # the renewing thread has taken the first job and waits for the slot
    assert wait_for(lambda: renewer.waiting == 0)
    answers += [cache.get(query, "*", carry=carry).value["call"] for query in queries[1:3]]
    assert not cache.pressed  # queued, not yet kept waiting
    answers.append(cache.get(queries[3], "*", carry=carry).value["call"])
    assert answers == [1, 1, 1, 1] and cache.stats.deferred == 3
    assert cache.stats.stale_served == 1 and cache.pressed
    # three locks held for the queued renewals; the fourth let go, for any worker to take
    assert len(list(client.scan_iter(LOCK_PREFIX + "*"))) == 3


def test_a_failed_background_renewal_lets_the_next_request_try_again(client):
    clock = Clock()

    class Failing(Counted):
        fail = False

        def __call__(self, **kwargs) -> dict:
            if self.fail:
                raise RuntimeError("database away")
            return super().__call__(**kwargs)

    query = Failing()
    cache, renewer = busy_worker(client, clock)
    cache.get(query, "*", carry=carry)
    clock.now += 5.0
    query.fail = True
    assert cache.get(query, "*", carry=carry).value["call"] == 1  # the copy, renewal queued
    renewer.release()
    assert wait_for(lambda: not list(client.scan_iter(LOCK_PREFIX + "*")))
    assert wait_for(lambda: renewer.running == 0)  # its slot given back
    query.fail = False
    assert cache.get(query, "*", carry=carry).value["call"] == 2


def test_a_renewer_refuses_nonsense():
    for slots, size, age, wait in (
        (0, 1, 1.0, 1.0),
        (1, 0, 1.0, 1.0),
        (1, 1, 0.0, 1.0),
        (1, 1, 1.0, 0.0),
    ):
        with pytest.raises(ValueError, match="at least 1"):
            Renewer(slots=slots, queue_size=size, max_age_seconds=age, pressed_wait_seconds=wait)


def test_a_worker_is_pressed_when_its_renewals_wait_too_long_for_their_turn(client):
    clock = Clock()
    queries = [Counted() for _ in range(4)]
    renewer = Renewer(slots=1, queue_size=1, max_age_seconds=15, pressed_wait_seconds=0.3)
    cache = make_cache(client, clock=clock, renewer=renewer)
    for query in queries:
        cache.get(query, "*", carry=carry)
    clock.now += 5.0
    assert renewer.try_slot()
    cache.get(queries[0], "*", carry=carry)  # queued; its renewal starts at once when let
    renewer.release()
    assert wait_for(lambda: queries[0].calls == 2 and renewer.running == 0)
    assert not cache.pressed
    assert renewer.try_slot()
    cache.get(queries[1], "*", carry=carry)  # queued, and kept waiting past 0.3 s
    time.sleep(0.4)
    assert not cache.pressed
    renewer.release()
    assert wait_for(lambda: queries[1].calls == 2) and cache.pressed
