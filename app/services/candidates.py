"""Routing a referral: who sends it, what it needs, the candidates the consortium offers, and
the decision (``app.domain.routing``) over them. Holding the chosen place is ``placement``.

For an up-referral the database pre-filters the candidates (``routing_repo.prefilter``): the
members that cannot be eligible (inactive, not of a higher level, without the specialty or the
green-channel centre, without a usable census, full) are counted per reason in SQL and never
loaded; of the eligible ones only the best few are loaded (more than a decision lists, with a
margin for places lost to other requests), and of the near misses the nearest few. The source,
the patient's signed and chosen institutions, those that declined the referral, the lead hospital
and the partners are always loaded, so that each gets its own reason. ``route`` over what is
loaded gives the same target, the same listed alternatives in the same order and the same counts
as over every member (``tests/integration/test_routing_prefilter.py``). Down-referrals and
``exclusions=all`` load every member.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db.base import utcnow
from app.db.repositories import capacity as capacity_repo
from app.db.repositories import registry as registry_repo
from app.db.repositories import routing as routing_repo
from app.db.repositories.memberships import Affiliation
from app.domain import routing
from app.domain.capacity import slot_free
from app.domain.enums import CareType, Centre, InstitutionLevel
from app.domain.errors import InvalidInput
from app.domain.lifecycle import Direction
from app.domain.localtime import DEFAULT_TIME_ZONE, today
from app.services import routing_policy

#: the eligible members the pre-filter loads beyond those always loaded: the target and the
#: listed alternatives, plus one for each place a create may lose to another request and route
#: around (``placement.MAX_HOLD_ATTEMPTS``), plus a few
PREFILTER_TOP = routing.ALTERNATIVES_LISTED + 1 + 8 + 3
#: the near misses it loads (the nearest ones): as many as a decision lists
PREFILTER_NEAR_MISSES = routing.EXCLUDED_LISTED


@dataclass(frozen=True, slots=True)
class CensusWindows:
    """When a census ranks as stale and when it excludes (``REFERRAL_CENSUS_*``)."""

    stale_after: timedelta
    exclude_after: timedelta

    @classmethod
    def of(cls, settings: Settings) -> CensusWindows:
        return cls(settings.census_stale_after, settings.census_exclude_after)


def _default_windows() -> CensusWindows:
    fields = Settings.model_fields
    return CensusWindows(
        timedelta(minutes=fields["census_stale_after_minutes"].default),
        timedelta(minutes=fields["census_exclude_after_minutes"].default),
    )


#: the windows the pre-filter classifies with when its caller gives none (a create): the
#: service's settings, set by ``app.main.create_app``; the decision checks they are its own
_census: dict[str, CensusWindows] = {"windows": _default_windows()}


def configure(settings: Settings) -> None:
    _census["windows"] = CensusWindows.of(settings)


class PatientChoiceRefused(InvalidInput):
    kind = "patient-choice-not-allowed"


@dataclass(frozen=True, slots=True)
class RoutingInput:
    specialty_code: str
    care_type: CareType
    wanted_day: date | None
    signed_institution_ids: tuple[str, ...]
    patient_choice_id: str | None
    centre: Centre | None = None  # green channel: the centre the pathway needs
    #: who named ``patient_choice_id``: the patient, or the target forwarding the referral
    choice_by: str = "patient"


@dataclass(frozen=True, slots=True)
class Source:
    id: str
    consortium_id: str
    level: Any
    lat: float | None
    lon: float | None
    time_zone: str = DEFAULT_TIME_ZONE  # the consortium's: its "today"
    #: the consortium the referral runs in (``consortium_id``) has members from other ones
    joined_members: bool = False
    #: the consortia the source belongs to, its own first (a create chooses among them)
    affiliations: tuple[Affiliation, ...] = ()


@dataclass(frozen=True, slots=True)
class Candidates:
    members: list[routing.Candidate]
    partners: list[routing.Candidate]
    lead_ids: frozenset[str]  # the consortium's lead unit
    capacity_code: dict[str, str]  # institution -> the capacity row's specialty code
    #: the consortium's policy for this care type: do parent-only specialty matches count?
    parent_only_eligible: bool = True
    #: the members the database's pre-filter did not load, counted
    left_out: routing.LeftOut = field(default_factory=routing.LeftOut)
    #: the census windows it classified with (None: not pre-filtered)
    census: CensusWindows | None = None
    #: the institutions it loaded as having declined the referral
    declined: frozenset[str] = frozenset()
    #: slots: the signed institutions whose signed reserve has a place left for this patient
    signed_pool: frozenset[str] = frozenset()


def specialty_ancestors(code: str) -> list[str]:
    """The code and its parent subjects, the most general first (03, 03.04)."""
    parts = code.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


async def candidates(
    session: AsyncSession,
    source: Source,
    data: RoutingInput,
    *,
    direction: Direction = Direction.UP,
    complete: bool = False,
    declined: Collection[str] = (),
    census: CensusWindows | None = None,
) -> Candidates:
    """The candidates for routing ``data`` from ``source``: for an up-referral pre-filtered by
    the database (module documentation), for a down-referral or with ``complete`` every member
    and partner. ``declined``: the institutions the decision will exclude as having declined
    (always loaded); ``census``: the windows the decision will use (default: the service's)."""
    codes = specialty_ancestors(data.specialty_code)
    parent_only = True
    if "." in data.specialty_code and data.centre is None:  # a sub-specialty: policy applies
        consortium = await registry_repo.get_consortium(session, source.consortium_id)
        policy = routing_policy.current()
        parent_only = policy.parent_only_eligible(
            consortium.code if consortium else None, data.care_type
        )
    day = None
    if data.care_type is not CareType.INPATIENT:
        day = data.wanted_day or today(utcnow(), source.time_zone)
    answer: routing_repo.PrefilterAnswer | None = None
    windows: CensusWindows | None = None
    higher = [lvl for lvl in InstitutionLevel if lvl.rank > InstitutionLevel(source.level).rank]
    named = {source.id, *data.signed_institution_ids, *declined}
    if data.patient_choice_id is not None:
        named.add(data.patient_choice_id)
    if direction is Direction.UP and not complete:
        windows = census or _census["windows"]
        now = utcnow()
        answer = await routing_repo.prefilter(
            session,
            routing_repo.PrefilterQuery(
                consortium_id=source.consortium_id,
                higher_levels=higher,
                named_ids=named,
                specialty_codes=codes,
                parent_only_eligible=parent_only,
                centre=data.centre,
                day=day,
                stale_before=now - windows.stale_after,
                exclude_before=now - windows.exclude_after,
                source_lat=source.lat,
                source_lon=source.lon,
                top=PREFILTER_TOP,
                near_misses=PREFILTER_NEAR_MISSES,
                joined=source.joined_members,
                now=now,
            ),
        )
    only = None if answer is None else named | answer.selected.keys()
    facts = await routing_repo.institutions_for_routing(
        session, source.consortium_id, only, joined=source.joined_members
    )
    ids = [f.id for f in facts]
    offered = await routing_repo.specialties_offered(session, ids, codes)
    centres = await routing_repo.centres_held(session, ids) if data.centre else {}
    signed = frozenset(data.signed_institution_ids)
    reading = utcnow()
    rows: Sequence[tuple[str, str, int, int, int, datetime | None, capacity_repo.Reserve]]
    if day is None:
        no_reserve = capacity_repo.Reserve()
        rows = [(*r, no_reserve) for r in await capacity_repo.candidate_beds(session, ids, codes)]
    else:
        rows = await capacity_repo.candidate_slots(session, ids, codes, day)
    # the most specific capacity row per institution (03.04 before 03): (code, total, free
    # places for this patient, as_of, unused signed reserve); an unsigned patient's free slots
    # leave out the unused signed reserve
    best: dict[str, tuple[str, int, int, datetime | None, int]] = {}
    for iid, code, total, occupied, held, as_of, reserve in rows:
        current = best.get(iid)
        if current is None or len(code) > len(current[0]):
            unused = reserve.unused(reading)
            places = slot_free(total, occupied, held, unused, signed=iid in signed)
            best[iid] = (code, total, places, as_of, unused)
    reserve_left = frozenset(iid for iid, b in best.items() if b[4] and iid in signed)
    members: list[routing.Candidate] = []
    partners: list[routing.Candidate] = []
    lead_ids: set[str] = set()
    for f in facts:
        cap = best.get(f.id)
        cand = routing.Candidate(
            institution_id=f.id,
            code=f.code,
            name=f.name,
            level=f.level,
            active=f.active,
            in_consortium=f.is_member,
            specialties=frozenset(offered.get(f.id, ())),
            centres=frozenset(centres.get(f.id, ())),
            lat=f.lat,
            lon=f.lon,
            capacity_free=cap[2] if cap else None,
            capacity_total=cap[1] if cap else None,
            census_as_of=cap[3] if cap else None,
        )
        if f.is_member:
            members.append(cand)
            if f.is_lead:
                lead_ids.add(f.id)
        elif f.is_partner:
            partners.append(cand)
    capacity_code = {k: v[0] for k, v in best.items()}
    left_out = routing.LeftOut()
    if answer is not None:
        left_out = _left_out(answer, members, higher)
    return Candidates(
        members,
        partners,
        frozenset(lead_ids),
        capacity_code,
        parent_only,
        left_out,
        windows,
        frozenset(declined),
        reserve_left,
    )


_INACTIVE = routing.ExclusionReason.INACTIVE
_LEVEL_NOT_HIGHER = routing.ExclusionReason.LEVEL_NOT_HIGHER


def _left_out(
    answer: routing_repo.PrefilterAnswer,
    members: Sequence[routing.Candidate],
    higher: Sequence[InstitutionLevel],
) -> routing.LeftOut:
    """What the database counted less what was loaded: the members left out, per reason."""
    counts: dict[str | None, int] = dict(answer.classified)
    for reason in answer.selected.values():
        counts[reason] -= 1
    for (level, active), n in answer.by_level.items():
        if not (active and level in higher):  # active ones above the source's: classified
            low = _LEVEL_NOT_HIGHER if active else _INACTIVE
            counts[low.value] = counts.get(low.value, 0) + n
    for c in members:  # the named members, the lead, the partners: counted above, loaded
        if not (c.active and c.level in higher):
            low = _LEVEL_NOT_HIGHER if c.active else _INACTIVE
            counts[low.value] -= 1
    eligible = counts.pop(None, 0)
    excluded = {routing.ExclusionReason(r): n for r, n in counts.items() if r is not None and n}
    return routing.LeftOut(excluded, eligible)


def decide(
    settings: Settings,
    source: Source,
    data: RoutingInput,
    cands: Candidates,
    now: datetime,
    excluded: frozenset[str] = frozenset(),
) -> routing.RoutingDecision:
    if cands.census is not None and cands.census != CensusWindows.of(settings):
        raise RuntimeError("the candidates were pre-filtered with other census windows")
    if cands.census is not None and not excluded <= cands.declined:
        raise RuntimeError("the candidates were pre-filtered without the declined institutions")
    request = routing.RoutingRequest(
        source_institution_id=source.id,
        source_level=source.level,
        source_lat=source.lat,
        source_lon=source.lon,
        consortium_id=source.consortium_id,
        lead_institution_ids=cands.lead_ids,
        specialty_code=data.specialty_code,
        care_type=data.care_type,
        signed_institution_ids=data.signed_institution_ids,
        patient_choice_id=data.patient_choice_id,
        choice_by=data.choice_by,
        excluded_institution_ids=excluded,
        green_channel=data.centre,
        parent_only_eligible=cands.parent_only_eligible,
        specialty_names=routing_policy.specialty_names(),
        now=now,
        stale_after=settings.census_stale_after,
        stale_exclude_after=settings.census_exclude_after,
    )
    try:
        return routing.route(request, cands.members, cands.partners, cands.left_out)
    except routing.PatientChoiceNotAllowed as exc:
        field = {"target": "target_institution_id", "council": "institution_id"}.get(
            data.choice_by, "patient_choice_institution_id"
        )
        raise PatientChoiceRefused(
            "The patient's chosen hospital cannot take this referral."
            if data.choice_by == "patient"
            else "The named institution cannot take this referral.",
            [{"loc": ["body", field], "msg": str(exc.reason)}],
            reason=str(exc.reason),
        ) from exc


def decider(
    settings: Settings,
    source: Source,
    data: RoutingInput,
    now: datetime,
    excluded: frozenset[str] = frozenset(),
) -> Callable[[Candidates], routing.RoutingDecision]:
    """The decision over (possibly narrowed) candidates, as placement asks for it."""

    def over(cands: Candidates) -> routing.RoutingDecision:
        return decide(settings, source, data, cands, now, excluded)

    return over


def without_capacity(cands: Candidates, institution_id: str) -> Candidates:
    """The candidates with ``institution_id`` seen as full (it lost a race for its place)."""

    def strip(items: list[routing.Candidate]) -> list[routing.Candidate]:
        return [
            replace(c, capacity_free=0) if c.institution_id == institution_id else c for c in items
        ]

    return replace(cands, members=strip(cands.members), partners=strip(cands.partners))
