"""Down-referral: stable patients back to primary care with a discharge summary, a follow-up
plan and the medication list; and the escalation of a deterioration back up (closed loop)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db.base import new_id, utcnow
from app.db.models import FollowUp, Referral
from app.db.repositories import capacity as capacity_repo
from app.db.repositories import episodes as episode_repo
from app.db.repositories import referrals as repo
from app.db.repositories import registry as registry_repo
from app.db.repositories import tiers as tier_repo
from app.domain import routing
from app.domain.down_routing import DownRequest, route_down
from app.domain.enums import CareType, InstitutionLevel, Role
from app.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.domain.icd10 import DiagnosisCode, matches_prefix
from app.domain.localtime import today
from app.services import diagnoses, events, patients, referrals, service_levels, tiers
from app.services.access import can_see
from app.services.auth import Principal
from app.services.crypto import PatientDataProtector

DATA = Path(__file__).resolve().parent.parent / "data"


@lru_cache
def stability_criteria() -> dict[str, list[str]]:
    data = json.loads((DATA / "stability_criteria.json").read_text(encoding="utf-8"))
    return {str(k): list(v) for k, v in data["criteria"].items()}


@lru_cache
def chronic_catalogue() -> tuple[int, tuple[str, ...]]:
    data = json.loads((DATA / "chronic_diseases.json").read_text(encoding="utf-8"))
    return int(data["max_days"]), tuple(d["icd10_prefix"] for d in data["diseases"])


def required_criteria(specialty: str) -> list[str]:
    table = stability_criteria()
    parts = specialty.split(".")
    for i in range(len(parts), 0, -1):
        code = ".".join(parts[:i])
        if code in table:
            return table[code]
    return table["default"]


def check_stability(specialty: str, stability: dict[str, Any] | None) -> None:
    """A down-referral needs the attestation; the missing items are named."""
    stability = stability or {}
    errors = []
    for flag in ("diagnosis_confirmed", "condition_stable"):
        if stability.get(flag) is not True:
            errors.append({"loc": ["body", "stability", flag], "msg": "must be attested (true)"})
    checked = stability.get("criteria") or {}
    for name in required_criteria(specialty):
        if checked.get(name) is not True:
            errors.append(
                {"loc": ["body", "stability", "criteria", name], "msg": "criterion not checked"}
            )
    if errors:
        raise InvalidInput("The stability attestation is incomplete.", errors)


def medication_list(code: DiagnosisCode, medications: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Long prescriptions only for diseases in the consortium's chronic-disease catalogue
    (its prefixes matched on the dagger code's category part, case-sensitive)."""
    max_days, prefixes = chronic_catalogue()
    chronic = any(matches_prefix(code, p) for p in prefixes)
    out, errors = [], []
    for i, med in enumerate(medications):
        days = int(med.get("days") or 0)
        long_rx = days > 30
        if long_rx and not chronic:
            errors.append(
                {
                    "loc": ["body", "medications", i, "days"],
                    "msg": "over 30 days needs a disease in the chronic-disease catalogue",
                }
            )
        if days > max_days:
            errors.append(
                {
                    "loc": ["body", "medications", i, "days"],
                    "msg": f"longer than the catalogue's {max_days} days",
                }
            )
        out.append({**med, "long_prescription": long_rx})
    if errors:
        raise InvalidInput("The medication list has prescriptions the rules do not allow.", errors)
    return out


async def place_down(
    session: AsyncSession,
    row: Referral,
    *,
    signed: tuple[str, ...],
    episode_origin: str | None,
    requested: str | None,
) -> referrals.Placement:
    source = await referrals.load_source(session, row.source_institution_id)
    data = referrals.RoutingInput(
        specialty_code=row.specialty_code,
        care_type=row.care_type,
        wanted_day=None,
        signed_institution_ids=signed,
        patient_choice_id=None,
    )
    cands = await referrals.candidates(session, source, data)
    request = DownRequest(
        source_institution_id=source.id,
        source_lat=source.lat,
        source_lon=source.lon,
        service_code=row.specialty_code,
        care_type=row.care_type,
        signed_institution_ids=signed,
        episode_origin_id=episode_origin,
        requested_id=requested,
        excluded_institution_ids=frozenset(row.declined_institution_ids or ()),
    )
    for _ in range(referrals.MAX_HOLD_ATTEMPTS):
        try:
            decision = route_down(request, cands.members)
        except routing.PatientChoiceNotAllowed as exc:
            raise InvalidInput(
                "The named institution cannot receive this down-referral.",
                [{"loc": ["body", "target_institution_id"], "msg": str(exc.reason)}],
            ) from exc
        target = decision.target
        if target is None or row.care_type is not CareType.INPATIENT:
            return referrals.Placement(decision, cands, held=False)
        code = cands.capacity_code[target.institution_id]
        if await capacity_repo.try_hold_bed(session, target.institution_id, code):
            return referrals.Placement(decision, cands, held=True)
        cands = referrals.without_capacity(cands, target.institution_id)
    raise Conflict("Capacity kept changing while routing; retry the request.")


async def create_down_referral(
    session: AsyncSession,
    settings: Settings,
    protector: PatientDataProtector,
    principal: Principal,
    body: dict[str, Any],
    *,
    number: referrals.Number | None = None,
) -> referrals.ReferralView:
    if principal.role is not Role.HOSPITAL or principal.institution_id is None:
        raise Forbidden("Down-referrals are sent by hospitals.")
    now = utcnow()
    source = await referrals.load_source(session, principal.institution_id)
    checked = referrals.validate_patient(body["patient"], today(now, source.time_zone))
    diagnosis = diagnoses.validate(settings, body["diagnosis"])
    check_stability(body["condition_specialty_code"], body.get("stability"))
    medications = medication_list(diagnosis.code, body.get("medications") or [])
    known = await registry_repo.existing_specialty_codes(
        session, [body["service_code"], body["condition_specialty_code"]]
    )
    unknown = [f for f in ("service_code", "condition_specialty_code") if body[f] not in known]
    if unknown:
        raise InvalidInput(
            "Unknown specialty code.",
            [{"loc": ["body", f], "msg": "unknown specialty code"} for f in unknown],
        )
    hospital = await registry_repo.get_institution(session, source.id)
    assert hospital is not None
    if hospital.level not in (InstitutionLevel.SECONDARY, InstitutionLevel.TERTIARY):
        raise Forbidden("Down-referrals are sent by hospitals.")
    resident_hmac = protector.identifier_hmac(checked.document.match_key())
    episode_origin = None
    episode_id = None
    parent_id = body.get("up_referral_id")
    if parent_id:
        parent = await repo.get(session, parent_id)
        if parent is None or not can_see(principal, parent):
            raise InvalidInput(
                "Unknown up-referral.",
                [{"loc": ["body", "up_referral_id"], "msg": "no such referral"}],
            )
        if parent.resident_id_hmac != resident_hmac or parent.direction != "up":
            raise InvalidInput(
                "The up-referral is of another patient or not an up-referral.",
                [{"loc": ["body", "up_referral_id"], "msg": "not this patient's up-referral"}],
            )
        episode_id, episode_origin = parent.episode_id, parent.source_institution_id
    episode_id = await referrals.open_or_join_episode(
        session, episode_id, source.consortium_id, resident_hmac, now
    )
    consortium = await registry_repo.get_consortium(session, source.consortium_id)
    assert consortium is not None
    referral_id = new_id()
    signed = tuple(body["patient"].get("signed_institution_ids") or ())
    row = Referral(
        id=referral_id,
        number="",
        consortium_id=consortium.id,
        direction="down",
        status="pending",
        source_institution_id=source.id,
        specialty_code=body["service_code"],
        care_type=CareType(body["care_type"]),
        wanted_day=None,
        urgency=body.get("urgency") or "routine",
        insurance_scheme=body["patient"]["insurance_scheme"],
        diagnosis_code=diagnosis.code.code,
        diagnosis_code_system=diagnosis.code.system,
        diagnosis_name=diagnosis.name,
        diagnosis_morphology=diagnosis.morphology,
        patient_sex=checked.sex.code,
        patient_birth_date=checked.birth_date,
        resident_id_hmac=resident_hmac,
        sensitive="",
        referring_doctor=(body.get("referring_doctor") or {}).get("name"),
        episode_id=episode_id,
        parent_referral_id=parent_id,
        signed_institution_ids=list(signed),
        declined_institution_ids=[],
        overflow=False,
        priority=service_levels.priority(body.get("urgency") or "routine"),
        version=1,
        created_at=now,
        updated_at=now,
    )
    placed = await place_down(
        session,
        row,
        signed=signed,
        episode_origin=episode_origin,
        requested=body.get("target_institution_id"),
    )
    row.number = await referrals.number_for(session, consortium.id, now, number)
    sensitive = {
        "patient": patients.sealed_patient(body["patient"], checked, list(signed)),
        "diagnosis_text": body["diagnosis"].get("text"),
        "clinical_summary": body.get("discharge_summary"),
        "tests_done": body.get("tests_done") or [],
        "down": {
            "condition_specialty_code": body["condition_specialty_code"],
            "stability": body.get("stability"),
            "discharge_summary": body.get("discharge_summary"),
            "rehabilitation_plan": body.get("rehabilitation_plan"),
            "medications": medications,
            "follow_up_plan": [
                {**v, "due_date": str(v["due_date"])} for v in body["follow_up_plan"]
            ],
        },
    }
    row.sensitive = protector.seal(sensitive, associated=referral_id)
    referrals.apply_placement(row, placed, settings, now)
    repo.add(session, row)
    await session.flush()
    for visit in body["follow_up_plan"]:
        episode_repo.add_follow_up(
            session,
            FollowUp(
                referral_id=row.id,
                kind="planned",
                due_date=visit["due_date"],
                content=protector.seal({"purpose": visit.get("purpose")}, associated=row.id),
                author_institution_id=source.id,
                created_at=now,
            ),
        )
    decision = routing.decision_to_dict(placed.decision)
    repo.add_attempt(
        session,
        referral_id=row.id,
        attempt=1,
        outcome=str(placed.decision.outcome),
        target_institution_id=row.target_institution_id,
        decision=decision,
        created_at=now,
    )
    events.record(
        session,
        row,
        "created",
        None,
        at=now,
        actor_institution_id=source.id,
        actor_user=(body.get("referring_doctor") or {}).get("id"),
        reason=placed.decision.explanation,
    )
    await tiers.record_for(session, row, now)
    tier = await tier_repo.latest_of(session, row.id)
    return referrals.ReferralView(
        row, sensitive, decision, show_full_identity=True, tier=tier, time_zone=source.time_zone
    )


async def visible(session: AsyncSession, principal: Principal, referral_id: str) -> Referral:
    row = await repo.get(session, referral_id)
    if row is None or not can_see(principal, row):
        raise NotFound("No referral with this id.")
    return row


async def escalate(
    session: AsyncSession,
    settings: Settings,
    protector: PatientDataProtector,
    principal: Principal,
    referral_id: str,
    body: dict[str, Any],
    *,
    number: referrals.Number | None = None,
) -> referrals.ReferralView:
    """A deterioration during follow-up: a new up-referral in the same episode, pre-filled."""
    down = await visible(session, principal, referral_id)
    if down.direction != "down" or principal.institution_id != down.target_institution_id:
        raise Forbidden("Only the primary institution following the patient escalates.")
    if down.status not in ("accepted", "arrived", "in_follow_up", "completed"):
        raise Conflict(
            "Only a down-referral the primary institution took over escalates.",
            current_status=down.status,
        )
    sealed = protector.open(down.sensitive, associated=down.id)
    condition = (sealed.get("down") or {}).get("condition_specialty_code") or down.specialty_code
    up_body = {
        "patient": patients.escalation_patient(
            sealed["patient"], down.patient_birth_date, down.patient_sex.word, down.insurance_scheme
        ),
        "diagnosis": {
            "icd10": down.diagnosis_code,
            "code_system": down.diagnosis_code_system,
            "morphology": down.diagnosis_morphology,
            "text": sealed.get("diagnosis_text"),
        },
        "specialty_code": body.get("specialty_code") or condition,
        "care_type": body.get("care_type") or "inpatient",
        "wanted_day": body.get("wanted_day"),
        "urgency": body.get("urgency") or "urgent",
        "clinical_summary": body.get("clinical_summary"),
        "tests_done": body.get("tests_done") or [],
        "referring_doctor": body.get("referring_doctor"),
        "episode_id": down.episode_id,
        "pathway": body.get("pathway"),
    }
    return await referrals.create_up_referral(
        session, settings, protector, principal, up_body, parent_referral_id=down.id, number=number
    )
