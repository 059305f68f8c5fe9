"""Referral filing (转院备案) with the medical-insurance platform.

A referral whose recorded tier depends on a filing (the policy's ``filing_tiers``; by default
the referral rates: ``in_consortium_referral``, ``..._primary_rate``,
``referral_out_of_consortium``) gets one filing for its current target, written in the
transaction that recorded the tier: when the target is decided at create, and again whenever
re-routing (a rejection, an expiry, a forwarding, a council placement, a waitlist placement)
changes it. The filing's 2501 message is built then and sealed; the relay (``filing_relay``)
sends it to the consortium's insurance gateway and stores the filing number.

When the referral no longer goes there (re-routed elsewhere, waitlisted, cancelled, no-show,
declined by the patient), the filing is withdrawn in the same transaction: a filed one gets its
2502 cancellation queued (sent before any new filing of the referral), one never filed is only
marked ``superseded``. A consortium without a gateway gets ``manual`` filings: the message is
there to download and enter by hand.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db.base import new_id, utcnow
from app.db.filing_models import InsuranceFiling, InsuranceGateway
from app.db.models import Referral, TierRecord
from app.db.repositories import filings as repo
from app.db.repositories import referrals as referral_repo
from app.db.repositories import registry as registry_repo
from app.domain import insurance_filing as nhsa
from app.domain.enums import Role
from app.domain.errors import Conflict, Forbidden, NotFound
from app.domain.localtime import today
from app.services import outbound, tiers
from app.services.access import can_see
from app.services.auth import Principal
from app.services.crypto import PatientDataProtector
from app.services.egress import Resolver, system_resolve
from app.services.webhooks import SecretBox, check_url

#: the label of the key that seals gateway tokens (its own, not the webhook secrets')
TOKEN_LABEL = b"insurance-gateway-token"
#: states in which a filing stands for its target (withdrawn when the target changes)
STANDING = frozenset({repo.PENDING, repo.FILED, repo.MANUAL})

_REASON_WORDS = {
    "outside_primary_scope": "超出基层诊疗能力",
    "emergency": "急危重症",
    "critical": "危重症",
    "difficult": "疑难病症",
    "major": "重大疾病",
    "patient_request": "患者要求",
}
_CARE_WORDS = {"inpatient": "住院", "outpatient": "门诊", "examination": "检查"}


def protector_of(settings: Settings) -> PatientDataProtector:
    return _protector(settings.secret("patient_data_key"), settings.secret("patient_hmac_key"))


@functools.lru_cache(maxsize=8)
def _protector(data_key: bytes, hmac_key: bytes) -> PatientDataProtector:
    """One protector per pair of keys (deriving them and building the cipher is not free)."""
    return PatientDataProtector(data_key, hmac_key)


def token_box(settings: Settings) -> SecretBox:
    return SecretBox.of(settings, TOKEN_LABEL)


# --- following the referral -----------------------------------------------------------


async def follow(
    session: AsyncSession,
    settings: Settings,
    row: Referral,
    tier: TierRecord | None,
    now: datetime,
    *,
    new: bool = False,
) -> None:
    """After the referral's target (and tier) was decided: keep the filing that stands for
    this target, withdraw the others, and file for the target when its tier needs it.
    ``new``: the referral was inserted in this transaction, so it has no filings yet."""
    wanted = (
        tier is not None
        and row.target_institution_id is not None
        and tier.target_institution_id == row.target_institution_id
        and await tiers.needs_filing(session, tier)
    )
    existing = [] if new else await repo.filings_of(session, row.id)
    kept = False
    for filing in existing:
        if not _standing(filing):
            continue
        if wanted and not kept and filing.target_institution_id == row.target_institution_id:
            kept = True
            continue
        _withdraw(settings, filing, now)
    if wanted and not kept:
        assert tier is not None
        await _file(session, settings, row, tier, now, generation=len(existing) + 1)


async def withdraw(session: AsyncSession, settings: Settings, row: Referral, now: datetime) -> None:
    """The referral ended without care (cancelled, no-show, declined): its filing goes."""
    await follow(session, settings, row, None, now)


def _standing(filing: InsuranceFiling) -> bool:
    return filing.state in STANDING or (filing.state == repo.DEAD and filing.operation == repo.FILE)


def _withdraw(settings: Settings, filing: InsuranceFiling, now: datetime) -> None:
    if filing.state == repo.FILED:
        filing.state = repo.CANCEL_PENDING
        filing.operation = repo.CANCEL
        filing.attempts = 0
        filing.next_attempt_at = now
        filing.give_up_at = outbound.give_up_at(settings, now)
        filing.cancel_requested_at = now
        filing.last_error = filing.last_status_code = filing.last_infcode = None
        return
    # never filed: nothing to cancel. A 2501 that may still be in flight keeps the rest of its
    # lease as next_attempt_at, so a new filing waits until its answer is in (filing_relay)
    in_flight = (
        filing.state == repo.PENDING
        and filing.last_attempt_at is not None
        and filing.last_attempt_at + outbound.lease(settings) > now
    )
    filing.next_attempt_at = (
        filing.last_attempt_at + outbound.lease(settings)
        if in_flight and filing.last_attempt_at is not None
        else None
    )
    filing.state = repo.SUPERSEDED
    filing.superseded_at = now


async def _file(
    session: AsyncSession,
    settings: Settings,
    row: Referral,
    tier: TierRecord,
    now: datetime,
    *,
    generation: int,
) -> InsuranceFiling:
    assert row.target_institution_id is not None
    facts = await _facts(session, settings, row, now)
    filing_id = new_id()
    message = nhsa.file_message(facts, now, generation)
    gateway = await repo.get_gateway(session, row.consortium_id)
    filing = InsuranceFiling(
        id=filing_id,
        referral_id=row.id,
        generation=generation,
        consortium_id=row.consortium_id,
        target_institution_id=row.target_institution_id,
        tier=tier.tier,
        state=repo.PENDING if gateway is not None else repo.MANUAL,
        operation=repo.FILE,
        payload_sealed=protector_of(settings).seal(message, associated=filing_id),
        attempts=0,
        next_attempt_at=now if gateway is not None else None,
        give_up_at=outbound.give_up_at(settings, now) if gateway is not None else None,
        created_at=now,
    )
    repo.add_filing(session, filing)
    return filing


async def _facts(
    session: AsyncSession, settings: Settings, row: Referral, now: datetime
) -> nhsa.FilingFacts:
    assert row.target_institution_id is not None
    source = await registry_repo.get_institution_row(session, row.source_institution_id)
    target = await registry_repo.get_institution_row(session, row.target_institution_id)
    assert source is not None and target is not None
    zone = await registry_repo.consortium_time_zone(session, row.consortium_id)
    sealed = protector_of(settings).open(row.sensitive, associated=row.id)
    patient = sealed.get("patient") or {}
    diagnosis_name = row.diagnosis_name or sealed.get("diagnosis_text") or row.diagnosis_code
    reason = _REASON_WORDS.get(row.reason or "outside_primary_scope", "转诊")
    if row.pathway_code:
        reason = f"绿色通道 {row.pathway_code}"
    care = _CARE_WORDS.get(str(row.care_type), str(row.care_type))
    return nhsa.FilingFacts(
        referral_number=row.number,
        psn_no=patient.get("insurance_number"),
        insutype=str(row.insurance_scheme),
        tel=patient.get("phone"),
        diag_code=row.diagnosis_code,
        diag_name=str(diagnosis_name),
        dise_cond_dscr=sealed.get("clinical_summary"),
        reason=f"{reason}（{diagnosis_name}）",
        opinion=f"同意转往{target.name}{care}",
        source_code=source.insurance_code,
        source_name=source.name,
        target_code=target.insurance_code,
        target_name=target.name,
        source_admdvs=nhsa.admdvs(source.region_code),
        target_admdvs=nhsa.admdvs(target.region_code),
        filed_on=today(now, zone),
        valid_days=settings.insurance_filing_valid_days,
    )


# --- reading and replaying -------------------------------------------------------------


async def _readable(session: AsyncSession, principal: Principal, referral_id: str) -> Referral:
    row = await referral_repo.get(session, referral_id)
    if row is None or not can_see(principal, row):
        raise NotFound("No referral with this id.")
    return row


async def list_filings(
    session: AsyncSession, principal: Principal, referral_id: str
) -> Sequence[InsuranceFiling]:
    await _readable(session, principal, referral_id)
    return await repo.filings_of(session, referral_id)


def _may_enter(principal: Principal, row: Referral) -> bool:
    """Who may take the message for manual entry (it holds patient data): the referring
    institution, which files, its council and admins."""
    if principal.role is Role.ADMIN:
        return True
    if principal.role is Role.COUNCIL:
        return principal.consortium_id == row.consortium_id
    return principal.institution_id == row.source_institution_id


@dataclass(frozen=True, slots=True)
class Payload:
    filing: InsuranceFiling
    referral_number: str
    message: dict[str, Any]


async def payload(
    session: AsyncSession,
    protector: PatientDataProtector,
    principal: Principal,
    referral_id: str,
    filing_id: str,
) -> Payload:
    row = await _readable(session, principal, referral_id)
    filing = await repo.get_filing(session, referral_id, filing_id)
    if filing is None:
        raise NotFound("No filing with this id for this referral.")
    if not _may_enter(principal, row):
        raise Forbidden("The filing message is for the referring institution and its council.")
    message = protector.open(filing.payload_sealed, associated=filing.id)
    return Payload(filing, row.number, message)


async def replay(
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    referral_id: str,
    filing_id: str,
) -> InsuranceFiling:
    """A dead filing (or cancellation) is sent again; a manual one is sent once the consortium
    has a gateway. Council and admin only."""
    row = await _readable(session, principal, referral_id)
    if principal.role not in (Role.COUNCIL, Role.ADMIN):
        raise Forbidden("Filings are replayed by the council or an admin.")
    await referral_repo.get_for_update(session, referral_id)  # in line with the referral's changes
    filing = await repo.get_filing(session, referral_id, filing_id, lock=True)
    if filing is None:
        raise NotFound("No filing with this id for this referral.")
    now = utcnow()
    if filing.state == repo.MANUAL:
        if await repo.get_gateway(session, row.consortium_id) is None:
            raise Conflict("The consortium has no insurance gateway: enter the filing by hand.")
        filing.state = repo.PENDING
    elif filing.state == repo.DEAD:
        filing.state = repo.PENDING if filing.operation == repo.FILE else repo.CANCEL_PENDING
        filing.dead_at = None
    else:
        raise Conflict("Only a dead or manual filing is replayed; this one goes on by itself.")
    filing.attempts = 0
    filing.next_attempt_at = now
    filing.give_up_at = outbound.give_up_at(settings, now)
    await session.flush()
    return filing


# --- gateways --------------------------------------------------------------------------


async def _managed_consortium(
    session: AsyncSession, principal: Principal, consortium_id: str
) -> str:
    if await registry_repo.get_consortium(session, consortium_id) is None:
        raise NotFound("No consortium with this id.")
    if principal.role is Role.ADMIN:
        return consortium_id
    if principal.role is Role.COUNCIL and principal.consortium_id == consortium_id:
        return consortium_id
    raise Forbidden("A consortium's insurance gateway is managed by its council or an admin.")


async def get_gateway(
    session: AsyncSession, principal: Principal, consortium_id: str
) -> InsuranceGateway | None:
    await _managed_consortium(session, principal, consortium_id)
    return await repo.get_gateway(session, consortium_id)


async def put_gateway(
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    consortium_id: str,
    *,
    url: str,
    token: str | None,
    resolver: Resolver = system_resolve,
) -> InsuranceGateway:
    """Set (or replace) the gateway; the URL obeys the webhook egress rules; the token is
    sealed and never shown again."""
    await _managed_consortium(session, principal, consortium_id)
    await check_url(url, settings, resolver)
    now = utcnow()
    sealed = token_box(settings).seal(token, subscription_id=consortium_id) if token else None
    row = await repo.get_gateway(session, consortium_id)
    if row is None:
        row = InsuranceGateway(consortium_id=consortium_id, created_at=now)
        repo.add_gateway(session, row)
    row.url = url
    row.token_sealed = sealed
    row.updated_by_key_id = principal.key_id
    row.updated_at = now
    await session.flush()
    return row


async def delete_gateway(session: AsyncSession, principal: Principal, consortium_id: str) -> None:
    """No gateway from now on: new filings are manual; queued ones wait (and die) unsent."""
    await _managed_consortium(session, principal, consortium_id)
    row = await repo.get_gateway(session, consortium_id)
    if row is not None:
        await repo.delete_gateway(session, row)
