"""A referral as one caller may see it: the row, its opened patient data, its last routing
decision and its tier."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Referral, TierRecord
from app.db.repositories import appointments as appointment_repo
from app.db.repositories import referrals as repo
from app.db.repositories import registry as registry_repo
from app.db.repositories import remote as remote_repo
from app.db.repositories import tiers as tier_repo
from app.domain.enums import CareType, Role
from app.domain.errors import NotFound
from app.domain.localtime import DEFAULT_TIME_ZONE, local_date
from app.domain.remote import report_associated
from app.services import patients
from app.services.access import can_see
from app.services.auth import Principal
from app.services.crypto import PatientDataProtector


@dataclass(frozen=True, slots=True)
class ReferralView:
    row: Referral
    sensitive: dict[str, Any]
    decision: dict[str, Any] | None
    show_full_identity: bool
    tier: TierRecord | None = None
    time_zone: str = DEFAULT_TIME_ZONE  # the consortium's: the local date of its days
    #: a consult or remote read: its opened report (None: not reported) and the number of the
    #: transfer it was converted into
    report: dict[str, Any] | None = None
    converted_number: str | None = None
    #: an outpatient or examination referral's appointment (session, number, time, state)
    appointment: dict[str, Any] | None = None

    @property
    def created_local_date(self) -> date:
        return local_date(self.row.created_at, self.time_zone)

    @property
    def etag(self) -> str:
        return f'"{self.row.id}.{self.row.version}"'

    def patient(self) -> dict[str, Any]:
        """The patient as this caller may see it (masked unless source or target)."""
        return patients.shown_patient(self.sensitive["patient"], self.show_full_identity)


async def get_referral(
    session: AsyncSession,
    protector: PatientDataProtector,
    principal: Principal,
    referral_id: str,
    *,
    just_declined: bool = False,
) -> ReferralView:
    """The referral as ``principal`` may see it. ``just_declined``: the answer to the hospital
    whose rejection just sent the referral on; it has lost access to the patient's data, so it
    gets the referral without clinical text, the name reduced to its first character and the
    identity masked."""
    row = await repo.get(session, referral_id)
    declined = (
        row is not None
        and just_declined
        and principal.institution_id in (row.declined_institution_ids or ())
    )
    if row is None or not (declined or can_see(principal, row)):
        raise NotFound("No referral with this id.")
    attempt = await repo.latest_attempt(session, row.id)
    sensitive = protector.open(row.sensitive, associated=row.id)
    limited = declined and not can_see(principal, row)
    if limited:
        patient = dict(sensitive["patient"])
        patient["name"] = patient["name"][:1] + "*" * max(0, len(patient["name"]) - 1)
        sensitive = {"patient": patient}
    full = principal.role in (Role.CLINIC, Role.HOSPITAL) and principal.institution_id in (
        row.source_institution_id,
        row.target_institution_id,
    )
    tier = await tier_repo.latest_of(session, row.id)
    zone = await registry_repo.consortium_time_zone(session, row.consortium_id)
    decision = attempt.decision if attempt else None
    report, converted = None, None
    if row.kind != "transfer":
        stored = await remote_repo.report_of(session, row.id)
        if stored is not None and not limited:  # not for the hospital that declined
            content = protector.open(stored.sealed, associated=report_associated(row.id))
            report = {
                "reader_institution_id": stored.reader_institution_id,
                "reported_at": stored.reported_at,
                "within_target": stored.within_target,
                **content,
            }
        converted = await remote_repo.converted_to(session, row.id)
    return ReferralView(
        row,
        sensitive,
        decision,
        full,
        tier,
        time_zone=zone,
        report=report,
        converted_number=converted,
        appointment=await appointment_of(session, row),
    )


async def appointment_of(session: AsyncSession, row: Referral) -> dict[str, Any] | None:
    """The appointment as a referral's answer shows it (None: not booked into a session)."""
    if row.care_type is CareType.INPATIENT or row.kind not in (None, "transfer"):
        return None
    appointment = await appointment_repo.appointment_of(session, row.id)
    if appointment is None:
        return None
    s = await appointment_repo.get_session(session, appointment.session_id)
    assert s is not None
    return {
        "session_id": s.id,
        "his_session_id": s.his_session_id,
        "day": s.day,
        "period": s.period,
        "doctor": s.doctor,
        "room": s.room,
        "number": appointment.number,
        "appointment_at": appointment.appointment_at,
        "state": appointment.state,
    }


async def visible(session: AsyncSession, principal: Principal, referral_id: str) -> Referral:
    """The referral row if ``principal`` may see it, else 404."""
    row = await repo.get(session, referral_id)
    if row is None or not can_see(principal, row):
        raise NotFound("No referral with this id.")
    return row
