"""Routing a referral: who sends it, what it needs, the candidates the consortium offers, and
the decision (``app.domain.routing``) over them. Holding the chosen place is ``placement``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.api.schemas.referrals import RoutingFields, RoutingPreviewIn
from app.config import Settings
from app.db.base import utcnow
from app.db.repositories import capacity as capacity_repo
from app.db.repositories import registry as registry_repo
from app.db.repositories import routing as routing_repo
from app.domain import routing
from app.domain.capacity import free
from app.domain.enums import CareType, Centre, Role
from app.domain.errors import Forbidden, InvalidInput
from app.domain.localtime import DEFAULT_TIME_ZONE, today
from app.services import pathways, routing_policy
from app.services.auth import Principal

# specialty codes found in the catalogue: codes are added with a catalogue, never removed, so
# a code once found stays valid (an unknown code is asked again every time)
_KNOWN_SPECIALTIES: set[str] = set()


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


@dataclass(frozen=True, slots=True)
class Source:
    id: str
    consortium_id: str
    level: Any
    lat: float | None
    lon: float | None
    time_zone: str = DEFAULT_TIME_ZONE  # the consortium's: its "today"


@dataclass(frozen=True, slots=True)
class Candidates:
    members: list[routing.Candidate]
    partners: list[routing.Candidate]
    lead_id: str | None
    capacity_code: dict[str, str]  # institution -> the capacity row's specialty code
    #: the consortium's policy for this care type: do parent-only specialty matches count?
    parent_only_eligible: bool = True


def _ancestors(code: str) -> list[str]:
    parts = code.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


async def source_for(session: AsyncSession, principal: Principal, source_id: str | None) -> Source:
    if principal.role in (Role.CLINIC, Role.HOSPITAL):
        if source_id is not None and source_id != principal.institution_id:
            raise Forbidden("A referral is always sent from the caller's own institution.")
        source_id = principal.institution_id
    elif principal.role in (Role.COUNCIL, Role.ADMIN):
        if source_id is None:
            raise InvalidInput(
                "Name the source institution for a preview made by the council or an admin.",
                [{"loc": ["body", "source_institution_id"], "msg": "required for this role"}],
            )
    else:
        raise Forbidden("This key's role may not send referrals.")
    source = await load_source(session, source_id or "")
    if principal.role is Role.COUNCIL and source.consortium_id != principal.consortium_id:
        raise Forbidden("A council key may preview only for its own consortium.")
    return source


async def load_source(session: AsyncSession, source_id: str) -> Source:
    inst = await registry_repo.get_institution_row(session, source_id)
    if inst is None or inst.consortium_id is None:
        raise InvalidInput(
            "The source institution is not a member of a consortium.",
            [{"loc": ["body", "source_institution_id"], "msg": "not a consortium member"}],
        )
    time_zone = await registry_repo.consortium_time_zone(session, inst.consortium_id)
    return Source(inst.id, inst.consortium_id, inst.level, inst.latitude, inst.longitude, time_zone)


def check_wanted_day(data: RoutingInput, source: Source) -> None:
    """`wanted_day` is a day of the source's consortium: today there or later."""
    if data.wanted_day is not None and data.wanted_day < today(utcnow(), source.time_zone):
        raise InvalidInput(
            "The referral has invalid fields.",
            [{"loc": ["body", "wanted_day"], "msg": "must not be in the past"}],
        )


async def candidates(session: AsyncSession, source: Source, data: RoutingInput) -> Candidates:
    facts = await routing_repo.institutions_for_routing(session, source.consortium_id)
    ids = [f.id for f in facts]
    codes = _ancestors(data.specialty_code)
    offered = await routing_repo.specialties_offered(session, ids, codes)
    centres = await routing_repo.centres_held(session, ids) if data.centre else {}
    if data.care_type is CareType.INPATIENT:
        rows = await capacity_repo.candidate_beds(session, ids, codes)
    else:
        day = data.wanted_day or today(utcnow(), source.time_zone)
        rows = await capacity_repo.candidate_slots(session, ids, codes, day)
    # the most specific capacity row per institution (03.04 before 03)
    best: dict[str, tuple[str, int, int, int, datetime | None]] = {}
    for iid, code, total, occupied, held, as_of in rows:
        current = best.get(iid)
        if current is None or len(code) > len(current[0]):
            best[iid] = (code, total, occupied, held, as_of)
    members: list[routing.Candidate] = []
    partners: list[routing.Candidate] = []
    lead_id = None
    for f in facts:
        cap = best.get(f.id)
        cand = routing.Candidate(
            institution_id=f.id,
            code=f.code,
            name=f.name,
            level=f.level,
            active=f.active,
            in_consortium=f.consortium_id == source.consortium_id,
            specialties=frozenset(offered.get(f.id, ())),
            centres=frozenset(centres.get(f.id, ())),
            lat=f.lat,
            lon=f.lon,
            capacity_free=free(cap[1], cap[2], cap[3]) if cap else None,
            capacity_total=cap[1] if cap else None,
            census_as_of=cap[4] if cap else None,
        )
        if f.consortium_id == source.consortium_id:
            members.append(cand)
            if f.is_lead:
                lead_id = f.id
        elif f.is_partner:
            partners.append(cand)
    parent_only = True
    if "." in data.specialty_code and data.centre is None:  # a sub-specialty: policy applies
        consortium = await registry_repo.get_consortium(session, source.consortium_id)
        policy = routing_policy.current()
        parent_only = policy.parent_only_eligible(
            consortium.code if consortium else None, data.care_type
        )
    capacity_code = {k: v[0] for k, v in best.items()}
    return Candidates(members, partners, lead_id, capacity_code, parent_only)


def decide(
    settings: Settings,
    source: Source,
    data: RoutingInput,
    cands: Candidates,
    now: datetime,
    excluded: frozenset[str] = frozenset(),
) -> routing.RoutingDecision:
    request = routing.RoutingRequest(
        source_institution_id=source.id,
        source_level=source.level,
        source_lat=source.lat,
        source_lon=source.lon,
        consortium_id=source.consortium_id,
        lead_institution_id=cands.lead_id,
        specialty_code=data.specialty_code,
        care_type=data.care_type,
        signed_institution_ids=data.signed_institution_ids,
        patient_choice_id=data.patient_choice_id,
        excluded_institution_ids=excluded,
        green_channel=data.centre,
        parent_only_eligible=cands.parent_only_eligible,
        specialty_names=routing_policy.specialty_names(),
        now=now,
        stale_after=settings.census_stale_after,
        stale_exclude_after=settings.census_exclude_after,
    )
    try:
        return routing.route(request, cands.members, cands.partners)
    except routing.PatientChoiceNotAllowed as exc:
        raise PatientChoiceRefused(
            "The patient's chosen hospital cannot take this referral.",
            [{"loc": ["body", "patient_choice_institution_id"], "msg": str(exc.reason)}],
            reason=str(exc.reason),
        ) from exc


async def check_routing_input(session: AsyncSession, data: RoutingInput) -> None:
    errors: list[dict[str, Any]] = []
    if not data.specialty_code:
        raise InvalidInput(
            "Name the specialty (or a green-channel pathway).",
            [{"loc": ["body", "specialty_code"], "msg": "required without a pathway"}],
        )
    if data.specialty_code not in _KNOWN_SPECIALTIES:
        known = await registry_repo.existing_specialty_codes(session, [data.specialty_code])
        _KNOWN_SPECIALTIES.update(known)
    if data.specialty_code not in _KNOWN_SPECIALTIES:
        errors.append({"loc": ["body", "specialty_code"], "msg": "unknown specialty code"})
    if data.care_type is not CareType.INPATIENT and data.wanted_day is None:
        errors.append(
            {"loc": ["body", "wanted_day"], "msg": "required for outpatient and examination"}
        )
    ids = [
        *data.signed_institution_ids,
        *([data.patient_choice_id] if data.patient_choice_id else []),
    ]
    found = {i.id for i in await registry_repo.get_institutions(session, ids)}
    for i, iid in enumerate(data.signed_institution_ids):
        if iid not in found:
            errors.append(
                {
                    "loc": ["body", "patient", "signed_institution_ids", i],
                    "msg": "unknown institution",
                }
            )
    if data.patient_choice_id and data.patient_choice_id not in found:
        errors.append(
            {"loc": ["body", "patient_choice_institution_id"], "msg": "unknown institution"}
        )
    if errors:
        raise InvalidInput("The referral has invalid fields.", errors)


async def routing_input(
    session: AsyncSession, fields: RoutingFields, signed: Sequence[str]
) -> RoutingInput:
    """What routing needs from a create or preview; a pathway gives the default specialty and
    the centre the green channel needs."""
    pathway = await pathways.for_referral(session, fields.pathway)
    specialty = fields.specialty_code or (pathway.specialties[0] if pathway else "")
    data = RoutingInput(
        specialty_code=specialty,
        care_type=CareType(fields.care_type),
        wanted_day=fields.wanted_day,
        signed_institution_ids=tuple(signed),
        patient_choice_id=fields.patient_choice_institution_id,
        centre=pathway.centre if pathway else None,
    )
    await check_routing_input(session, data)
    return data


async def preview(
    session: AsyncSession, settings: Settings, principal: Principal, body: RoutingPreviewIn
) -> dict[str, Any]:
    """The decision a create would take now, without creating or holding anything."""
    data = await routing_input(session, body, body.signed_institution_ids)
    source = await source_for(session, principal, body.source_institution_id)
    check_wanted_day(data, source)
    cands = await candidates(session, source, data)
    return routing.decision_to_dict(decide(settings, source, data, cands, utcnow()))


def without_capacity(cands: Candidates, institution_id: str) -> Candidates:
    """The candidates with ``institution_id`` seen as full (it lost a race for its place)."""

    def strip(items: list[routing.Candidate]) -> list[routing.Candidate]:
        return [
            replace(c, capacity_free=0) if c.institution_id == institution_id else c for c in items
        ]

    return replace(cands, members=strip(cands.members), partners=strip(cands.partners))
