"""The cost in front of the patient: what the patient would get back at each ranked candidate
of a routing preview (tier, deductible, ratio, under the policy in force today), decided by the
same rule and from the same input as the tier a referral records (``tiers.referral_tier_input``,
``reimbursement.decide_tier``). Only the target and the first listed alternatives get it, never
the exclusions, so the answer stays bounded."""

from __future__ import annotations

import logging
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import utcnow
from app.db.repositories import registry as registry_repo
from app.domain import reimbursement as rb
from app.domain.enums import InsuranceScheme, Urgency
from app.domain.localtime import today
from app.domain.routing import ALTERNATIVES_LISTED
from app.services.candidates import Source
from app.services.tiers import policy_on, referral_tier_input

log = logging.getLogger("app.tiers")

#: the scheme a preview prices when it names none: 城乡居民基本医疗保险, most patients of a county
DEFAULT_SCHEME = InsuranceScheme("390")


async def add_costs(
    session: AsyncSession,
    source: Source,
    decision: dict[str, Any],
    *,
    scheme: InsuranceScheme | None,
    urgency: str,
    pathway: str | None,
    reason: str | None,
    deductible_paid_in_episode: bool,
    limit: int = ALTERNATIVES_LISTED,
) -> None:
    """Set ``reimbursement`` on the decision's target and first ``limit`` alternatives (None
    where nothing can be quoted: no policy in force, no terms for the scheme)."""
    ranked: list[dict[str, Any]] = [
        *([decision["target"]] if decision.get("target") else []),
        *decision.get("alternatives", [])[:limit],
    ]
    if not ranked:
        return
    for r in ranked:
        r["reimbursement"] = None
    src = await registry_repo.get_institution_row(session, source.id)
    if src is None:
        return
    day = today(utcnow(), source.time_zone)
    try:
        policy = await policy_on(session, source.consortium_id, day)
    except rb.NoPolicyInForce:
        return
    scheme = scheme or DEFAULT_SCHEME
    targets = {
        i.id: i
        for i in await registry_repo.get_institutions(
            session, [r["institution_id"] for r in ranked]
        )
    }
    direction: Literal["up"] = "up"
    for r in ranked:
        target = targets.get(r["institution_id"])
        if target is None:
            continue
        try:
            inp = referral_tier_input(
                scheme=scheme,
                source=src,
                target=target,
                direction=direction,
                urgency=Urgency(urgency),
                pathway=pathway,
                in_consortium=bool(r["in_consortium"]),
                reason=reason,
                deductible_paid_in_episode=deductible_paid_in_episode,
                day=day,
            )
            tier = rb.decide_tier(policy, inp)
        except (rb.MissingTerms, ValueError):
            log.info("no quote for a preview candidate (no terms, or not an up-referral)")
            continue
        words, words_zh = rb.in_words(tier)
        r["reimbursement"] = {
            "scheme": scheme.value,
            "tier": tier.tier.value,
            "ratio": str(tier.ratio),
            "deductible": str(tier.deductible),
            "annual_cap": str(tier.annual_cap),
            "policy_code": tier.policy_code,
            "policy_version": tier.policy_version,
            "policy_is_example": policy.is_example,
            "summary": words,
            "summary_zh": words_zh,
        }
