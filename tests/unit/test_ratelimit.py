"""The token bucket of the per-key rate limit, on a fake clock."""

from __future__ import annotations

import pytest

from app.api.ratelimit import TokenBuckets, key_hash


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_at_the_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(per_second=2, burst=4, clock=clock)
    assert [buckets.take("k") for _ in range(4)] == [0.0] * 4
    assert buckets.take("k") == pytest.approx(0.5)  # one token every 0.5 s
    clock.now += 0.25
    assert buckets.take("k") == pytest.approx(0.25)
    clock.now += 0.25
    assert buckets.take("k") == 0.0
    assert buckets.take("other") == 0.0  # per key
    clock.now += 3600  # refills up to the burst, not beyond
    assert [buckets.take("k") for _ in range(5)][-1] > 0


def test_refused_requests_do_not_use_tokens() -> None:
    clock = Clock()
    buckets = TokenBuckets(per_second=1, burst=1, clock=clock)
    assert buckets.take("k") == 0.0
    for _ in range(100):
        assert buckets.take("k") > 0
    clock.now += 1
    assert buckets.take("k") == 0.0


def test_the_table_is_bounded_idle_buckets_go_first() -> None:
    clock = Clock()
    buckets = TokenBuckets(per_second=1, burst=2, clock=clock, max_buckets=3)
    buckets.take("a")
    clock.now += 10  # "a" is full again
    buckets.take("b")
    buckets.take("b")
    buckets.take("c")
    buckets.take("d")  # makes room: "a" (idle) goes, "b" keeps its empty bucket
    assert len(buckets) == 3
    assert buckets.take("b") > 0
    for name in "efgh":
        buckets.take(name)
    assert len(buckets) == 3


def test_off_is_refused_by_the_constructor() -> None:
    with pytest.raises(ValueError, match="per_second"):
        TokenBuckets(per_second=0, burst=10)


def test_keys_are_hashed_with_the_authentication_precedence() -> None:
    bearer = {"headers": [(b"authorization", b"Bearer abc")]}
    header = {"headers": [(b"x-api-key", b"abc")]}
    both = {"headers": [(b"authorization", b"Bearer zzz"), (b"x-api-key", b"abc")]}
    assert key_hash(bearer) == key_hash(header) == key_hash(both)
    assert key_hash(bearer) != "abc" and len(key_hash(bearer) or "") == 64
    assert key_hash({"headers": [(b"authorization", b"Basic abc")]}) is None
    assert key_hash({"headers": []}) is None
