"""Differential reimbursement: policies as versioned data, the tier decided and recorded on
every referral when its target is decided, and quotes without a referral."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import utcnow
from app.db.models import Institution, Referral, ReimbursementPolicy, TierRecord
from app.db.repositories import registry as registry_repo
from app.db.repositories import tiers as repo
from app.domain import reimbursement as rb
from app.domain.enums import InstitutionLevel, InsuranceScheme, Role, Urgency
from app.domain.errors import Forbidden, InvalidInput
from app.domain.localtime import today
from app.services import events
from app.services import registry as registry_service
from app.services.auth import Principal

log = logging.getLogger("app.tiers")
EXAMPLE_POLICY = (
    Path(__file__).resolve().parent.parent / "data" / "policies" / "example-policy.json"
)


async def load_example_policy(session: AsyncSession) -> bool:
    """Demo mode: the example policy (clearly marked as an example), for every consortium."""
    data = json.loads(await asyncio.to_thread(EXAMPLE_POLICY.read_text, encoding="utf-8"))
    policy = rb.policy_from_dict(data)
    if await repo.max_version(session, policy.code) >= policy.version:
        return False
    repo.add_policy(
        session,
        ReimbursementPolicy(
            code=policy.code,
            version=policy.version,
            consortium_id=None,
            effective_from=policy.effective_from,
            is_example=policy.is_example,
            document=rb.policy_to_dict(policy),
            created_at=utcnow(),
        ),
    )
    await session.flush()
    return True


# parsed policy documents by row id: a policy row is written once and never changed (a change
# is a new version, a new row), so its parsed form can be kept for the life of the process.
# Which rows exist is asked every time (``policy_on``): a version another process wrote is
# seen at once.
_PARSED: dict[str, rb.Policy] = {}
_PARSED_MAX = 512
#: the policies that decided the tiers recorded in a transaction, by code and version
_DECIDED_BY = "tier_policies"


def _parsed(row: ReimbursementPolicy) -> rb.Policy:
    policy = _PARSED.get(row.id)
    if policy is None:
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        policy = _PARSED[row.id] = rb.policy_from_dict(row.document)
    return policy


async def policy_on(session: AsyncSession, consortium_id: str | None, on: date) -> rb.Policy:
    """The policy in force on ``on``: the ids of the policies that apply are read (one small
    statement), the documents only for ids not parsed before."""
    ids = await repo.policy_ids_for(session, consortium_id)
    missing = [i for i in ids if i not in _PARSED]
    if missing:
        for row in await repo.policies_by_id(session, missing):
            _parsed(row)
    policies = [_PARSED.get(i) for i in ids]
    if any(p is None for p in policies):  # evicted in between: read them all
        rows = await repo.policies_for(session, consortium_id)
        return rb.policy_in_force([_parsed(r) for r in rows], on)
    return rb.policy_in_force([p for p in policies if p is not None], on)


def same_county(a: Institution, b: Institution) -> bool:
    if not a.region_code or not b.region_code:
        return True
    return a.region_code[:6] == b.region_code[:6]


#: the specialty of TCM care (GB/T catalogue 50 中医科) and its sub-specialties
TCM_SPECIALTY = "50"
#: the item kinds whose own terms a TCM referral's tier carries beside its general terms
TCM_ITEM_KINDS: tuple[rb.ItemKind, ...] = ("tcm_decoction", "tcm_non_drug")


def is_tcm_care(specialty_code: str) -> bool:
    return specialty_code == TCM_SPECIALTY or specialty_code.startswith(TCM_SPECIALTY + ".")


async def _tier_input(
    session: AsyncSession, row: Referral, now: datetime, *, new_episode: bool
) -> tuple[rb.Policy, rb.TierInput] | None:
    """The policy in force and the tier input for the referral's current target, or None
    (no target, no policy in force)."""
    if row.target_institution_id is None:
        return None
    source = await registry_repo.get_institution_row(session, row.source_institution_id)
    target = await registry_repo.get_institution_row(session, row.target_institution_id)
    assert source is not None and target is not None
    day = today(now, await registry_repo.consortium_time_zone(session, row.consortium_id))
    try:
        policy = await policy_on(session, row.consortium_id, day)
    except rb.NoPolicyInForce:
        log.info("no reimbursement policy in force; tier not recorded")
        return None
    inp = referral_tier_input(
        scheme=InsuranceScheme(row.insurance_scheme),
        source=source,
        target=target,
        direction="down" if row.direction == "down" else "up",
        urgency=Urgency(row.urgency),
        pathway=row.pathway_code,
        in_consortium=not row.out_of_consortium,
        reason=row.reason,
        deductible_paid_in_episode=False
        if new_episode
        else await repo.deductible_paid_in_episode(session, row.episode_id, row.id),
        day=day,
    )
    return policy, inp


def referral_tier_input(
    *,
    scheme: InsuranceScheme,
    source: Institution,
    target: Institution,
    direction: Literal["up", "down"],
    urgency: Urgency,
    pathway: str | None,
    in_consortium: bool,
    reason: str | None,
    deductible_paid_in_episode: bool,
    day: date,
) -> rb.TierInput:
    """The tier input of a referral from ``source`` to ``target``: the one place a referral's
    particulars become the reimbursement rule's input (the recorded tier and the routing
    preview's cost per candidate both use it)."""
    return rb.TierInput(
        scheme=scheme,
        source_level=InstitutionLevel(source.level),
        target_level=InstitutionLevel(target.level),
        direction=direction,
        urgency=urgency,
        pathway=pathway,
        referred=True,
        in_consortium=in_consortium,
        in_county=same_county(source, target),
        outside_primary_scope=(reason or "outside_primary_scope") != "patient_request",
        patient_request=reason == "patient_request",
        deductible_paid_in_episode=deductible_paid_in_episode,
        on_date=day,
    )


def _decide(policy: rb.Policy, inp: rb.TierInput) -> rb.TierDecision | None:
    try:
        return rb.decide_tier(policy, inp)
    except rb.MissingTerms:
        # e.g. a national scheme code (392, 510, ...) the local policy has no figures for: the
        # referral goes ahead and the tier stays unrecorded, as with no policy in force
        log.info("the reimbursement policy has no terms for this scheme; tier not recorded")
        return None


async def decide_for(
    session: AsyncSession, row: Referral, now: datetime, *, new_episode: bool = False
) -> rb.TierDecision | None:
    """The tier for the referral's current target under the policy in force now
    (``new_episode``: the episode was opened with this referral, so nothing was paid in it)."""
    found = await _tier_input(session, row, now, new_episode=new_episode)
    return None if found is None else _decide(*found)


def item_terms(policy: rb.Policy, inp: rb.TierInput) -> list[dict[str, Any]]:
    """For TCM care, the terms of decoctions and of the non-drug therapies, each decided like
    the tier with that item kind (the same rules the quote applies)."""
    out = []
    for kind in TCM_ITEM_KINDS:
        decision = _decide(policy, replace(inp, item_kind=kind))
        if decision is not None:
            out.append({"item_kind": kind, **rb.decision_to_dict(decision)})
    return out


async def record_for(
    session: AsyncSession, row: Referral, now: datetime, *, new_episode: bool = False
) -> TierRecord | None:
    """Record the tier (a new row, history kept) and say so in the referral's events. A
    referral for TCM care records the terms of its TCM items too (``item_terms``)."""
    found = await _tier_input(session, row, now, new_episode=new_episode)
    decision = None if found is None else _decide(*found)
    if found is None or decision is None:
        return None
    decided_by = session.info.setdefault(_DECIDED_BY, {})
    decided_by[(decision.policy_code, decision.policy_version)] = found[0]
    data = rb.decision_to_dict(decision)
    record = TierRecord(
        referral_id=row.id,
        target_institution_id=row.target_institution_id,
        tier=str(decision.tier),
        deductible=data["deductible"],
        ratio=data["ratio"],
        annual_cap=data["annual_cap"],
        policy_code=decision.policy_code,
        policy_version=decision.policy_version,
        rules=data["rules"],
        item_terms=item_terms(*found) if is_tcm_care(row.specialty_code) else None,
        decided_at=now,
    )
    repo.add_record(session, record)
    events.record(
        session,
        row,
        "tier_decided",
        row.status,
        at=now,
        reason_code=str(decision.tier),
        reason=f"{decision.tier}: ratio {data['ratio']}, deductible {data['deductible']} "
        f"(policy {decision.policy_code} v{decision.policy_version})",
        notify=False,
    )
    return record


async def needs_filing(session: AsyncSession, record: TierRecord) -> bool:
    """Whether the recorded tier depends on a referral filing (转院备案) under the policy that
    decided it (its ``filing_tiers``)."""
    decided_by: dict[tuple[str, int], rb.Policy] = session.info.get(_DECIDED_BY, {})
    known = decided_by.get((record.policy_code, record.policy_version))
    if known is not None:  # the policy that decided it in this transaction: not read again
        return known.needs_filing(record.tier)
    row = await repo.policy_version(session, record.policy_code, record.policy_version)
    if row is None:
        return record.tier in rb.DEFAULT_FILING_TIERS
    return _parsed(row).needs_filing(record.tier)


async def list_policies(
    session: AsyncSession, principal: Principal, consortium_id: str | None
) -> list[ReimbursementPolicy]:
    consortium_id = await registry_service.consortium_ref(session, consortium_id)
    if principal.role not in (Role.ADMIN, Role.INSURER) and consortium_id is None:
        consortium_id = principal.consortium_id
    return list(await repo.policies_for(session, consortium_id))


async def create_policy(
    session: AsyncSession, principal: Principal, consortium_id: str | None, document: dict[str, Any]
) -> ReimbursementPolicy:
    """A new version (the council for its consortium, the insurer, an admin)."""
    if principal.role is Role.COUNCIL:
        if consortium_id != principal.consortium_id:
            raise Forbidden("A council writes policies for its own consortium.")
    elif principal.role not in (Role.INSURER, Role.ADMIN):
        raise Forbidden("Policies are written by the council, the insurer or an admin.")
    if (
        consortium_id is not None
        and await registry_repo.get_consortium(session, consortium_id) is None
    ):
        raise InvalidInput(
            "Unknown consortium.", [{"loc": ["body", "consortium_id"], "msg": "no such consortium"}]
        )
    code = document.get("code")
    if not isinstance(code, str) or not rb.POLICY_CODE.fullmatch(code):
        raise InvalidInput(
            "The policy code is not valid.",
            [{"loc": ["body", "policy", "code"], "msg": f"must match {rb.POLICY_CODE.pattern}"}],
        )
    document = {**document, "version": await repo.max_version(session, code) + 1}
    try:
        policy = rb.policy_from_dict(document)
    except ValueError as exc:
        raise InvalidInput(
            "The policy document is not valid.",
            [{"loc": ["body", "policy"], "msg": str(exc)[:300]}],
        ) from exc
    row = ReimbursementPolicy(
        code=policy.code,
        version=policy.version,
        consortium_id=consortium_id,
        effective_from=policy.effective_from,
        is_example=policy.is_example,
        document=rb.policy_to_dict(policy),
        created_at=utcnow(),
        created_by=principal.key_id,
    )
    repo.add_policy(session, row)
    await session.flush()
    return row
