"""Capacity arithmetic: free = total - occupied - held, never negative."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class CensusResult:
    total: int
    occupied: int
    overflow: int


def apply_census(total: int, occupied: int, held: int) -> CensusResult:
    """Store a census without dropping holds.

    Holds are patients already on their way; a census that leaves no room for them keeps the
    holds and reports the excess as ``overflow`` (beds over capacity). The stored occupied
    figure is cut to what fits beside the holds, so free stays at zero, never below; when the
    holds alone exceed the reported total, the total is kept at the number of holds.
    """
    if total < 0 or occupied < 0 or held < 0:
        raise ValueError("capacity figures are never negative")
    overflow = max(0, occupied + held - total)
    stored_total = max(total, held)
    stored_occupied = min(occupied, stored_total - held)
    return CensusResult(stored_total, stored_occupied, overflow)


def free(total: int, occupied: int, held: int) -> int:
    return max(0, total - occupied - held)


#: the pools a slot hold is taken from: the reserve kept for the institution's signed patients,
#: or the places offered to every consortium referral
SIGNED_POOL = "signed"
CONSORTIUM_POOL = "consortium"


def released(release_at: datetime | None, now: datetime) -> bool:
    """The signed reserve has gone to the general pool (never without a release time)."""
    return release_at is not None and release_at <= now


def unused_reserve(
    reserved_signed: int,
    held_signed: int,
    used_signed: int,
    release_at: datetime | None,
    now: datetime,
) -> int:
    """Signed-reserve places neither held nor used, while still kept (before ``release_at``)."""
    if released(release_at, now):
        return 0
    return max(0, reserved_signed - held_signed - used_signed)


def slot_free(
    total: int,
    occupied: int,
    held: int,
    unused: int,
    *,
    signed: bool,
) -> int:
    """Free slot places a referral may take: a signed patient every free one, another patient
    those outside the unused signed reserve."""
    return free(total, occupied, held) if signed else max(0, total - occupied - held - unused)
