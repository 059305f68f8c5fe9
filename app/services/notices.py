"""People to call, and the notice that tells the patient where and when to go.

Each referral names its coordinators: the source's (given with the create, else the source
institution's contact) and the target's (given on acceptance, else its contact). When the
target accepts, the patient should be told: the event ``patient_notice`` (webhook
``referral.patient_notice``) says so, and the notice (the patient's phone and a text in Chinese
and English: where, when, whom to call; never the diagnosis) is read by the referral's source
or target, or by the consortium's SMS gateway with its own ``notifier`` key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Institution, Referral
from app.db.repositories import referrals as repo
from app.db.repositories import registry as registry_repo
from app.domain.enums import Role
from app.domain.errors import NotFound
from app.domain.localtime import DEFAULT_TIME_ZONE
from app.services.access import can_see
from app.services.auth import Principal
from app.services.crypto import PatientDataProtector


def contact_of(institution: Institution | None) -> dict[str, Any] | None:
    if institution is None or not (institution.contact_name or institution.contact_phone):
        return None
    return {
        "name": institution.contact_name,
        "phone": institution.contact_phone,
        "his_user": None,
        "default": True,  # the institution's contact, not a named coordinator
    }


async def source_contacts(
    session: AsyncSession, source_id: str, given: Any | None
) -> dict[str, Any]:
    """The contacts a new referral starts with: its source's coordinator."""
    if given is not None:
        return {"source": {**given.model_dump(), "default": False}, "target": None}
    source = await registry_repo.get_institution_row(session, source_id)
    return {"source": contact_of(source), "target": None}


async def set_target(session: AsyncSession, row: Referral, given: dict[str, Any] | None) -> None:
    """On acceptance: the target's coordinator, given or its institution's contact."""
    target: dict[str, Any] | None
    if given is not None:
        target = {**given, "default": False}
    else:
        found = await registry_repo.get_institution_row(session, row.target_institution_id or "")
        target = contact_of(found)
    row.contacts = {**(row.contacts or {"source": None}), "target": target}


@dataclass(frozen=True, slots=True)
class Notice:
    referral: Referral
    phone: str | None
    text_zh: str
    text_en: str


def _masked(name: str) -> str:
    return name[:1] + "*" * max(1, len(name) - 1)


def _when(row: Referral, zone: str) -> tuple[str, str]:
    appointment = (row.acceptance or {}).get("appointment_at")
    if appointment:
        at = datetime.fromisoformat(str(appointment).replace("Z", "+00:00"))
        local = at.astimezone(ZoneInfo(zone))
        return f"{local:%Y年%m月%d日 %H:%M}", f"on {local:%Y-%m-%d at %H:%M}"
    if row.wanted_day is not None:
        day = row.wanted_day
        return f"{day:%Y年%m月%d日}", f"on {day:%Y-%m-%d}"
    return "尽快", "as soon as possible"


def may_read(principal: Principal, row: Referral) -> bool:
    if principal.role is Role.NOTIFIER:
        return principal.consortium_id == row.consortium_id
    return principal.role in (Role.CLINIC, Role.HOSPITAL) and can_see(principal, row)


async def notice(
    session: AsyncSession, protector: PatientDataProtector, principal: Principal, referral_id: str
) -> Notice:
    row = await repo.get(session, referral_id)
    if row is None or not may_read(principal, row):
        raise NotFound("No referral with this id.")
    if row.accepted_at is None or row.target_institution_id is None:
        raise NotFound("No patient notice yet: the referral has not been accepted.")
    patient = protector.open(row.sensitive, associated=row.id)["patient"]
    target = await registry_repo.get_institution_row(session, row.target_institution_id)
    assert target is not None
    zone = (
        await registry_repo.consortium_time_zone(session, row.consortium_id)
        if row.consortium_id
        else DEFAULT_TIME_ZONE
    )
    when_zh, when_en = _when(row, zone)
    person = (row.contacts or {}).get("target") or {}
    call_zh = call_en = ""
    if person.get("name") or person.get("phone"):
        who = " ".join(str(v) for v in (person.get("name"), person.get("phone")) if v)
        call_zh, call_en = f"联系人：{who}。", f" Contact: {who}."
    name = _masked(str(patient["name"]))
    text_zh = (
        f"{name}您好：您的转诊（编号 {row.number}）已由{target.name}接收，"
        f"请于{when_zh}前往{target.name}就诊。{call_zh}"
    )
    text_en = (
        f"Dear {name}: your referral {row.number} has been accepted by "
        f"{target.name_en or target.name}. Please go there {when_en}.{call_en}"
    )
    return Notice(row, patient.get("phone"), text_zh, text_en)
