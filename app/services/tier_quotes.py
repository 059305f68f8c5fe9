"""A reimbursement quote without a referral: what a patient would get at an institution with
a referral and without one, side by side, under the policy in force."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.api.schemas.tiers import QuoteIn
from app.db.base import utcnow
from app.db.repositories import registry as registry_repo
from app.domain import reimbursement as rb
from app.domain.enums import InstitutionLevel, InsuranceScheme, Urgency
from app.domain.errors import InvalidInput, NotFound
from app.domain.localtime import DEFAULT_TIME_ZONE, today
from app.services.auth import Principal
from app.services.tiers import policy_on, same_county


async def quote(session: AsyncSession, principal: Principal, body: QuoteIn) -> dict[str, Any]:
    """What a patient would get at an institution with a referral and without, side by side."""
    source_id = body.source_institution_id or principal.institution_id
    if source_id is None:
        raise InvalidInput(
            "Name the source institution.",
            [{"loc": ["body", "source_institution_id"], "msg": "required"}],
        )
    source = await registry_repo.get_institution(session, source_id)
    target = await registry_repo.get_institution(session, body.target_institution_id)
    if source is None or target is None:
        raise NotFound("No institution with this id.")
    zone = DEFAULT_TIME_ZONE
    if source.consortium_id is not None:
        zone = await registry_repo.consortium_time_zone(session, source.consortium_id)
    on = body.on_date or today(utcnow(), zone)
    try:
        policy = await policy_on(session, source.consortium_id, on)
    except rb.NoPolicyInForce as exc:
        raise NotFound("No reimbursement policy is in force on that date.") from exc
    source_rank = InstitutionLevel(source.level).rank
    target_rank = InstitutionLevel(target.level).rank
    if target_rank == source_rank:
        raise InvalidInput(
            "This combination cannot be quoted.",
            [
                {
                    "loc": ["body", "target_institution_id"],
                    "msg": "at the level of the source: neither an up- nor a down-referral",
                }
            ],
        )
    try:
        inp = rb.TierInput(
            scheme=InsuranceScheme(body.scheme),
            source_level=InstitutionLevel(source.level),
            target_level=InstitutionLevel(target.level),
            direction="up" if target_rank > source_rank else "down",
            urgency=Urgency(body.urgency),
            pathway=body.pathway,
            referred=True,
            in_consortium=target.consortium_id == source.consortium_id,
            in_county=same_county(source, target),
            outside_primary_scope=body.outside_primary_scope,
            deductible_paid_in_episode=body.deductible_paid_in_episode,
            item_kind=body.item_kind,
            on_date=on,
        )
        with_ref, without = rb.quote(policy, inp)
    except rb.MissingTerms as exc:
        raise InvalidInput(
            "The reimbursement policy in force gives no terms for this scheme.",
            [{"loc": ["body", "scheme"], "msg": "no terms in the policy in force"}],
        ) from exc
    except ValueError as exc:
        raise InvalidInput(
            "This combination cannot be quoted.", [{"loc": ["body"], "msg": str(exc)[:300]}]
        ) from exc
    return {
        "with_referral": rb.decision_to_dict(with_ref),
        "without_referral": rb.decision_to_dict(without),
        "policy_is_example": policy.is_example,
    }
