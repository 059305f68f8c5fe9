from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from app.api.schemas.common import IsoDate, ResponseModel, StrictModel
from app.api.schemas.national import InsuranceSchemeIn
from app.api.schemas.registry import Id
from app.domain.enums import Urgency


class PolicyIn(StrictModel):
    consortium_id: Id | None = Field(
        None, description="The consortium it applies to; none: everywhere (region-wide)."
    )
    policy: dict[str, Any] = Field(
        description="The policy document (see app/data/policies/example-policy.json); its "
        "version is assigned (previous + 1)."
    )


class PolicyOut(ResponseModel):
    id: str
    code: str
    version: int
    consortium_id: str | None
    effective_from: date
    is_example: bool
    document: dict[str, Any]
    created_at: datetime


class TierOut(ResponseModel):
    tier: str
    deductible: str
    ratio: str
    annual_cap: str
    policy_code: str
    policy_version: int
    rules: list[dict[str, Any]] = Field(description="The rules that fired, in words, with sources.")
    item_terms: list[dict[str, Any]] | None = Field(
        None,
        description="TCM care (specialty 50 and its sub-specialties): the terms of decoctions "
        "(tcm_decoction) and of the non-drug TCM therapies (tcm_non_drug), each decided as a "
        "tier (tier, deductible, ratio, annual_cap, rules), as POST /v1/tiers/quote decides them.",
    )
    target_institution_id: str | None
    decided_at: datetime


class QuoteIn(StrictModel):
    scheme: InsuranceSchemeIn
    target_institution_id: Id
    source_institution_id: Id | None = Field(None, description="Default: the caller's own.")
    urgency: Urgency = Urgency.ROUTINE
    pathway: Annotated[str, StringConstraints(max_length=32)] | None = None
    outside_primary_scope: bool = True
    deductible_paid_in_episode: bool = False
    item_kind: Literal["general", "tcm_decoction", "tcm_non_drug"] = "general"
    on_date: IsoDate | None = None


class QuoteOut(ResponseModel):
    with_referral: dict[str, Any]
    without_referral: dict[str, Any]
    policy_is_example: bool


class TierListingRow(ResponseModel):
    referral_id: str
    referral_number: str
    consortium_id: str
    direction: str
    insurance_scheme: str = Field(
        description="险种类型 code (see the referral's insurance_scheme)."
    )
    insurance_scheme_name: str
    source_institution_id: str
    target_institution_id: str | None
    target_insurance_code: str | None = Field(
        description="The target's medical-insurance designated-institution code (H + region + "
        "sequence), for matching with the insurance bureau's records; null when not registered."
    )
    tier: str
    deductible: str
    ratio: str
    policy_code: str
    policy_version: int
    decided_at: datetime
