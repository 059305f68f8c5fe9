"""Capacity arithmetic: free = total - occupied - held, never negative."""

from __future__ import annotations

from dataclasses import dataclass


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
