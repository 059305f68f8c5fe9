"""SQL that gathers what routing needs: candidate institutions, their specialties, capacity,
and the database's pre-filter (:func:`prefilter`) that keeps a large consortium's routing to the
few members that matter."""

from __future__ import annotations

import functools
import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Float,
    Integer,
    String,
    and_,
    bindparam,
    case,
    cast,
    false,
    func,
    literal_column,
    not_,
    null,
    or_,
    select,
    true,
    union,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.db.base import utcnow
from app.db.models import ConsortiumPartner, Institution, InstitutionCentre, InstitutionSpecialty
from app.db.repositories.capacity import most_specific_row
from app.db.repositories.memberships import lead_of, member_of
from app.domain.enums import Centre, InstitutionLevel
from app.domain.geo import EARTH_RADIUS_KM
from app.domain.routing import NEAR_MISSES, ExclusionReason


@dataclass(frozen=True, slots=True)
class InstitutionFacts:
    id: str
    code: str
    name: str
    level: InstitutionLevel
    active: bool
    is_member: bool  # of the consortium routed in (its own, or joined)
    is_lead: bool  # in that consortium's lead unit
    lat: float | None
    lon: float | None
    is_partner: bool


async def institutions_for_routing(
    session: AsyncSession,
    consortium_id: str,
    only: Collection[str] | None = None,
    *,
    joined: bool = False,
) -> Sequence[InstitutionFacts]:
    """The consortium's members and its upstream partners; with ``only``, the institutions
    named there, the lead unit and the partners (one indexed lookup each, no scan of the
    consortium). ``joined``: the consortium has members that joined it from another one
    (``app.db.repositories.memberships``); ``is_member`` and ``is_lead`` are this consortium's."""
    partners = select(ConsortiumPartner.institution_id).where(
        ConsortiumPartner.consortium_id == consortium_id
    )
    member = member_of(consortium_id, joined=joined)
    lead = lead_of(consortium_id, joined=joined)
    columns = (
        Institution.id,
        Institution.code,
        Institution.name,
        Institution.level,
        Institution.active,
        member,
        lead,
        Institution.latitude,
        Institution.longitude,
        Institution.id.in_(partners),
    )
    stmt: Any
    if only is None:
        stmt = select(*columns).where(or_(member, Institution.id.in_(partners)))
    else:
        stmt = union(
            select(*columns).where(Institution.id.in_(list(only))),
            select(*columns).where(Institution.id.in_(partners)),
            select(*columns).where(lead),
        )
    return [
        InstitutionFacts(
            id=r[0],
            code=r[1],
            name=r[2],
            level=r[3],
            active=r[4],
            is_member=bool(r[5]),
            is_lead=bool(r[6]),
            lat=r[7],
            lon=r[8],
            is_partner=bool(r[9]),
        )
        for r in (await session.execute(stmt)).all()
    ]


async def specialties_offered(
    session: AsyncSession, institution_ids: Iterable[str], codes: Iterable[str]
) -> dict[str, set[str]]:
    stmt = select(InstitutionSpecialty.institution_id, InstitutionSpecialty.specialty_code).where(
        InstitutionSpecialty.institution_id.in_(list(institution_ids)),
        InstitutionSpecialty.specialty_code.in_(list(codes)),
    )
    out: dict[str, set[str]] = {}
    for iid, code in (await session.execute(stmt)).all():
        out.setdefault(iid, set()).add(code)
    return out


async def centres_held(
    session: AsyncSession, institution_ids: Iterable[str]
) -> dict[str, set[Centre]]:
    stmt = select(InstitutionCentre.institution_id, InstitutionCentre.centre).where(
        InstitutionCentre.institution_id.in_(list(institution_ids))
    )
    out: dict[str, set[Centre]] = {}
    for iid, centre in (await session.execute(stmt)).all():
        out.setdefault(iid, set()).add(centre)
    return out


# -- the pre-filter ------------------------------------------------------------------------------

#: distance (km) standing for "unknown" in the SQL order: after every real one, as routing
#: ranks an unknown distance last
_FAR: Final = 1e9
#: how much further than the cut-off candidate a candidate may be and still be loaded: covers
#: routing's rounding to 0.1 km (ties on the rounded distance are decided by later rules) and
#: the difference between the database's floating-point functions and Python's
DISTANCE_MARGIN_KM: Final = 0.2
_RADIANS: Final = math.pi / 180.0


@dataclass(frozen=True, slots=True)
class PrefilterQuery:
    """An up-referral's routing question, for the database to answer in one statement."""

    consortium_id: str
    higher_levels: Sequence[InstitutionLevel]  # the levels above the source's
    #: never classified here: loaded in full by the caller (the source, the signed and chosen
    #: institutions, those that declined this referral); the lead and the partners likewise
    named_ids: Collection[str]
    specialty_codes: Sequence[str]  # the requested code and its ancestors, general first
    parent_only_eligible: bool
    centre: Centre | None  # green channel: the centre replaces the specialty and capacity checks
    day: date | None  # None: beds (inpatient); else that day's outpatient or examination slots
    stale_before: datetime  # a census older than this ranks after fresh ones
    exclude_before: datetime  # older than this: excluded (stale_census)
    source_lat: float | None
    source_lon: float | None
    top: int  # eligible members to load: at least the best ``top``
    near_misses: int  # near misses to load for the listing: at least the nearest so many
    joined: bool = False  # the consortium has members that joined it from another one
    #: slots: the instant a signed reserve is judged kept or released at (None: now)
    now: datetime | None = None


@dataclass(frozen=True, slots=True)
class PrefilterAnswer:
    #: the members to load in full, with the reason the database found (None: eligible)
    selected: dict[str, str | None]
    #: every member the database classified, per reason (None: eligible), the selected included
    classified: dict[str | None, int]
    #: every member per (level, active flag): the named members, the lead and the partners
    #: among them included (the caller knows those)
    by_level: dict[tuple[InstitutionLevel, bool], int]


@dataclass(frozen=True, slots=True)
class _Shape:
    """What changes the pre-filter's SQL (the rest are bound parameters): one statement is built
    and compiled per shape and process."""

    depth: int  # specialty codes, the requested one and its ancestors
    green: bool
    parent_rule: bool  # parent-only matches excluded (a sub-specialty, policy says so)
    slots: bool
    located: bool  # the source has a location
    joined: bool  # members that joined from another consortium: the membership rows count


def _distance_km(located: bool) -> ColumnElement[Any]:
    """Great-circle distance from the source as SQL, the formula of ``app.domain.geo`` (the
    source's terms bound: ``phi1``, ``lambda1``, ``cos_phi1``); ``_FAR`` where a location is
    unknown."""
    if not located:
        return literal_column(repr(_FAR))
    phi2 = Institution.latitude * _RADIANS
    half_phi = func.sin((phi2 - bindparam("phi1", type_=Float)) * 0.5)
    half_lambda = func.sin(
        (Institution.longitude * _RADIANS - bindparam("lambda1", type_=Float)) * 0.5
    )
    a = half_phi * half_phi + bindparam("cos_phi1", type_=Float) * func.cos(phi2) * (
        half_lambda * half_lambda
    )
    km = 2 * EARTH_RADIUS_KM * func.asin(func.sqrt(case((a > 1.0, 1.0), else_=a)))
    return func.coalesce(km, _FAR)


def _reason(value: ExclusionReason) -> ColumnElement[Any]:
    return literal_column(f"'{value.value}'", String)


@functools.lru_cache(maxsize=64)
def _prefilter_statement(shape: _Shape) -> CompoundSelect[Any]:
    m = Institution
    consortium = bindparam("consortium_id", type_=String)
    higher = m.level.in_(bindparam("higher_levels", expanding=True))
    partners = select(ConsortiumPartner.institution_id).where(
        ConsortiumPartner.consortium_id == consortium
    )
    base = select(m.id).select_from(m)
    whens: list[tuple[ColumnElement[bool], ColumnElement[Any]]] = []
    dkey: ColumnElement[Any]
    if shape.green:
        centre: Any = aliased(InstitutionCentre, name="centre_held")
        base = base.outerjoin(
            centre, and_(centre.institution_id == m.id, centre.centre == bindparam("centre"))
        )
        whens.append((centre.institution_id.is_(None), _reason(ExclusionReason.CENTRE_NOT_HELD)))
        dkey = literal_column("0")  # members: nearest first
    else:
        codes = [bindparam(f"code_{i}", type_=String) for i in range(shape.depth)]
        offered: list[Any] = []
        for i, code in enumerate(codes):
            s: Any = aliased(InstitutionSpecialty, name=f"offered_{i}")
            base = base.outerjoin(s, and_(s.institution_id == m.id, s.specialty_code == code))
            offered.append(s)
        # the segments of the most specific code offered (None: none of them)
        depth = case(
            *((s.institution_id.is_not(None), i + 1) for i, s in reversed(list(enumerate(offered))))
        )
        # slots: the members classified here are never the patient's signed ones (those are
        # named), so their unused signed reserve is not for this referral: left out of "free"
        # as the hold leaves it out (``capacity_repo.try_hold_slot``)
        best = most_specific_row(
            m.id,
            codes,
            bindparam("day") if shape.slots else None,
            bindparam("now") if shape.slots else None,
        )
        for row, on in best.joins:
            base = base.outerjoin(row, on)
        whens.append((depth.is_(None), _reason(ExclusionReason.SPECIALTY_NOT_OFFERED)))
        if shape.parent_rule:
            whens.append((depth < shape.depth, _reason(ExclusionReason.ONLY_PARENT_SPECIALTY)))
        as_of = best.as_of
        whens.append(
            (
                or_(not_(best.present), as_of.is_(None), as_of < bindparam("exclude_before")),
                _reason(ExclusionReason.STALE_CENSUS),
            )
        )
        whens.append(
            (
                best.total - best.occupied - best.held - best.unused <= 0,
                _reason(ExclusionReason.NO_FREE_CAPACITY),
            )
        )
        # routing's discrete rank components among these members, packed: specialty match,
        # fresh census, level (signed, lead and partner do not apply: those are named)
        stale = case((as_of < bindparam("stale_before"), 4), else_=0)
        level_rank = case({lvl.value: lvl.rank for lvl in InstitutionLevel}, value=m.level)
        dkey = (shape.depth - depth) * 8 + stale + level_rank
    reason = case(*whens, else_=cast(null(), String))
    classified = (
        base.add_columns(
            reason.label("reason"), dkey.label("dkey"), _distance_km(shape.located).label("km")
        )
        .where(
            member_of(consortium, joined=shape.joined),
            m.active == true(),
            higher,
            not_(lead_of(consortium)) if shape.joined else m.is_lead == false(),
            m.id.not_in(partners),
            m.id.not_in(bindparam("named_ids", expanding=True)),
        )
        .cte("classified")
    )
    c = classified.c
    near = c.reason.in_([r.value for r in sorted(NEAR_MISSES)])
    cut = (
        select(c.dkey, c.km)
        .where(c.reason.is_(None))
        .order_by(c.dkey, c.km)
        .limit(1)
        .offset(bindparam("top_offset", type_=Integer))
        .subquery("cut")
    )
    near_cut = (
        select(c.km)
        .where(near)
        .order_by(c.km)
        .limit(1)
        .offset(bindparam("near_offset", type_=Integer))
        .subquery("near_cut")
    )
    chosen = or_(
        and_(
            c.reason.is_(None),
            or_(
                cut.c.dkey.is_(None),
                c.dkey < cut.c.dkey,
                and_(c.dkey == cut.c.dkey, c.km <= cut.c.km + DISTANCE_MARGIN_KM),
            ),
        ),
        and_(near, or_(near_cut.c.km.is_(None), c.km <= near_cut.c.km + DISTANCE_MARGIN_KM)),
    )
    selected = (
        select(literal_column("0").label("kind"), c.id.label("item"), c.reason, literal_column("1"))
        .select_from(classified.outerjoin(cut, true()).outerjoin(near_cut, true()))
        .where(chosen)
    )
    counted = select(literal_column("1"), cast(null(), String), c.reason, func.count()).group_by(
        c.reason
    )
    # every member by level and active flag, in the order of the index (a streaming count)
    below = (
        select(case((m.active == true(), 2), else_=3), m.level, cast(null(), String), func.count())
        .where(member_of(consortium, joined=shape.joined))
        .group_by(m.level, m.active)
    )
    return union_all(selected, counted, below)


async def prefilter(session: AsyncSession, query: PrefilterQuery) -> PrefilterAnswer:
    """Classify the consortium's members the way ``app.domain.routing.route`` would, in SQL,
    and say which to load: the best ``top`` eligible members and the ``near_misses`` nearest
    near misses (each with a margin on the distance, so that routing's own exact order over
    what is loaded starts with the same members as over all of them). The named members, the
    lead and the partners are left to the caller. One statement; the members below the
    source's level and the inactive ones are only counted (all members, per level and active
    flag)."""
    located = query.source_lat is not None and query.source_lon is not None
    green = query.centre is not None
    depth = len(query.specialty_codes)
    shape = _Shape(
        depth=depth,
        green=green,
        parent_rule=not green and depth > 1 and not query.parent_only_eligible,
        slots=query.day is not None,
        located=located,
        joined=query.joined,
    )
    params: dict[str, Any] = {
        "consortium_id": query.consortium_id,
        "higher_levels": list(query.higher_levels),
        "named_ids": list(query.named_ids),
        "top_offset": query.top - 1,
        "near_offset": query.near_misses - 1,
    }
    if green:
        params["centre"] = query.centre
    else:
        params.update({f"code_{i}": code for i, code in enumerate(query.specialty_codes)})
        params.update(stale_before=query.stale_before, exclude_before=query.exclude_before)
        if query.day is not None:
            params["day"] = query.day
            params["now"] = query.now or utcnow()
    if query.source_lat is not None and query.source_lon is not None:
        phi1 = query.source_lat * _RADIANS
        params.update(phi1=phi1, lambda1=query.source_lon * _RADIANS, cos_phi1=math.cos(phi1))
    answer = PrefilterAnswer({}, {}, {})
    rows = (await session.execute(_prefilter_statement(shape), params)).all()
    for kind, item, why, n in rows:
        if kind == 0:
            answer.selected[item] = why
        elif kind == 1:
            answer.classified[why] = int(n)
        else:
            answer.by_level[(InstitutionLevel(item), kind == 2)] = int(n)
    return answer
