"""Green-channel milestones measured against the pathway's time targets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

MILESTONES = (
    "referral_sent",
    "target_notified",
    "departed",
    "door",
    "first_examination",
    "imaging",
    "treatment_start",
    "departed_onward",
)


class TargetStatus(StrEnum):
    MET = "met"
    MISSED = "missed"
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class TargetResult:
    code: str
    name: str
    from_milestone: str
    to_milestone: str
    target_minutes: int
    actual_minutes: float | None
    status: TargetStatus


def evaluate(
    targets: Sequence[Mapping[str, Any]], milestones: Mapping[str, datetime], now: datetime
) -> list[TargetResult]:
    """Each target: met or missed once both ends are recorded; missed once the time is
    already up with the end still missing; otherwise pending (also when the start is missing).
    """
    out = []
    for t in targets:
        start, end = milestones.get(t["from"]), milestones.get(t["to"])
        limit = int(t["minutes"])
        actual = None
        if start is not None and end is not None:
            actual = round((end - start).total_seconds() / 60, 1)
            status = TargetStatus.MET if actual <= limit else TargetStatus.MISSED
        elif start is not None and (now - start).total_seconds() / 60 > limit:
            status = TargetStatus.MISSED
        else:
            status = TargetStatus.PENDING
        out.append(TargetResult(t["code"], t["name"], t["from"], t["to"], limit, actual, status))
    return out


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..1), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (pos - low), 1)
