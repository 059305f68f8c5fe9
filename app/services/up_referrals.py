"""Up-referral create: a clinic (or a hospital escalating a follow-up) sends a patient up;
routed by specialty and free capacity, the bed or slot held last (``placement``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.schemas.referrals import ReferralCreate
from app.config import Settings
from app.db import batch
from app.db.base import new_id, utcnow
from app.db.models import Referral
from app.db.repositories import referrals as repo
from app.domain.enums import CareType, Role
from app.domain.errors import Conflict, Forbidden
from app.domain.lifecycle import Direction, Status
from app.domain.localtime import today
from app.services import (
    candidates,
    diagnoses,
    episodes,
    events,
    filings,
    notices,
    pathways,
    patients,
    placement,
    recognition,
    routing_inputs,
    service_levels,
    signings,
    tiers,
)
from app.services.auth import Principal
from app.services.candidates import RoutingInput, Source
from app.services.crypto import PatientDataProtector
from app.services.numbering import Number, number_for
from app.services.views import ReferralView


class DuplicateReferral(Conflict):
    """409: the patient already has a live up-referral for this specialty."""

    kind = "duplicate-referral"

    def __init__(self, number: str) -> None:
        super().__init__(
            f"The patient already has a live referral for this specialty ({number}); send "
            "duplicate_reason to refer again on purpose.",
            existing_number=number,
        )


async def _insert_once_per_need(session: AsyncSession, row: Referral) -> None:
    """INSERT the referral; a concurrent create for the same patient and need that committed
    first (``uq_referral_live_need``) makes this one a 409, not a server error."""
    try:
        async with session.begin_nested():
            repo.add(session, row)
            await session.flush()  # the referral row before the rows that refer to it
    except IntegrityError as exc:
        if "uq_referral_live_need" not in str(exc.orig) and "referral.consortium_id" not in str(
            exc.orig
        ):
            raise
        live = await repo.live_referral_number(
            session, row.consortium_id, row.resident_id_hmac, row.specialty_code
        )
        raise DuplicateReferral(live or "unknown") from exc


async def _waitlist_goes_first(
    session: AsyncSession,
    settings: Settings,
    consortium_id: str,
    data: RoutingInput,
    placed: placement.Placement,
    priority: int,
    now: datetime,
) -> bool:
    """A new referral never takes a place that a waitlisted one (at least as urgent) fits."""
    from app.services import waitlist  # the waitlist places through the lifecycle

    target = placed.target
    code = placed.hold_code()
    if target is None or code is None:
        return False
    inpatient = data.care_type is CareType.INPATIENT
    place_ = waitlist.FreedPlace(
        target.institution_id,
        "bed" if inpatient else "slot",
        code,
        None if inpatient else data.wanted_day,
        max(1, target.capacity_free or 0),
    )
    return await waitlist.waitlist_first(session, settings, consortium_id, place_, priority, now)


async def create(
    session: AsyncSession,
    settings: Settings,
    protector: PatientDataProtector,
    principal: Principal,
    body: ReferralCreate,
    *,
    parent_referral_id: str | None = None,
    number: Number | None = None,
) -> placement.Written[ReferralView]:
    """Write the referral for its routing decision; the hold is returned for
    :func:`placement.hold_last` to run last."""
    if principal.role not in (Role.CLINIC, Role.HOSPITAL):
        raise Forbidden("Only a clinic or hospital key sends referrals.")
    now = utcnow()
    source = await routing_inputs.source_for(session, principal, None)
    checked = patients.check_patient(body.patient, today(now, source.time_zone))
    diagnosis = diagnoses.validate(settings, body.diagnosis)
    resident_hmac = protector.identifier_hmac(checked.document.match_key())
    signed, signed_from = await signings.signed_for(
        session, body.patient.signed_institution_ids, resident_hmac, today(now, source.time_zone)
    )
    data = await routing_inputs.routing_input(session, body, signed)
    source, basis = routing_inputs.run_in(source, body.consortium_id, data)
    routing_inputs.check_wanted_day(data, source)
    consortium_id = source.consortium_id
    # the targets the referral keeps: its consortium's own, or the shared defaults
    pathway = await pathways.for_referral(session, body.pathway, consortium_id)
    live = await repo.live_referral_number(
        session, consortium_id, resident_hmac, data.specialty_code
    )
    duplicate_reason: str | None = body.duplicate_reason
    if live is not None and duplicate_reason is None and parent_referral_id is not None:
        duplicate_reason = "escalation"  # a deterioration in follow-up: its own, linked need
    if live is not None and duplicate_reason is None:
        raise DuplicateReferral(live)
    episode_id = await episodes.open_or_join(
        session, body.episode_id, consortium_id, resident_hmac, now
    )
    referral_number = await number_for(session, consortium_id, now, number)
    referral_id = new_id()
    tests_done, recognised, recognised_fen = await recognition.mark(
        session,
        settings,
        consortium_id,
        today(now, source.time_zone),
        [t.model_dump(mode="json") for t in body.tests_done],
    )
    sensitive = {
        "patient": patients.sealed_patient(
            body.patient, checked, list(data.signed_institution_ids)
        ),
        "diagnosis_text": body.diagnosis.text,
        "clinical_summary": body.clinical_summary,
        "tests_done": tests_done,
    }
    sealed = protector.seal(sensitive, associated=referral_id)
    priority = service_levels.priority(body.urgency, green_channel=pathway is not None)
    need = placement.Need(
        data.care_type,
        data.wanted_day,
        green_channel=data.centre is not None,
        signed_ids=frozenset(data.signed_institution_ids),
    )
    decide = candidates.decider(settings, source, data, now)
    placed, hold = placement.plan(
        session, await candidates.candidates(session, source, data), decide, need
    )
    if hold is not None and await _waitlist_goes_first(
        session, settings, consortium_id, data, placed, priority, now
    ):  # the waitlisted took the place: the new referral routes on (or waits)
        placed, hold = placement.plan(
            session, await candidates.candidates(session, source, data), decide, need
        )
    doctor = body.referring_doctor
    row = Referral(
        id=referral_id,
        number=referral_number,
        consortium_id=consortium_id,
        consortium_basis=basis,
        direction=Direction.UP,
        status=Status.PENDING,
        source_institution_id=source.id,
        specialty_code=data.specialty_code,
        care_type=data.care_type,
        wanted_day=data.wanted_day,
        urgency=body.urgency,
        **patients.referral_columns(
            checked, diagnosis, resident_hmac, body.patient.insurance_scheme
        ),
        sensitive=sealed,
        referring_doctor=doctor.name if doctor else None,
        episode_id=episode_id,
        parent_referral_id=parent_referral_id,
        reason=body.reason,
        contacts=await notices.source_contacts(session, source.id, body.source_coordinator),
        recognised_tests=recognised,
        recognised_fen=recognised_fen,
        duplicate_reason=duplicate_reason if live is not None else None,
        signed_institution_ids=list(data.signed_institution_ids),
        signed_from=signed_from,
        patient_choice_id=data.patient_choice_id,
        declined_institution_ids=[],
        pathway_code=pathway.code if pathway else None,
        pathway_version=pathway.version if pathway else None,
        pathway_targets=pathway.targets if pathway else None,
        overflow=False,
        priority=priority,
        version=1,
        created_at=now,
        updated_at=now,
    )
    placement.apply(row, placed, settings, now)  # before the INSERT: no UPDATE after it
    await _insert_once_per_need(session, row)
    with session.no_autoflush:  # what follows reads nothing it writes: one flush at the end
        view = await _record(
            session,
            settings,
            row,
            placed,
            body,
            source,
            live,
            duplicate_reason,
            pathway,
            now,
            sensitive,
        )
    await batch.insert_pending(session)  # the rows that refer to the referral: one statement
    return placement.Written(view, hold)


async def _record(
    session: AsyncSession,
    settings: Settings,
    row: Referral,
    placed: placement.Placement,
    body: ReferralCreate,
    source: Source,
    live: str | None,
    duplicate_reason: str | None,
    pathway: pathways.PathwayTerms | None,
    now: datetime,
    sensitive: dict[str, Any],
) -> ReferralView:
    """The new referral's routing attempt, events, milestones, tier and filing."""
    doctor = body.referring_doctor
    actor_user = doctor.id if doctor else None
    decision, _ = await placement.record_created(
        session,
        row,
        placed,
        settings,
        now,
        actor_institution_id=source.id,
        actor_user=actor_user,
        tier=False,  # after the green channel's milestones, as the events are read
    )
    if live is not None:  # sent on purpose beside a live one: said in the audit trail
        events.record(
            session,
            row,
            "duplicate_acknowledged",
            row.status,
            at=now,
            actor_institution_id=source.id,
            actor_user=actor_user,
            reason=f"The patient's live referral {live} for this specialty was known.",
            reason_code=duplicate_reason,
            notify=False,
        )
    if pathway is not None:
        await pathways.on_green_channel_created(session, row, source.id, actor_user, now)
    tier = await tiers.record_for(session, row, now, new_episode=body.episode_id is None)
    await filings.follow(session, settings, row, tier, now, new=True)  # when the tier needs one
    return ReferralView(row, sensitive, decision, True, tier, time_zone=source.time_zone)
