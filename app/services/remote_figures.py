"""The monthly figures of remote consultation and reading, per member (the reader), specialty
or month, by the local month in which the request was made: requests received (routed to the
member at least once), reported (by it), the turnaround from request to report (median and
90th percentile, minutes), reported within the target of the request's kind and urgency, and
converted into a transfer afterwards. Counted in the service from one row per routing and one
per report (remote requests are few beside transfers)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.repositories import remote as remote_repo
from app.db.repositories.reports import Key, Scope
from app.domain.green_channel import percentile
from app.domain.localtime import local_month

FIELDS = (
    "remote_received",
    "reads_received",
    "consults_received",
    "remote_reported",
    "remote_within_target",
    "remote_converted",
)


@dataclass
class RemoteFigures:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FIELDS, 0))
    minutes: list[float] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        return percentile(self.minutes, 0.5)

    @property
    def p90(self) -> float | None:
        return percentile(self.minutes, 0.9)

    @property
    def within_target_share(self) -> float | None:
        n = self.counts["remote_reported"]
        return round(self.counts["remote_within_target"] / n, 4) if n else None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def figures(session: AsyncSession, scope: Scope) -> dict[Key, RemoteFigures]:
    routed, answered = await remote_repo.figure_rows(
        session, scope.consortium_id, scope.start, scope.end
    )
    out: dict[Key, RemoteFigures] = defaultdict(RemoteFigures)

    def key(member: str | None, specialty: str, created: datetime) -> Key:
        month = local_month(_aware(created), scope.time_zone)
        if scope.group_by == "institution":
            return (member, month)
        return (specialty if scope.group_by == "specialty" else None, month)

    seen: set[tuple[str, Key]] = set()
    for rid, kind, member, created, specialty in routed:
        k = key(member, specialty, created)
        if (rid, k) in seen:  # routed to the member twice: received once
            continue
        seen.add((rid, k))
        c = out[k].counts
        c["remote_received"] += 1
        c["reads_received" if kind == "remote_read" else "consults_received"] += 1
    for _rid, _kind, reader, created, reported, within, converted, specialty in answered:
        f = out[key(reader, specialty, created)]
        f.counts["remote_reported"] += 1
        f.counts["remote_within_target"] += int(bool(within))
        f.counts["remote_converted"] += int(bool(converted))
        f.minutes.append((_aware(reported) - _aware(created)).total_seconds() / 60)
    return dict(out)
