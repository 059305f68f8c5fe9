"""The council's targets and the appraisal scorecard: each member's figures of each local month
of a year, met or missed against the targets in force that month.

Targets are versioned data (``app/data/targets.json``, an example; ``REFERRAL_TARGETS_FILE``):
the version valid from the first day of the month applies. The figures are those of the
monthly report (``app/services/reports.py``), the share of acceptances within the answer time
of the referral's urgency (``app/data/service_levels.json``) and the green-channel time
targets met (``app/services/green_channel_figures.py``). A target is met when
numerator / denominator reaches its minimum (compared exactly, not after rounding) and not
measured in a month without a denominator.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db.models import Consortium, Institution
from app.db.repositories import reports as repo
from app.domain.enums import Role
from app.domain.errors import InvalidInput, NotFound
from app.domain.localtime import local_month
from app.services import green_channel_figures, reports, service_levels, zones
from app.services.access import figures_consortium
from app.services.auth import Principal

DEFAULT_FILE = Path(__file__).resolve().parent.parent / "data" / "targets.json"
#: the figures a target may name: (numerator, denominator) per member and month
FIGURES = (
    "up_treated_in_county_share",
    "accepted_in_time_share",
    "follow_ups_on_time_share",
    "green_channel_met_share",
)


class TargetsFileError(ValueError):
    """The targets file cannot be used."""


@dataclass(frozen=True, slots=True)
class Target:
    code: str
    figure: str
    min: Decimal
    name: str
    name_zh: str
    source: str


@dataclass(frozen=True, slots=True)
class TargetsVersion:
    version: int
    valid_from: date
    default: tuple[Target, ...]
    consortia: dict[str, tuple[Target, ...]]

    def for_consortium(self, code: str) -> tuple[Target, ...]:
        return self.consortia.get(code, self.default)


@dataclass(frozen=True, slots=True)
class Targets:
    is_example: bool
    versions: tuple[TargetsVersion, ...]

    def in_force(self, day: date) -> TargetsVersion | None:
        found = None
        for v in self.versions:
            if v.valid_from <= day:
                found = v
        return found


def _target(where: str, data: Any) -> Target:
    if not isinstance(data, dict):
        raise TargetsFileError(f"{where}: an object")
    try:
        minimum = Decimal(str(data["min"]))
        target = Target(
            code=str(data["code"]),
            figure=str(data["figure"]),
            min=minimum,
            name=str(data.get("name", data["code"])),
            name_zh=str(data.get("name_zh", data.get("name", data["code"]))),
            source=str(data.get("source", "")),
        )
    except (KeyError, InvalidOperation) as exc:
        raise TargetsFileError(f"{where}: code, figure and min are required") from exc
    if target.figure not in FIGURES:
        raise TargetsFileError(f"{where}: figure must be one of {', '.join(FIGURES)}")
    if not (0 <= minimum <= 1):
        raise TargetsFileError(f"{where}: min is a share between 0 and 1")
    return target


def _targets(where: str, data: Any) -> tuple[Target, ...]:
    if not isinstance(data, list):
        raise TargetsFileError(f"{where}: a list")
    out = tuple(_target(f"{where}[{i}]", t) for i, t in enumerate(data))
    if len({t.code for t in out}) != len(out):
        raise TargetsFileError(f"{where}: target codes must differ")
    return out


def parse(data: Any) -> Targets:
    if not isinstance(data, dict) or not isinstance(data.get("versions"), list):
        raise TargetsFileError("versions: a list")
    versions = []
    for i, v in enumerate(data["versions"]):
        where = f"versions[{i}]"
        try:
            version = TargetsVersion(
                version=int(v["version"]),
                valid_from=date.fromisoformat(str(v["valid_from"])),
                default=_targets(f"{where}.default", v["default"]),
                consortia={
                    str(code): _targets(f"{where}.consortia.{code}", t)
                    for code, t in dict(v.get("consortia") or {}).items()
                },
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, TargetsFileError):
                raise
            raise TargetsFileError(
                f"{where}: version, valid_from and default are required"
            ) from exc
        versions.append(version)
    versions.sort(key=lambda v: v.valid_from)
    if len({v.valid_from for v in versions}) != len(versions):
        raise TargetsFileError("versions: one version per valid_from day")
    return Targets(is_example=bool(data.get("is_example", False)), versions=tuple(versions))


@lru_cache
def load(path: str) -> Targets:
    return parse(json.loads(Path(path).read_text(encoding="utf-8")))


def targets_of(settings: Settings) -> Targets:
    return load(str(settings.targets_file or DEFAULT_FILE))


@dataclass
class MonthResult:
    month: str
    version: int
    min: Decimal
    numerator: int
    denominator: int

    @property
    def value(self) -> float | None:
        return round(self.numerator / self.denominator, 4) if self.denominator else None

    @property
    def met(self) -> bool | None:
        if not self.denominator:
            return None
        return Decimal(self.numerator) >= self.min * self.denominator


@dataclass
class TargetCard:
    target: Target
    months: list[MonthResult] = field(default_factory=list)

    def count(self, met: bool) -> int:
        return sum(1 for m in self.months if m.met is met)

    @property
    def months_measured(self) -> int:
        return sum(1 for m in self.months if m.met is not None)

    @property
    def year_numerator(self) -> int:
        return sum(m.numerator for m in self.months)

    @property
    def year_denominator(self) -> int:
        return sum(m.denominator for m in self.months)


@dataclass
class MemberCard:
    institution_id: str
    code: str
    name: str
    level: str
    targets: list[TargetCard]


@dataclass
class Scorecard:
    consortium_id: str
    consortium_code: str
    year: int
    time_zone: str
    is_example: bool
    targets: list[Target]
    members: list[MemberCard]


Fractions = dict[tuple[str, str], tuple[int, int]]  # (member, month) -> (numerator, denominator)


async def _accepted_in_time(
    session: AsyncSession, settings: Settings, scope: repo.Scope
) -> Fractions:
    out: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for member, accepted_at, routed_at, urgency, pathway in await repo.acceptance_times(
        session, scope
    ):
        if routed_at is None:
            continue
        limit = service_levels.respond_within(urgency, settings, green_channel=pathway is not None)
        counts = out[(member, local_month(accepted_at, scope.time_zone))]
        counts[1] += 1
        if accepted_at - routed_at <= limit:
            counts[0] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


async def scorecard(
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    *,
    consortium_ref: str | None,
    year: int,
) -> Scorecard:
    consortium_id = await figures_consortium(
        session, principal, consortium_ref, "Appraisal scorecards"
    )
    if consortium_id is None:
        raise InvalidInput(
            "Name the consortium.",
            [{"loc": ["query", "consortium"], "msg": "required for this role"}],
        )
    consortium = await session.get(Consortium, consortium_id)
    if consortium is None:
        raise NotFound("No consortium with this id or code.")
    if principal.role is Role.COUNCIL:
        assert principal.consortium_id == consortium.id
    start, end = date(year, 1, 1), date(year + 1, 1, 1)
    monthly = await reports.monthly(
        session,
        principal,
        consortium_id=consortium.id,
        start=start,
        end=end,
        group_by="institution",
    )
    figures: dict[str, Fractions] = {f: {} for f in FIGURES}
    for row in monthly:
        if row.key is None:
            continue
        c = row.counts
        figures["up_treated_in_county_share"][(row.key, row.month)] = (
            c["up_in_county"],
            c["up_placed"],
        )
        figures["follow_ups_on_time_share"][(row.key, row.month)] = (
            c["follow_ups_on_time"],
            c["follow_ups_due"],
        )
    days = await zones.period(session, consortium.id, start, end)
    scope = repo.Scope(
        consortium_id=consortium.id,
        start=days.start_at,
        end=days.end_at,
        group_by="institution",
        dialect=session.get_bind().dialect.name,
        time_zone=days.time_zone,
        first_day=start,
        end_day=end,
    )
    figures["accepted_in_time_share"] = await _accepted_in_time(session, settings, scope)
    green: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for g in await green_channel_figures.report(session, principal, consortium.id, start, end):
        if g.institution_id is None:
            continue
        for interval in g.intervals:
            counts = green[(g.institution_id, g.month)]
            counts[0] += interval.met
            counts[1] += interval.decided
    figures["green_channel_met_share"] = {k: (v[0], v[1]) for k, v in green.items()}

    targets = targets_of(settings)
    months = [f"{year:04d}-{m:02d}" for m in range(1, 13)]
    in_force = {m: targets.in_force(date(year, int(m[5:]), 1)) for m in months}
    listed: dict[str, Target] = {}
    for v in in_force.values():
        for t in v.for_consortium(consortium.code) if v else ():
            listed.setdefault(t.code, t)
    members_rows = (
        await session.execute(
            select(Institution.id, Institution.code, Institution.name, Institution.level)
            .where(Institution.consortium_id == consortium.id)
            .order_by(Institution.code)
        )
    ).all()
    members = []
    for member in members_rows:
        cards = {code: TargetCard(t) for code, t in listed.items()}
        for m in months:
            v = in_force[m]
            for t in v.for_consortium(consortium.code) if v else ():
                num, den = figures[t.figure].get((member.id, m), (0, 0))
                cards[t.code].months.append(MonthResult(m, v.version if v else 0, t.min, num, den))
        members.append(
            MemberCard(member.id, member.code, member.name, str(member.level), list(cards.values()))
        )
    return Scorecard(
        consortium_id=consortium.id,
        consortium_code=consortium.code,
        year=year,
        time_zone=days.time_zone,
        is_example=targets.is_example,
        targets=list(listed.values()),
        members=members,
    )
