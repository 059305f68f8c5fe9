"""Remote consultation and remote reading: the request is a referral of its kind
(``app.domain.remote``), created, routed and held as one (``placement``), answered with a
sealed report and convertible into a transfer in the same episode.

Routing: the members of the consortium the request runs in that offer the service for the
specialty (``remote_service``; 32 covers 32.06 as a parent subject does), with that day's read
or consult slots (``remote_capacity``), ranked by the referral rules (``candidates.decide``)
and explained the same way; the slot is held last, as a bed is. Unanswered within the answer
time of its kind and urgency (``remote_levels``) a request expires and is routed on.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession

from app.api.schemas.remote import RemoteRequestCreate
from app.config import Settings
from app.db.base import new_id, utcnow
from app.db.models import Referral
from app.db.repositories import referrals as repo
from app.db.repositories import remote as remote_repo
from app.db.repositories import routing as routing_repo
from app.domain import routing
from app.domain.capacity import free
from app.domain.enums import Role
from app.domain.errors import Forbidden, InvalidInput
from app.domain.lifecycle import Direction, Status
from app.domain.localtime import today
from app.domain.remote import READING_SPECIALTY, Modality, RequestKind
from app.services import (
    candidates,
    diagnoses,
    episodes,
    notices,
    patients,
    placement,
    recognition,
    remote_levels,
    routing_inputs,
    service_levels,
)
from app.services.auth import Principal
from app.services.candidates import Candidates, RoutingInput, Source
from app.services.crypto import PatientDataProtector
from app.services.numbering import Number, number_for
from app.services.views import ReferralView


def _check(body: RemoteRequestCreate) -> None:
    """The fields each kind needs (422 naming them)."""
    errors: list[dict[str, Any]] = []
    if body.kind == "remote_read":
        if body.modality is None:
            errors.append({"loc": ["body", "modality"], "msg": "required for a remote read"})
        study = body.study
        if study is None or not (study.accession_number or study.study_instance_uid):
            errors.append(
                {
                    "loc": ["body", "study"],
                    "msg": "a remote read names accession_number or study_instance_uid",
                }
            )
        if body.consult_mode is not None:
            errors.append({"loc": ["body", "consult_mode"], "msg": "only for a consult"})
    else:
        if body.specialty_code is None:
            errors.append({"loc": ["body", "specialty_code"], "msg": "required for a consult"})
        if body.modality is not None:
            errors.append({"loc": ["body", "modality"], "msg": "only for a remote read"})
    if errors:
        raise InvalidInput("The remote request has invalid fields.", errors)


async def remote_candidates(
    session: AsyncSession, source: Source, kind: RequestKind, specialty_code: str, day: date
) -> Candidates:
    """Every member of the consortium, offering the service for the specialty (or its parent
    subject) or not, with that day's read or consult slots (the most specific row)."""
    codes = candidates.specialty_ancestors(specialty_code)
    facts = [
        f
        for f in await routing_repo.institutions_for_routing(
            session, source.consortium_id, None, joined=source.joined_members
        )
        if f.is_member
    ]
    ids = [f.id for f in facts]
    offered = await remote_repo.offered(session, ids, kind.value, codes)
    best: dict[str, tuple[str, int, int, int, datetime | None]] = {}
    for iid, code, total, occupied, held, as_of in await remote_repo.capacity_rows(
        session, ids, kind.hold_kind, codes, day
    ):
        current = best.get(iid)
        if current is None or len(code) > len(current[0]):
            best[iid] = (code, total, occupied, held, as_of)
    members: list[routing.Candidate] = []
    lead_ids: set[str] = set()
    for f in facts:
        cap = best.get(f.id)
        members.append(
            routing.Candidate(
                institution_id=f.id,
                code=f.code,
                name=f.name,
                level=f.level,
                active=f.active,
                in_consortium=True,
                specialties=frozenset(offered.get(f.id, ())),
                centres=frozenset(),
                lat=f.lat,
                lon=f.lon,
                capacity_free=free(cap[1], cap[2], cap[3]) if cap else None,
                capacity_total=cap[1] if cap else None,
                census_as_of=cap[4] if cap else None,
            )
        )
        if f.is_lead:
            lead_ids.add(f.id)
    return Candidates(members, [], frozenset(lead_ids), {k: v[0] for k, v in best.items()})


async def placement_inputs(
    session: AsyncSession, settings: Settings, row: Referral, now: datetime, named: str | None
) -> tuple[Candidates, placement.Decide, placement.Need]:
    """Routing a stored remote request again (after a rejection, an expiry, a forward or a
    freed slot), without the members that declined it. A request whose day has passed is
    routed for today (the consortium's day) and its day moves with it."""
    source = await routing_inputs.load_source(session, row.source_institution_id, row.consortium_id)
    kind = RequestKind(row.kind)
    day = max(row.wanted_day or date.min, today(now, source.time_zone))
    row.wanted_day = day
    data = RoutingInput(
        specialty_code=row.specialty_code,
        care_type=kind.care_type,
        wanted_day=day,
        signed_institution_ids=(),
        patient_choice_id=named,
        choice_by="target",
    )
    excluded = frozenset(row.declined_institution_ids or ())
    cands = await remote_candidates(session, source, kind, row.specialty_code, day)
    need = placement.Need(kind.care_type, day, remote=kind.hold_kind)
    return cands, candidates.decider(settings, source, data, now, excluded), need


async def create(
    session: AsyncSession,
    settings: Settings,
    protector: PatientDataProtector,
    principal: Principal,
    body: RemoteRequestCreate,
    *,
    number: Number | None = None,
) -> placement.Written[ReferralView]:
    """Write the remote request for its routing decision; the hold for ``hold_last``."""
    if principal.role not in (Role.CLINIC, Role.HOSPITAL):
        raise Forbidden("Only a clinic or hospital key sends remote requests.")
    _check(body)
    kind = RequestKind(body.kind)
    now = utcnow()
    source = await routing_inputs.source_for(session, principal, None)
    checked = patients.check_patient(body.patient, today(now, source.time_zone))
    diagnosis = diagnoses.validate(settings, body.diagnosis)
    modality = Modality(body.modality) if body.modality else None
    specialty = body.specialty_code or READING_SPECIALTY[cast(Modality, modality)]
    signed = tuple(body.patient.signed_institution_ids)
    data = RoutingInput(
        specialty_code=specialty,
        care_type=kind.care_type,
        wanted_day=body.wanted_day or today(now, source.time_zone),
        signed_institution_ids=signed,
        patient_choice_id=None,
    )
    await routing_inputs.check_routing_input(session, data)
    source, basis = routing_inputs.run_in(source, body.consortium_id, data)
    day = body.wanted_day or today(now, source.time_zone)
    data = RoutingInput(specialty, kind.care_type, day, signed, None)
    routing_inputs.check_wanted_day(data, source)
    consortium_id = source.consortium_id
    resident_hmac = protector.identifier_hmac(checked.document.match_key())
    episode_id = await episodes.open_or_join(
        session, body.episode_id, consortium_id, resident_hmac, now
    )
    referral_number = await number_for(session, consortium_id, now, number)
    referral_id = new_id()
    tests_done, recognised, recognised_fen = await recognition.mark(
        session, settings, consortium_id, day, [t.model_dump(mode="json") for t in body.tests_done]
    )
    sensitive = {
        "patient": patients.sealed_patient(body.patient, checked, list(signed)),
        "diagnosis_text": body.diagnosis.text,
        "clinical_summary": body.clinical_summary,
        "tests_done": tests_done,
        "question": body.question,
        "study": body.study.model_dump(mode="json") if body.study else None,
    }
    need = placement.Need(kind.care_type, day, remote=kind.hold_kind)
    decide = candidates.decider(settings, source, data, now)
    cands = await remote_candidates(session, source, kind, specialty, day)
    placed, hold = placement.plan(session, cands, decide, need)
    level = remote_levels.level(settings, kind, body.urgency, modality)
    doctor = body.referring_doctor
    row = Referral(
        id=referral_id,
        number=referral_number,
        consortium_id=consortium_id,
        consortium_basis=basis,
        kind=kind.value,
        modality=modality.value if modality else None,
        consult_mode=(body.consult_mode or "async") if kind is RequestKind.CONSULT else None,
        report_due_at=now + level.report,
        direction=Direction.UP,
        status=Status.PENDING,
        source_institution_id=source.id,
        specialty_code=specialty,
        care_type=kind.care_type,
        wanted_day=day,
        urgency=body.urgency,
        **patients.referral_columns(
            checked, diagnosis, resident_hmac, body.patient.insurance_scheme
        ),
        sensitive=protector.seal(sensitive, associated=referral_id),
        referring_doctor=doctor.name if doctor else None,
        episode_id=episode_id,
        contacts=await notices.source_contacts(session, source.id, body.source_coordinator),
        recognised_tests=recognised,
        recognised_fen=recognised_fen,
        signed_institution_ids=list(signed),
        declined_institution_ids=[],
        overflow=False,
        priority=service_levels.priority(body.urgency),
        version=1,
        created_at=now,
        updated_at=now,
    )
    placement.apply(row, placed, settings, now)
    repo.add(session, row)
    await session.flush()
    decision, _ = await placement.record_created(
        session,
        row,
        placed,
        settings,
        now,
        actor_institution_id=source.id,
        actor_user=doctor.id if doctor else None,
        tier=False,
    )
    await session.flush()
    view = ReferralView(row, sensitive, decision, True, None, time_zone=source.time_zone)
    return placement.Written(view, hold)
