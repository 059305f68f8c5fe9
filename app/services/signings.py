"""Family-doctor signings (家庭医生签约; 001's "1+1+1": a community family doctor, a district
hospital and a municipal hospital): the signing clinic pushes the contract (``PUT``,
idempotent), the composition is checked (one primary — the clinic itself —, at most one
secondary and one tertiary institution), the resident is matched by the keyed HMAC of the
identity document as referrals are, and sealed. Routing reads the signing in force on the
consortium's day unless the referral body names its own (``signed_from``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.schemas.referrals import PatientIn
from app.api.schemas.signings import SigningIn
from app.db.base import new_id, utcnow
from app.db.models import Institution
from app.db.repositories import registry as registry_repo
from app.db.signing_models import FamilySigning
from app.domain.enums import InstitutionLevel, Role
from app.domain.errors import Forbidden, InvalidInput, NotFound
from app.domain.localtime import DEFAULT_TIME_ZONE, today
from app.services import patients
from app.services.auth import Principal
from app.services.crypto import PatientDataProtector

#: the tier of each level in a 1+1+1 signing (a village clinic counts as primary care)
_TIER = {
    InstitutionLevel.VILLAGE: "primary",
    InstitutionLevel.PRIMARY: "primary",
    InstitutionLevel.SECONDARY: "secondary",
    InstitutionLevel.TERTIARY: "tertiary",
}


@dataclass(frozen=True, slots=True)
class SigningView:
    row: FamilySigning
    institutions: list[Institution]
    sealed: dict[str, Any]


def _associated(row_id: str) -> str:
    return f"{row_id}:signing"


def _check_composition(clinic_id: str, found: dict[str, Institution], ids: Sequence[str]) -> None:
    errors: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for i, iid in enumerate(ids):
        loc = ["body", "institution_ids", i]
        inst = found.get(iid)
        if inst is None:
            errors.append({"loc": loc, "msg": "unknown institution"})
            continue
        if iid in ids[:i]:
            errors.append({"loc": loc, "msg": "listed twice"})
            continue
        tier = _TIER[InstitutionLevel(inst.level)]
        if tier in seen:
            errors.append({"loc": loc, "msg": f"a second {tier} institution (1+1+1: one each)"})
        seen.setdefault(tier, i)
        if tier == "primary" and iid != clinic_id:
            errors.append({"loc": loc, "msg": "the primary institution is the signing clinic"})
    if clinic_id not in ids:
        errors.append(
            {"loc": ["body", "institution_ids"], "msg": "must include the signing clinic"}
        )
    if errors:
        raise InvalidInput("The signing is not a valid 1+1+1 combination.", errors)


def _clinic_of(principal: Principal) -> str:
    if principal.role is not Role.CLINIC or principal.institution_id is None:
        raise Forbidden("Signings are pushed by the signing clinic.")
    return principal.institution_id


async def _get(session: AsyncSession, clinic_id: str, contract_id: str) -> FamilySigning | None:
    stmt = select(FamilySigning).where(
        FamilySigning.institution_id == clinic_id,
        FamilySigning.contract_id == contract_id,
        FamilySigning.ended_at.is_(None),
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def put(
    session: AsyncSession,
    protector: PatientDataProtector,
    principal: Principal,
    contract_id: str,
    body: SigningIn,
) -> tuple[SigningView, bool]:
    """Store the contract; ``True`` when it was new. The same body again changes nothing."""
    clinic_id = _clinic_of(principal)
    if body.valid_to < body.valid_from:
        raise InvalidInput(
            "The signing ends before it starts.",
            [{"loc": ["body", "valid_to"], "msg": "on or after valid_from"}],
        )
    ids = list(body.institution_ids)
    found = {i.id: i for i in await registry_repo.get_institutions(session, ids)}
    _check_composition(clinic_id, found, ids)
    zone = await registry_repo.institution_time_zone(session, clinic_id)
    now = utcnow()
    resident = body.resident
    identity = cast(PatientIn, resident)  # the same identity fields as a referral's patient
    try:
        checked = patients.check_patient(identity, today(now, zone or DEFAULT_TIME_ZONE))
    except InvalidInput as exc:  # the resident's fields, not a patient's
        for e in exc.errors or []:
            e["loc"] = ["body", "resident", *e["loc"][2:]]
        raise
    digest = hashlib.sha256(
        json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()
    ).hexdigest()
    row = await _get(session, clinic_id, contract_id)
    created = row is None
    if row is None:
        row = FamilySigning(
            id=new_id(),
            institution_id=clinic_id,
            contract_id=contract_id,
            version=0,
            created_at=now,
        )
    elif row.body_hash == digest:
        return _view(protector, row, found, ids), False
    row.resident_id_hmac = protector.identifier_hmac(checked.document.match_key())
    row.institution_ids = ids
    row.valid_from, row.valid_to = body.valid_from, body.valid_to
    content = {
        "resident": {"name": resident.name, "identity_document": checked.document.to_dict()},
        "family_doctor": body.family_doctor.model_dump(mode="json") if body.family_doctor else None,
    }
    row.sealed = protector.seal(content, associated=_associated(row.id))
    row.body_hash = digest
    row.version += 1
    row.updated_at = now
    if created:
        session.add(row)
    await session.flush()
    return _view(protector, row, found, ids), created


def _view(
    protector: PatientDataProtector,
    row: FamilySigning,
    found: dict[str, Institution],
    ids: Sequence[str],
) -> SigningView:
    sealed = protector.open(row.sealed, associated=_associated(row.id))
    return SigningView(row, [found[i] for i in ids if i in found], sealed)


async def get(
    session: AsyncSession, protector: PatientDataProtector, principal: Principal, contract_id: str
) -> SigningView:
    row = await _get(session, _clinic_of(principal), contract_id)
    if row is None:
        raise NotFound("No signing with this contract id.")
    found = {i.id: i for i in await registry_repo.get_institutions(session, row.institution_ids)}
    return _view(protector, row, found, row.institution_ids)


async def end(session: AsyncSession, principal: Principal, contract_id: str) -> None:
    """The contract ends (the resident left, or did not renew): routing no longer reads it."""
    row = await _get(session, _clinic_of(principal), contract_id)
    if row is None:
        raise NotFound("No signing with this contract id.")
    row.ended_at = row.updated_at = utcnow()


async def signed_for(
    session: AsyncSession, given: Sequence[str], resident_hmac: str, day: date
) -> tuple[tuple[str, ...], str | None]:
    """The signed institutions routing uses, and where they came from: the referral body's
    when it names any (``referral``), else the signing in force on ``day`` (``registry``; the
    latest started when several are), else none."""
    if given:
        return tuple(given), "referral"
    stmt = (
        select(FamilySigning.institution_ids)
        .where(
            FamilySigning.resident_id_hmac == resident_hmac,
            FamilySigning.ended_at.is_(None),
            FamilySigning.valid_from <= day,
            FamilySigning.valid_to >= day,
        )
        .order_by(FamilySigning.valid_from.desc(), FamilySigning.updated_at.desc())
        .limit(1)
    )
    stored = (await session.execute(stmt)).scalar_one_or_none()
    if stored:
        return tuple(stored), "registry"
    return (), None
