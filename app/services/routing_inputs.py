"""Who sends a referral and what it needs: the source institution (the caller's own), the
routing input of a create or preview body checked against the catalogues and the registry,
and the preview itself."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.api.schemas.referrals import RoutingFields, RoutingPreviewIn
from app.config import Settings
from app.db.base import utcnow
from app.db.repositories import memberships as memberships_repo
from app.db.repositories import registry as registry_repo
from app.db.repositories.memberships import Affiliation
from app.domain import routing
from app.domain.enums import CareType, Role
from app.domain.errors import Forbidden, InvalidInput
from app.domain.localtime import today
from app.services import candidate_costs, pathways
from app.services.auth import Principal
from app.services.candidates import (
    CensusWindows,
    RoutingInput,
    Source,
    candidates,
    decide,
)

# specialty codes found in the catalogue: codes are added with a catalogue, never removed, so
# a code once found stays valid (an unknown code is asked again every time)
_KNOWN_SPECIALTIES: set[str] = set()


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
    if principal.role is Role.COUNCIL and principal.consortium_id not in {
        a.consortium_id for a in source.affiliations
    }:
        raise Forbidden("A council key may preview only for its own consortium.")
    return source


async def load_source(
    session: AsyncSession, source_id: str, consortium_id: str | None = None
) -> Source:
    """The source institution, in its own consortium with the others it joined (a create
    chooses among them: :func:`run_in`), or in ``consortium_id``, the one a stored referral
    runs in."""
    inst = await registry_repo.get_institution_row(session, source_id)
    found: list[Affiliation] = []
    if inst is not None and consortium_id is None:
        found = await memberships_repo.affiliations(session, inst.consortium_id, inst.id)
    elif inst is not None and consortium_id is not None:
        one = await memberships_repo.affiliation(
            session, consortium_id, own=consortium_id == inst.consortium_id
        )
        found = [one] if one is not None else []
    if inst is None or not found:
        raise InvalidInput(
            "The source institution is not a member of a consortium.",
            [{"loc": ["body", "source_institution_id"], "msg": "not a consortium member"}],
        )
    registry_repo.remember_time_zones(session, {a.consortium_id: a.time_zone for a in found})
    first = found[0]
    return Source(
        inst.id,
        first.consortium_id,
        inst.level,
        inst.latitude,
        inst.longitude,
        first.time_zone,
        first.joined_members,
        tuple(found),
    )


def run_in(source: Source, named: str | None, data: RoutingInput) -> tuple[Source, str]:
    """The consortium a new referral runs in, and why: the one the caller named (the source
    must belong to it), else the specialty alliance the source joined for the referral's
    green-channel pathway, else for its specialty (a sub-specialty's parent subject counts),
    else the source's own. Several alliances fitting: the first by code."""
    chosen: Affiliation | None = None
    basis = "own"
    if named is not None:
        chosen = next((a for a in source.affiliations if named in (a.consortium_id, a.code)), None)
        if chosen is None:
            raise InvalidInput(
                "The referring institution is not a member of this consortium.",
                [{"loc": ["body", "consortium_id"], "msg": "not a consortium of the source"}],
            )
        basis = "named"
    else:
        joined = [a for a in source.affiliations if not a.own]
        if data.centre is not None:
            chosen = next((a for a in joined if data.centre.value in a.centres), None)
            basis = "pathway"
        if chosen is None:
            code = data.specialty_code
            chosen = next(
                (
                    a
                    for a in joined
                    if any(code == s or code.startswith(s + ".") for s in a.specialties)
                ),
                None,
            )
            basis = "specialty"
        if chosen is None:
            chosen, basis = source.affiliations[0], "own"
    return within(source, chosen), basis


def _covers(affiliation: Affiliation, code: str) -> bool:
    return any(code == s or code.startswith(s + ".") for s in affiliation.specialties)


def within(source: Source, affiliation: Affiliation) -> Source:
    """The source as a member of ``affiliation``, one of its consortia."""
    if affiliation.consortium_id == source.consortium_id:
        return source
    return replace(
        source,
        consortium_id=affiliation.consortium_id,
        time_zone=affiliation.time_zone,
        joined_members=affiliation.joined_members,
    )


def check_wanted_day(data: RoutingInput, source: Source) -> None:
    """`wanted_day` is a day of the source's consortium: today there or later."""
    if data.wanted_day is not None and data.wanted_day < today(utcnow(), source.time_zone):
        raise InvalidInput(
            "The referral has invalid fields.",
            [{"loc": ["body", "wanted_day"], "msg": "must not be in the past"}],
        )


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
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    body: RoutingPreviewIn,
    *,
    complete: bool = False,
) -> dict[str, Any]:
    """The decision a create would take now, without creating or holding anything; bounded as
    stored, or with ``complete`` over every member with every alternative and exclusion."""
    data = await routing_input(session, body, body.signed_institution_ids)
    source = await source_for(session, principal, body.source_institution_id)
    named = body.consortium_id
    if named is None and principal.role is Role.COUNCIL:
        named = principal.consortium_id  # a council previews in its own consortium
    source, _basis = run_in(source, named, data)
    check_wanted_day(data, source)
    census = CensusWindows.of(settings)
    cands = await candidates(session, source, data, complete=complete, census=census)
    decision = decide(settings, source, data, cands, utcnow())
    if complete:
        out = routing.decision_to_dict(decision, excluded_limit=None, alternatives_limit=None)
    else:
        out = routing.decision_to_dict(decision)
    await candidate_costs.add_costs(
        session,
        source,
        out,
        scheme=body.insurance_scheme,
        urgency=body.urgency,
        pathway=body.pathway,
        reason=body.reason,
        deductible_paid_in_episode=body.deductible_paid_in_episode,
    )
    return out
