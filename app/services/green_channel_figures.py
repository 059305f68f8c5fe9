"""Green-channel compliance per pathway and hospital: median and 90th-percentile times of each
measured interval against its target, the share met, and overflow."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import utcnow
from app.db.models import Referral
from app.db.repositories import pathways as repo
from app.domain import green_channel
from app.domain.localtime import local_month
from app.services import zones
from app.services.access import figures_consortium
from app.services.auth import Principal

CLOCK_SKEW = timedelta(minutes=1)
# who records which milestone: the source for its own departure, the target for the rest
SOURCE_MILESTONES = frozenset({"departed"})
AUTOMATIC_MILESTONES = frozenset({"referral_sent", "target_notified"})


@dataclass(frozen=True, slots=True)
class IntervalFigure:
    target: str
    target_minutes: int
    measured: int
    median_minutes: float | None
    p90_minutes: float | None
    met_share: float | None
    met: int = 0  # decided ones that met the target
    decided: int = 0  # met or missed (not pending)


@dataclass(frozen=True, slots=True)
class GreenChannelFigure:
    pathway: str
    institution_id: str | None
    month: str
    referrals: int
    overflow: int
    intervals: list[IntervalFigure]


async def report(
    session: AsyncSession,
    principal: Principal,
    consortium_id: str | None,
    start: date,
    end: date,
) -> list[GreenChannelFigure]:
    consortium_id = await figures_consortium(
        session, principal, consortium_id, "Green-channel figures"
    )
    days = await zones.period(session, consortium_id, start, end)
    groups: dict[tuple[str, str | None, str], list[tuple[Referral, dict[str, datetime]]]]
    groups = defaultdict(list)
    rows = await repo.green_channel_rows(session, consortium_id, days.start_at, days.end_at)
    for row, ms in rows:
        month = local_month(row.created_at, days.time_zone)
        key = (str(row.pathway_code), row.target_institution_id, month)
        groups[key].append((row, {m.code: m.at for m in ms}))
    out = []
    now = utcnow()
    for (pathway, institution, month), items in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or "", kv[0][2])
    ):
        per_target: dict[str, list[green_channel.TargetResult]] = defaultdict(list)
        for row, recorded in items:
            for result in green_channel.evaluate(row.pathway_targets or [], recorded, now):
                per_target[result.code].append(result)
        intervals = []
        for code, results in sorted(per_target.items()):
            actual = [r.actual_minutes for r in results if r.actual_minutes is not None]
            decided = [r for r in results if r.status is not green_channel.TargetStatus.PENDING]
            met = sum(r.status is green_channel.TargetStatus.MET for r in decided)
            intervals.append(
                IntervalFigure(
                    target=code,
                    target_minutes=results[0].target_minutes,
                    measured=len(actual),
                    median_minutes=green_channel.percentile(actual, 0.5),
                    p90_minutes=green_channel.percentile(actual, 0.9),
                    met_share=round(met / len(decided), 3) if decided else None,
                    met=met,
                    decided=len(decided),
                )
            )
        out.append(
            GreenChannelFigure(
                pathway,
                institution,
                month,
                len(items),
                sum(1 for row, _ in items if row.overflow),
                intervals,
            )
        )
    return out
