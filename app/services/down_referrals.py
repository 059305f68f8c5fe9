"""Down-referral: stable patients back to primary care with a discharge summary, a follow-up
plan and the medication list; and the escalation of a deterioration back up (closed loop)."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession

from app.api.schemas.referrals import DiagnosisIn, DownReferralCreate, EscalateIn, ReferralCreate
from app.config import Settings
from app.db.base import new_id, utcnow
from app.db.models import FollowUp, Referral
from app.db.repositories import episodes as episode_repo
from app.db.repositories import referrals as repo
from app.db.repositories import registry as registry_repo
from app.domain import routing
from app.domain.down_routing import DownRequest, route_down
from app.domain.enums import InstitutionLevel, Role
from app.domain.errors import Conflict, Forbidden, InvalidInput
from app.domain.lifecycle import Direction, Status
from app.domain.localtime import today
from app.services import (
    candidates,
    diagnoses,
    episodes,
    notices,
    outcomes,
    patients,
    placement,
    routing_inputs,
    service_levels,
    signings,
    up_referrals,
)
from app.services.access import can_see
from app.services.auth import Principal
from app.services.candidates import Candidates, RoutingInput
from app.services.crypto import PatientDataProtector
from app.services.down_rules import check_stability, medication_list
from app.services.numbering import Number, number_for
from app.services.views import ReferralView, visible


async def down_placement_inputs(
    session: AsyncSession,
    row: Referral,
    *,
    signed: tuple[str, ...],
    episode_origin: str | None,
    requested: str | None,
) -> tuple[Candidates, placement.Decide, placement.Need]:
    """The candidates, the down-routing rules and what is held, for ``placement``."""
    source = await routing_inputs.load_source(session, row.source_institution_id, row.consortium_id)
    data = RoutingInput(
        specialty_code=row.specialty_code,
        care_type=row.care_type,
        wanted_day=None,
        signed_institution_ids=signed,
        patient_choice_id=None,
    )
    # every member: down-routing has its own rules (primary institutions), no pre-filter
    cands = await candidates.candidates(session, source, data, direction=Direction.DOWN)
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

    def decide(narrowed: Candidates) -> routing.RoutingDecision:
        try:
            return route_down(request, narrowed.members)
        except routing.PatientChoiceNotAllowed as exc:
            raise InvalidInput(
                "The named institution cannot receive this down-referral.",
                [{"loc": ["body", "target_institution_id"], "msg": str(exc.reason)}],
            ) from exc

    # a bed for a rehabilitation inpatient; outpatient follow-up has no day to hold
    return cands, decide, placement.Need(row.care_type, None)


async def create(
    session: AsyncSession,
    settings: Settings,
    protector: PatientDataProtector,
    principal: Principal,
    body: DownReferralCreate,
    *,
    number: Number | None = None,
) -> placement.Written[ReferralView]:
    """Write the down-referral; its bed hold (if any) is returned to run last."""
    if principal.role is not Role.HOSPITAL or principal.institution_id is None:
        raise Forbidden("Down-referrals are sent by hospitals.")
    now = utcnow()
    source = own_source = await routing_inputs.load_source(session, principal.institution_id)
    checked = patients.check_patient(body.patient, today(now, source.time_zone))
    diagnosis = diagnoses.validate(settings, body.diagnosis)
    check_stability(body.condition_specialty_code, body.stability)
    medications = medication_list(diagnosis.code, body.medications)
    known = await registry_repo.existing_specialty_codes(
        session, [body.service_code, body.condition_specialty_code]
    )
    unknown = [
        name
        for name, code in (
            ("service_code", body.service_code),
            ("condition_specialty_code", body.condition_specialty_code),
        )
        if code not in known
    ]
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
    parent_id = body.up_referral_id
    discharge_summary = body.discharge_summary
    reused: dict[str, Any] | None = None
    if parent_id:
        parent = await repo.get(session, parent_id)
        if parent is None or not can_see(principal, parent):
            raise InvalidInput(
                "Unknown up-referral.",
                [{"loc": ["body", "up_referral_id"], "msg": "no such referral"}],
            )
        if parent.resident_id_hmac != resident_hmac or parent.direction is not Direction.UP:
            raise InvalidInput(
                "The up-referral is of another patient or not an up-referral.",
                [{"loc": ["body", "up_referral_id"], "msg": "not this patient's up-referral"}],
            )
        episode_id, episode_origin = parent.episode_id, parent.source_institution_id
        # back down in the consortium the patient came up in, where the hospital is a member
        for affiliation in source.affiliations:
            if affiliation.consortium_id == parent.consortium_id:
                source = routing_inputs.within(source, affiliation)
        reused = outcomes.of(protector, parent) if discharge_summary is None else None
        if reused is not None:  # the outcome sent back becomes the discharge summary
            discharge_summary = "\n\n".join(
                text for text in (reused["summary"], reused.get("recommendations")) if text
            )
    if discharge_summary is None:
        raise InvalidInput(
            "A down-referral needs the discharge summary.",
            [{"loc": ["body", "discharge_summary"], "msg": "required without a sent outcome"}],
        )
    episode_id = await episodes.open_or_join(
        session, episode_id, source.consortium_id, resident_hmac, now
    )
    referral_id = new_id()
    signed, signed_from = await signings.signed_for(
        session, body.patient.signed_institution_ids, resident_hmac, today(now, source.time_zone)
    )
    sensitive = {
        "patient": patients.sealed_patient(body.patient, checked, list(signed)),
        "diagnosis_text": body.diagnosis.text,
        "clinical_summary": discharge_summary,
        "tests_done": [t.model_dump(mode="json") for t in body.tests_done],
        "down": {
            "condition_specialty_code": body.condition_specialty_code,
            "stability": body.stability.model_dump(mode="json") if body.stability else None,
            "discharge_summary": discharge_summary,
            "from_outcome_of": parent_id if reused is not None else None,
            "rehabilitation_plan": body.rehabilitation_plan,
            "medications": medications,
            "follow_up_plan": [
                {"due_date": str(v.due_date), "purpose": v.purpose} for v in body.follow_up_plan
            ],
        },
    }
    doctor = body.referring_doctor
    row = Referral(
        id=referral_id,
        number=await number_for(session, source.consortium_id, now, number),
        consortium_id=source.consortium_id,
        consortium_basis="up_referral" if source is not own_source else "own",
        direction=Direction.DOWN,
        status=Status.PENDING,
        source_institution_id=source.id,
        specialty_code=body.service_code,
        care_type=body.care_type,
        wanted_day=None,
        urgency=body.urgency,
        **patients.referral_columns(
            checked, diagnosis, resident_hmac, body.patient.insurance_scheme
        ),
        sensitive=protector.seal(sensitive, associated=referral_id),
        referring_doctor=doctor.name if doctor else None,
        episode_id=episode_id,
        parent_referral_id=parent_id,
        contacts=await notices.source_contacts(session, source.id, None),
        signed_institution_ids=list(signed),
        signed_from=signed_from,
        declined_institution_ids=[],
        overflow=False,
        priority=service_levels.priority(body.urgency),
        version=1,
        created_at=now,
        updated_at=now,
    )
    cands, decide, need = await down_placement_inputs(
        session,
        row,
        signed=signed,
        episode_origin=episode_origin,
        requested=body.target_institution_id,
    )
    placed, hold = placement.plan(session, cands, decide, need)
    placement.apply(row, placed, settings, now)  # before the INSERT: no UPDATE after it
    repo.add(session, row)
    await session.flush()  # the referral row before the rows that refer to it
    for visit in body.follow_up_plan:
        episode_repo.add_follow_up(
            session,
            row,
            FollowUp(
                kind="planned",
                due_date=visit.due_date,
                content=protector.seal({"purpose": visit.purpose}, associated=row.id),
                author_institution_id=source.id,
                created_at=now,
            ),
        )
    decision, tier = await placement.record_created(
        session,
        row,
        placed,
        settings,
        now,
        actor_institution_id=source.id,
        actor_user=doctor.id if doctor else None,
    )
    await session.flush()
    view = ReferralView(row, sensitive, decision, True, tier, time_zone=source.time_zone)
    return placement.Written(view, hold)


async def escalate(
    session: AsyncSession,
    settings: Settings,
    protector: PatientDataProtector,
    principal: Principal,
    referral_id: str,
    body: EscalateIn,
    *,
    number: Number | None = None,
) -> placement.Written[ReferralView]:
    """A deterioration during follow-up: a new up-referral in the same episode, pre-filled."""
    down = await visible(session, principal, referral_id)
    if (
        down.direction is not Direction.DOWN
        or principal.institution_id != down.target_institution_id
    ):
        raise Forbidden("Only the primary institution following the patient escalates.")
    if down.status not in (Status.ACCEPTED, Status.ARRIVED, Status.IN_FOLLOW_UP, Status.COMPLETED):
        raise Conflict(
            "Only a down-referral the primary institution took over escalates.",
            current_status=down.status,
        )
    sealed = protector.open(down.sensitive, associated=down.id)
    condition = (sealed.get("down") or {}).get("condition_specialty_code") or down.specialty_code
    command = ReferralCreate.model_construct(
        patient=patients.escalation_patient(
            sealed["patient"], down.patient_birth_date, down.patient_sex.word, down.insurance_scheme
        ),
        # the stored diagnosis, as recorded (its edition may predate today's claims)
        diagnosis=DiagnosisIn.model_construct(
            icd10=down.diagnosis_code,
            code_system=cast(Any, down.diagnosis_code_system),
            morphology=down.diagnosis_morphology,
            text=sealed.get("diagnosis_text"),
        ),
        specialty_code=body.specialty_code or condition,
        care_type=body.care_type,
        wanted_day=body.wanted_day,
        urgency=body.urgency,
        clinical_summary=body.clinical_summary,
        tests_done=body.tests_done,
        referring_doctor=body.referring_doctor,
        episode_id=down.episode_id,
        pathway=body.pathway,
        patient_choice_institution_id=None,
        reason=cast(Any, None),  # an escalation states no reason of its own
        direction="up",
    )
    return await up_referrals.create(
        session, settings, protector, principal, command, parent_referral_id=down.id, number=number
    )
