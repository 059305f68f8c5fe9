"""Row ids: UUIDv7, time-ordered and monotonic."""

from app.db.base import new_id


def test_ids_are_monotonic_within_a_millisecond() -> None:
    ids = [new_id() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
