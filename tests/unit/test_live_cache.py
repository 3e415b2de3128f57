"""The shared single-flight TTL cache and the as-of payload the freshness badges read."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from components import i18n
from data.cache import Cached, TtlCache
from panels.reads import asof_payload


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def counting(calls: list):
    def query(*, engine: object = None, category: str | None = None) -> tuple:
        calls.append(category)
        return (category, len(calls))

    return query


def test_results_are_reused_within_the_ttl_and_recomputed_after():
    clock, calls = FakeClock(), []
    cache = TtlCache(ttl_seconds=1.5, clock=clock)
    query = counting(calls)
    first = cache.get(query, category="water")
    clock.now += 1.4
    assert cache.get(query, category="water") is first
    assert calls == ["water"]
    clock.now += 0.2
    second = cache.get(query, category="water")
    assert second.value == ("water", 2)
    assert second.as_of >= first.as_of


def test_keys_are_function_and_keyword_arguments():
    calls: list = []
    cache = TtlCache(ttl_seconds=60)
    query = counting(calls)
    other = counting(calls)  # the same code, another function
    cache.get(query, category="water")
    cache.get(query, category="traffic")
    cache.get(query, category=None)
    cache.get(other, category="water")
    cache.get(query, category="water")
    assert calls == ["water", "traffic", None, "water"]


def test_list_and_dict_arguments_make_keys():
    seen: list = []
    cache = TtlCache(ttl_seconds=60)

    def query(*, values, options):
        seen.append(values)
        return len(seen)

    assert cache.get(query, values=["a", "b"], options={"x": 1}).value == 1
    assert cache.get(query, values=["a", "b"], options={"x": 1}).value == 1
    assert cache.get(query, values=["b", "a"], options={"x": 1}).value == 2


def test_the_cached_result_carries_when_it_was_computed():
    moment = datetime(2026, 7, 1, 6, 5, 12, tzinfo=UTC)
    cache = TtlCache(ttl_seconds=1, wall_clock=lambda: moment)
    result = cache.get(lambda: 42)
    assert result == Cached(value=42, as_of=moment)


def test_concurrent_callers_share_one_computation():
    cache = TtlCache(ttl_seconds=60)
    started, release = threading.Event(), threading.Event()
    calls: list = []

    def slow(*, key: str) -> str:
        calls.append(key)
        started.set()
        release.wait(5)
        return f"value of {key}"

    results: list = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get(slow, key="k"))) for _ in range(8)
    ]
    threads[0].start()
    assert started.wait(5)
    for thread in threads[1:]:
        thread.start()
    time.sleep(0.2)  # the others are now waiting on the flight in progress
    release.set()
    for thread in threads:
        thread.join(5)
    assert calls == ["k"]
    assert len(results) == 8
    assert all(result is results[0] for result in results)


def test_different_keys_compute_in_parallel():
    cache = TtlCache(ttl_seconds=60)
    barrier = threading.Barrier(2, timeout=5)

    def meet(*, key: str) -> str:
        barrier.wait()  # deadlocks (BrokenBarrierError) if keys were serialised
        return key

    results: list = []
    threads = [
        threading.Thread(target=lambda k=k: results.append(cache.get(meet, key=k).value))
        for k in ("a", "b")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert sorted(results) == ["a", "b"]


def test_errors_are_not_cached():
    cache = TtlCache(ttl_seconds=60)
    attempts: list = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("database down")
        return "ok"

    with pytest.raises(RuntimeError, match="database down"):
        cache.get(flaky)
    assert len(cache) == 0
    assert cache.get(flaky).value == "ok"
    assert cache.get(flaky).value == "ok"
    assert len(attempts) == 2


def test_waiters_of_a_failing_flight_get_its_error_and_the_next_call_retries():
    cache = TtlCache(ttl_seconds=60)
    started, release = threading.Event(), threading.Event()
    attempts: list = []

    def failing_once() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            started.set()
            release.wait(5)
            raise RuntimeError("boom")
        return "ok"

    errors: list = []

    def call() -> None:
        try:
            cache.get(failing_once)
        except RuntimeError as error:
            errors.append(str(error))

    first = threading.Thread(target=call)
    first.start()
    assert started.wait(5)
    second = threading.Thread(target=call)
    second.start()
    time.sleep(0.2)
    release.set()
    first.join(5)
    second.join(5)
    assert errors == ["boom", "boom"]
    assert cache.get(failing_once).value == "ok"


def test_size_is_bounded_least_recently_used_first():
    cache = TtlCache(ttl_seconds=60, max_entries=3)
    calls: list = []

    def query(*, n: int) -> int:
        calls.append(n)
        return n

    for n in (1, 2, 3):
        cache.get(query, n=n)
    cache.get(query, n=1)  # 1 is now the most recently used
    cache.get(query, n=4)  # evicts 2
    assert len(cache) == 3
    cache.get(query, n=1)
    cache.get(query, n=3)
    assert calls == [1, 2, 3, 4]
    cache.get(query, n=2)
    assert calls == [1, 2, 3, 4, 2]


def test_forget_drops_one_result_and_invalidate_the_tagged_partitions_only():
    calls: list = []
    cache = TtlCache(ttl_seconds=60)
    query = counting(calls)
    partitions = [("*", True), ("310115", False), ("310101", True), ("310101,310115", True), None]
    for partition in partitions:
        cache.get(query, partition, category="fire")
    cache.forget(query, None, category="fire")
    cache.invalidate("310115", "*")
    assert len(cache) == 1  # Huangpu's alone stays
    for partition in partitions:
        cache.get(query, partition, category="fire")
    assert len(calls) == 2 * len(partitions) - 1


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        TtlCache(ttl_seconds=0)
    with pytest.raises(ValueError):
        TtlCache(ttl_seconds=1, max_entries=0)


def test_asof_payload_is_the_oldest_read_with_its_server_side_age_in_shanghai_time():
    at = datetime(2026, 7, 1, 6, 5, 14, 500000, tzinfo=UTC)
    older = Cached(value=1, as_of=at - timedelta(seconds=2.5))
    newer = Cached(value=2, as_of=at - timedelta(seconds=0.5))
    payload = asof_payload(newer, older, at=at)
    assert payload == {
        "at": int((at - timedelta(seconds=2.5)).timestamp() * 1000),
        "age": 2.5,
        "clock": "14:05:12",  # UTC+8
    }


def test_asof_age_is_never_negative():
    at = datetime(2026, 7, 1, 6, 0, tzinfo=UTC)
    payload = asof_payload(Cached(value=1, as_of=at + timedelta(seconds=1)), at=at)
    assert payload["age"] == 0.0


def test_freshness_labels_exist_in_both_languages():
    assert i18n.t("fresh.updated", "zh", t="14:05:12") == "更新于 14:05:12"
    assert i18n.t("fresh.updated", "en", t="14:05:12") == "Updated 14:05:12"
    assert i18n.t("fresh.delayed", "zh") == "数据延迟"
    assert i18n.t("fresh.delayed", "en") == "delayed"
