"""Differential reimbursement tier: which deductible, ratio and cap apply to a piece of care.

:func:`decide_tier` is a pure function of a :class:`Policy` (a versioned set of figures and flags
published by the local medical-insurance bureau) and a :class:`TierInput` (the care and how the
patient got there). It reads no clock, no file and no database: the input carries ``on_date``.
Every rule that changed the outcome is recorded as a :class:`FiredRule` with plain words and the
source sentence it comes from, so the decision can be stored with the referral and explained.

Rule order. The rules apply in this order; the first matching tier rule (step 3) decides the tier:

1. ``self_pay``: the self-pay scheme has no terms: tier ``self_pay``, deductible 0, ratio 0,
   cap 0. Nothing else applies.
2. ``differential_payment``: the base terms are ``policy.terms[scheme][target_level]`` (ratios
   tilted toward primary care).
3. Tier (the first that matches):

   a. referred (``referred`` and ``direction`` up or down), target outside the consortium:
      ``referral_out_of_consortium``, ratio = base - ``out_of_consortium_with_referral_ratio_cut``
      (rule ``out_of_consortium_with_referral_ratio_cut``);
   b. referred down inside the consortium: ``down_referral``, the target level's terms
      (rule ``down_referral``);
   c. referred up inside the consortium: ``in_consortium_referral``, base terms
      (rule ``in_consortium_referral``);
   d. not referred, target outside the county: ``out_of_county_without_referral``, ratio =
      ``out_of_county_without_referral_ratio``, but never more than the same care would get in
      another tier (without referral inside the county, or referred out of the consortium), so it
      is always the lowest (rule ``out_of_county_without_referral_ratio``);
   e. not referred, target at village or primary level: ``primary_direct``, base terms
      (rule ``primary_direct``);
   f. not referred, target above primary level, in the county: ``self_referral``, ratio =
      base - ``self_referral_ratio_cut`` (rule ``self_referral_ratio_cut``).

4. ``primary_rate_for_referred_up`` (flag): in tier c, when the source is a village clinic or a
   primary institution, the target is in the county (the source sentence speaks of "the higher
   hospitals in the county"), and the reason is a condition outside primary scope, an emergency
   (``urgency`` emergency) or a green-channel pathway, the ratio becomes the primary level's ratio
   of the same scheme (the township health centre policy) when that is higher than the base ratio;
   the tier becomes ``in_consortium_referral_primary_rate``. Deductible and cap stay the target's.
5. ``deductible_once_per_episode`` (flag): in tiers b and c (referrals inside the consortium),
   when the deductible was already paid in this episode, the deductible is 0 ("continuous
   calculation within the alliance"; no second starting line). Care without referral, or outside
   the consortium, starts a new episode: the full deductible applies.
6. ``tcm_decoction_ratio``: for ``item_kind`` ``tcm_decoction``, ratio = max(ratio,
   ``tcm_decoction_ratio``).
7. ``tcm_non_drug_no_deductible`` (flag): for ``item_kind`` ``tcm_non_drug``, deductible 0.

   Steps 6 and 7 are local TCM policies: they do not apply in tier
   ``out_of_county_without_referral`` (which must stay the lowest).
8. ``ratio_bounds``: the ratio is clamped to [0, 1] (a cut larger than the base ratio gives 0).

A rule is recorded only when it applied (step 4 only when it raised the ratio, step 5 only when
it waived a deductible, step 6 only when it raised the ratio, step 8 only when it clamped). The
source of a recorded rule is ``policy.sources[rule]`` when the policy gives one, otherwise the
module's default reference to the seed documents.

:func:`quote` puts the same care with the referral and without it side by side.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, Literal, get_args

from app.domain.enums import InstitutionLevel, InsuranceScheme, Urgency
from app.domain.national_codes import scheme_name_en, scheme_of

Direction = Literal["up", "down", "none"]
ItemKind = Literal["general", "tcm_decoction", "tcm_non_drug"]

_DIRECTIONS: Final[frozenset[str]] = frozenset(get_args(Direction))
_ITEM_KINDS: Final[frozenset[str]] = frozenset(get_args(ItemKind))
_ZERO: Final = Decimal(0)
_ONE: Final = Decimal(1)
POLICY_CODE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""Codes of new policies (shown in CSV exports): letters, digits, `_`, `.`, `-`; no formula.
Checked where a policy is submitted, not on stored ones."""
_PRIMARY_LEVELS: Final = frozenset({InstitutionLevel.VILLAGE, InstitutionLevel.PRIMARY})


class TierCode(StrEnum):
    IN_CONSORTIUM_REFERRAL = "in_consortium_referral"
    IN_CONSORTIUM_REFERRAL_PRIMARY_RATE = "in_consortium_referral_primary_rate"
    REFERRAL_OUT_OF_CONSORTIUM = "referral_out_of_consortium"
    SELF_REFERRAL = "self_referral"
    OUT_OF_COUNTY_WITHOUT_REFERRAL = "out_of_county_without_referral"
    PRIMARY_DIRECT = "primary_direct"
    DOWN_REFERRAL = "down_referral"
    SELF_PAY = "self_pay"


#: The tiers whose terms depend on a referral filed with the medical-insurance platform
#: (转院备案, transaction 2501): the referral rates. A policy may name its own (``filing_tiers``);
#: without, these. Care without referral, self-pay and the down-referral (which keeps the
#: referring episode inside the consortium) are not filed.
DEFAULT_FILING_TIERS: Final = frozenset(
    {
        TierCode.IN_CONSORTIUM_REFERRAL,
        TierCode.IN_CONSORTIUM_REFERRAL_PRIMARY_RATE,
        TierCode.REFERRAL_OUT_OF_CONSORTIUM,
    }
)


class Rule(StrEnum):
    """Names of the rules; also the keys of :attr:`Policy.sources`."""

    SELF_PAY = "self_pay"
    DIFFERENTIAL_PAYMENT = "differential_payment"
    OUT_OF_CONSORTIUM_WITH_REFERRAL_RATIO_CUT = "out_of_consortium_with_referral_ratio_cut"
    DOWN_REFERRAL = "down_referral"
    IN_CONSORTIUM_REFERRAL = "in_consortium_referral"
    OUT_OF_COUNTY_WITHOUT_REFERRAL_RATIO = "out_of_county_without_referral_ratio"
    PRIMARY_DIRECT = "primary_direct"
    SELF_REFERRAL_RATIO_CUT = "self_referral_ratio_cut"
    PRIMARY_RATE_FOR_REFERRED_UP = "primary_rate_for_referred_up"
    PATIENT_REQUEST = "patient_request"
    DEDUCTIBLE_ONCE_PER_EPISODE = "deductible_once_per_episode"
    TCM_DECOCTION_RATIO = "tcm_decoction_ratio"
    TCM_NON_DRUG_NO_DEDUCTIBLE = "tcm_non_drug_no_deductible"
    RATIO_BOUNDS = "ratio_bounds"


#: Used when a policy gives no source for a rule: the policy document (000-004, as numbered in
#: these texts) that each rule comes from.
DEFAULT_SOURCES: Final[Mapping[str, str]] = MappingProxyType(
    {
        Rule.SELF_PAY: "002: the basic medical insurance schemes (self-pay is outside them)",
        Rule.DIFFERENTIAL_PAYMENT: (
            "002: differential payment mechanism, payment ratios tilted toward primary care"
        ),
        Rule.OUT_OF_CONSORTIUM_WITH_REFERRAL_RATIO_CUT: (
            "003 Zhenghe: primary institutions give priority to referral within the consortium"
        ),
        Rule.DOWN_REFERRAL: "003: two-way referral within the consortium",
        Rule.IN_CONSORTIUM_REFERRAL: "003: two-way referral within the consortium",
        Rule.OUT_OF_COUNTY_WITHOUT_REFERRAL_RATIO: (
            "002: raise in-county treatment and reduce out-of-county referrals"
        ),
        Rule.PRIMARY_DIRECT: "002: guide the public's first visit to the grassroots level",
        Rule.SELF_REFERRAL_RATIO_CUT: (
            "003 Huangzhong: gap between county and township deductible and ratio widened"
        ),
        Rule.PRIMARY_RATE_FOR_REFERRED_UP: (
            "003 policy support item 2: reimbursed in accordance with the township health "
            "centre policy"
        ),
        Rule.PATIENT_REQUEST: (
            "003 policy support item 2: the township rate is for conditions outside primary "
            "care's scope and emergencies; a referral at the patient's own request is neither"
        ),
        Rule.DEDUCTIBLE_ONCE_PER_EPISODE: (
            "003: cancel the second starting line; 004: continuous calculation within the alliance"
        ),
        Rule.TCM_DECOCTION_RATIO: "004 Sanming: TCM decoctions reimbursed at 80%",
        Rule.TCM_NON_DRUG_NO_DEDUCTIBLE: (
            "004 Sanming: 24 non-drug TCM therapies reimbursed without deductible"
        ),
        Rule.RATIO_BOUNDS: "a reimbursement ratio lies between 0 and 1",
    }
)


class NoPolicyInForce(LookupError):
    """No policy is in force on the date asked for."""

    def __init__(self, on: date, detail: str | None = None) -> None:
        super().__init__(detail or f"no reimbursement policy is in force on {on.isoformat()}")
        self.on = on


class MissingTerms(LookupError):
    """The policy gives no terms for the scheme and level asked for."""

    def __init__(self, policy_code: str, scheme: InsuranceScheme, level: InstitutionLevel) -> None:
        super().__init__(
            f"policy {policy_code} gives no terms for scheme {scheme.value} at level {level.value}"
        )
        self.scheme = scheme
        self.level = level


def _check_fraction(name: str, value: Decimal) -> None:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValueError(f"{name} must be a finite Decimal")
    if not _ZERO <= value <= _ONE:
        raise ValueError(f"{name} must lie between 0 and 1")


def _check_amount(name: str, value: Decimal) -> None:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValueError(f"{name} must be a finite Decimal")
    if value < _ZERO:
        raise ValueError(f"{name} must not be negative")


@dataclass(frozen=True, slots=True)
class LevelTerms:
    """What one scheme pays at one institution level: yuan, a ratio in 0..1, yuan per year."""

    deductible: Decimal
    ratio: Decimal
    annual_cap: Decimal

    def __post_init__(self) -> None:
        _check_amount("deductible", self.deductible)
        _check_fraction("ratio", self.ratio)
        _check_amount("annual_cap", self.annual_cap)


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """One version of a region's (or consortium's) reimbursement policy.

    ``terms`` holds no entry for the self-pay scheme. Mappings are copied into read-only views.
    Ratio cuts are ratio points (0.10 = ten points); ``out_of_county_without_referral_ratio`` and
    ``tcm_decoction_ratio`` are absolute ratios.
    """

    code: str
    version: int
    effective_from: date
    region_or_consortium: str
    is_example: bool
    terms: Mapping[InsuranceScheme, Mapping[InstitutionLevel, LevelTerms]]
    deductible_once_per_episode: bool
    primary_rate_for_referred_up: bool
    self_referral_ratio_cut: Decimal
    out_of_consortium_with_referral_ratio_cut: Decimal
    out_of_county_without_referral_ratio: Decimal
    tcm_decoction_ratio: Decimal
    tcm_non_drug_no_deductible: bool
    sources: Mapping[str, str] = field(default_factory=dict)
    note: str = ""
    #: the tiers that need a referral filing with the medical-insurance platform
    filing_tiers: frozenset[TierCode] = DEFAULT_FILING_TIERS

    def __post_init__(self) -> None:
        if not self.code:
            raise ValueError("code must not be empty")
        if isinstance(self.version, bool) or not isinstance(self.version, int):
            raise ValueError("version must be an integer")
        if self.version < 1:
            raise ValueError("version must be at least 1")
        if InsuranceScheme.SELF_PAY in self.terms:
            raise ValueError("the self-pay scheme has no terms")
        frozen: dict[InsuranceScheme, Mapping[InstitutionLevel, LevelTerms]] = {}
        for scheme, by_level in self.terms.items():
            if not isinstance(scheme, InsuranceScheme):
                raise ValueError("terms: a key is not an InsuranceScheme")
            for level, terms in by_level.items():
                if not isinstance(level, InstitutionLevel):
                    raise ValueError(f"terms[{scheme.value}]: a key is not an InstitutionLevel")
                if not isinstance(terms, LevelTerms):
                    raise ValueError(f"terms[{scheme.value}][{level.value}] is not LevelTerms")
            frozen[scheme] = MappingProxyType(dict(by_level))
        object.__setattr__(self, "terms", MappingProxyType(frozen))
        object.__setattr__(self, "sources", MappingProxyType(dict(self.sources)))
        _check_fraction("self_referral_ratio_cut", self.self_referral_ratio_cut)
        _check_fraction(
            "out_of_consortium_with_referral_ratio_cut",
            self.out_of_consortium_with_referral_ratio_cut,
        )
        _check_fraction(
            "out_of_county_without_referral_ratio", self.out_of_county_without_referral_ratio
        )
        _check_fraction("tcm_decoction_ratio", self.tcm_decoction_ratio)
        if not all(isinstance(t, TierCode) for t in self.filing_tiers):
            raise ValueError("filing_tiers: a value is not a TierCode")
        object.__setattr__(self, "filing_tiers", frozenset(self.filing_tiers))

    def needs_filing(self, tier: str) -> bool:
        """Whether care in ``tier`` depends on a referral filing (转院备案)."""
        return tier in self.filing_tiers

    def terms_for(self, scheme: InsuranceScheme, level: InstitutionLevel) -> LevelTerms:
        try:
            return self.terms[scheme][level]
        except KeyError:
            raise MissingTerms(self.code, scheme, level) from None

    def source_of(self, rule: str) -> str:
        return self.sources.get(rule) or DEFAULT_SOURCES.get(rule, "")


@dataclass(frozen=True, slots=True, kw_only=True)
class TierInput:
    """The care to price and how the patient got there.

    ``referred`` and ``direction`` must agree (``direction`` is ``none`` exactly when the patient
    comes without referral); a referral needs ``source_level``, above it for ``up`` and below it
    for ``down``. Without referral ``source_level`` is ignored. ``pathway`` is a green-channel
    pathway code and counts as an emergency.
    """

    scheme: InsuranceScheme
    source_level: InstitutionLevel | None
    target_level: InstitutionLevel
    direction: Direction
    urgency: Urgency
    pathway: str | None
    referred: bool
    in_consortium: bool
    in_county: bool
    outside_primary_scope: bool
    deductible_paid_in_episode: bool
    item_kind: ItemKind = "general"
    on_date: date
    #: referred up at the patient's own request (``reason: patient_request``), so not for a
    #: condition outside primary care's scope: said in the rules when it costs the primary rate
    patient_request: bool = False

    def __post_init__(self) -> None:
        if self.direction not in _DIRECTIONS:
            raise ValueError(f"direction must be one of {sorted(_DIRECTIONS)}")
        if self.item_kind not in _ITEM_KINDS:
            raise ValueError(f"item_kind must be one of {sorted(_ITEM_KINDS)}")
        if self.referred != (self.direction != "none"):
            raise ValueError("referred must be true exactly when direction is up or down")
        if not self.referred:
            return
        if self.source_level is None:
            raise ValueError("a referral needs source_level")
        if self.direction == "up" and self.target_level.rank <= self.source_level.rank:
            raise ValueError("an up-referral goes to a higher level than its source")
        if self.direction == "down" and self.target_level.rank >= self.source_level.rank:
            raise ValueError("a down-referral goes to a lower level than its source")


@dataclass(frozen=True, slots=True)
class FiredRule:
    rule: str
    words: str
    source: str


@dataclass(frozen=True, slots=True)
class TierDecision:
    tier: TierCode
    deductible: Decimal
    ratio: Decimal
    annual_cap: Decimal
    policy_code: str
    policy_version: int
    rules: tuple[FiredRule, ...]


# --- words -------------------------------------------------------------------------------------

_LEVEL_WORDS: Final[Mapping[InstitutionLevel, str]] = MappingProxyType(
    {
        InstitutionLevel.VILLAGE: "village clinic",
        InstitutionLevel.PRIMARY: "primary level (township or community health centre)",
        InstitutionLevel.SECONDARY: "secondary level (county hospital)",
        InstitutionLevel.TERTIARY: "tertiary level",
    }
)


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _pct(ratio: Decimal) -> str:
    return f"{_plain(ratio * 100)}%"


def _points(cut: Decimal) -> str:
    return f"{_plain(cut * 100)} points"


def _yuan(amount: Decimal) -> str:
    return f"{_plain(amount)} yuan"


def in_words(decision: TierDecision) -> tuple[str, str]:
    """The terms as a clinic says them before sending: "85% after ¥500" and "报销 85%，起付线
    ¥500" (no deductible: "85%, no deductible")."""
    pct = _pct(decision.ratio)
    if decision.deductible > 0:
        amount = decision.deductible.normalize()
        yuan = f"¥{amount:,f}" if amount != amount.to_integral() else f"¥{int(amount):,}"
        return f"{pct} after {yuan}", f"报销 {pct}，起付线 {yuan}"
    return f"{pct}, no deductible", f"报销 {pct}，无起付线"


def _clamp(ratio: Decimal) -> Decimal:
    return max(_ZERO, min(_ONE, ratio))


# --- the decision ------------------------------------------------------------------------------


def decide_tier(policy: Policy, inp: TierInput) -> TierDecision:
    """The tier, deductible, ratio and cap for ``inp`` under ``policy``; see the module docstring.

    Raises :class:`NoPolicyInForce` when ``inp.on_date`` is before ``policy.effective_from`` and
    :class:`MissingTerms` when the policy has no terms for the scheme and a level it needs.
    """
    if inp.on_date < policy.effective_from:
        raise NoPolicyInForce(
            inp.on_date,
            f"policy {policy.code} v{policy.version} takes effect on "
            f"{policy.effective_from.isoformat()}, after {inp.on_date.isoformat()}",
        )
    fired: list[FiredRule] = []

    def fire(rule: Rule, words: str) -> None:
        fired.append(FiredRule(rule.value, words, policy.source_of(rule)))

    # 1. self-pay
    if inp.scheme is InsuranceScheme.SELF_PAY:
        fire(Rule.SELF_PAY, "Self-pay patient: no insurance scheme pays; ratio 0%.")
        return TierDecision(
            TierCode.SELF_PAY, _ZERO, _ZERO, _ZERO, policy.code, policy.version, tuple(fired)
        )

    # 2. base terms
    base = policy.terms_for(inp.scheme, inp.target_level)
    level_words = _LEVEL_WORDS[inp.target_level]
    fire(
        Rule.DIFFERENTIAL_PAYMENT,
        f"Base terms of {scheme_name_en(inp.scheme)} at the {level_words}: deductible "
        f"{_yuan(base.deductible)}, ratio {_pct(base.ratio)}, annual cap {_yuan(base.annual_cap)}.",
    )
    deductible = base.deductible
    ratio = base.ratio
    continuity = False  # step 5 applies

    # 3. tier
    if inp.referred and not inp.in_consortium:
        tier = TierCode.REFERRAL_OUT_OF_CONSORTIUM
        cut = policy.out_of_consortium_with_referral_ratio_cut
        ratio = base.ratio - cut
        fire(
            Rule.OUT_OF_CONSORTIUM_WITH_REFERRAL_RATIO_CUT,
            f"Referred to an institution outside the consortium: the ratio is cut by "
            f"{_points(cut)}; the full deductible applies.",
        )
    elif inp.referred and inp.direction == "down":
        tier = TierCode.DOWN_REFERRAL
        continuity = True
        fire(
            Rule.DOWN_REFERRAL,
            f"Referred down inside the consortium: the terms of the {level_words} apply.",
        )
    elif inp.referred:
        tier = TierCode.IN_CONSORTIUM_REFERRAL
        continuity = True
        fire(
            Rule.IN_CONSORTIUM_REFERRAL,
            f"Referred up inside the consortium: the terms of the {level_words} apply.",
        )
        # 4. primary rate for referred-up patients
        reasons: list[str] = []
        if inp.outside_primary_scope:
            reasons.append("a condition outside primary care's scope")
        if inp.urgency is Urgency.EMERGENCY:
            reasons.append("an emergency")
        if inp.pathway:
            reasons.append(f"green-channel pathway {inp.pathway}")
        eligible = (
            policy.primary_rate_for_referred_up
            and inp.source_level in _PRIMARY_LEVELS
            and inp.in_county
        )
        if eligible and not reasons and inp.patient_request:
            fire(
                Rule.PATIENT_REQUEST,
                "Referred up at the patient's own request (reason patient_request), not for a "
                "condition outside primary care's scope or an emergency: the primary level's "
                "rate for referred-up patients does not apply.",
            )
        if eligible and reasons:
            primary = policy.terms_for(inp.scheme, InstitutionLevel.PRIMARY)
            if primary.ratio > ratio:
                ratio = primary.ratio
                tier = TierCode.IN_CONSORTIUM_REFERRAL_PRIMARY_RATE
                fire(
                    Rule.PRIMARY_RATE_FOR_REFERRED_UP,
                    f"Referred up from primary care for {' and '.join(reasons)}: reimbursed at "
                    f"the primary level's ratio {_pct(primary.ratio)} instead of "
                    f"{_pct(base.ratio)}.",
                )
    elif not inp.in_county:
        tier = TierCode.OUT_OF_COUNTY_WITHOUT_REFERRAL
        in_county_ratio = (
            base.ratio
            if inp.target_level in _PRIMARY_LEVELS
            else base.ratio - policy.self_referral_ratio_cut
        )
        ratio = min(
            policy.out_of_county_without_referral_ratio,
            in_county_ratio,
            base.ratio - policy.out_of_consortium_with_referral_ratio_cut,
        )
        fire(
            Rule.OUT_OF_COUNTY_WITHOUT_REFERRAL_RATIO,
            f"Care outside the county without referral: the lowest ratio, {_pct(_clamp(ratio))} "
            f"(the policy's {_pct(policy.out_of_county_without_referral_ratio)}, never more than "
            f"the same care in any other tier); the full deductible applies.",
        )
    elif inp.target_level in _PRIMARY_LEVELS:
        tier = TierCode.PRIMARY_DIRECT
        fire(
            Rule.PRIMARY_DIRECT,
            f"Care at the {level_words}: no referral is needed; the base terms apply.",
        )
    else:
        tier = TierCode.SELF_REFERRAL
        cut = policy.self_referral_ratio_cut
        ratio = base.ratio - cut
        fire(
            Rule.SELF_REFERRAL_RATIO_CUT,
            f"Came to the {level_words} past primary care without referral: the ratio is cut by "
            f"{_points(cut)}; the full deductible applies.",
        )

    # 5. deductible once per episode
    if (
        continuity
        and policy.deductible_once_per_episode
        and inp.deductible_paid_in_episode
        and deductible > _ZERO
    ):
        fire(
            Rule.DEDUCTIBLE_ONCE_PER_EPISODE,
            f"The deductible was already paid in this episode inside the consortium: no second "
            f"deductible (instead of {_yuan(deductible)}).",
        )
        deductible = _ZERO

    # 6, 7. TCM
    local = tier is not TierCode.OUT_OF_COUNTY_WITHOUT_REFERRAL
    if local and inp.item_kind == "tcm_decoction" and policy.tcm_decoction_ratio > ratio:
        fire(
            Rule.TCM_DECOCTION_RATIO,
            f"TCM decoction: reimbursed at {_pct(policy.tcm_decoction_ratio)} "
            f"instead of {_pct(_clamp(ratio))}.",
        )
        ratio = policy.tcm_decoction_ratio
    if (
        local
        and inp.item_kind == "tcm_non_drug"
        and policy.tcm_non_drug_no_deductible
        and deductible > _ZERO
    ):
        fire(
            Rule.TCM_NON_DRUG_NO_DEDUCTIBLE,
            f"Non-drug TCM therapy: no deductible (instead of {_yuan(deductible)}).",
        )
        deductible = _ZERO

    # 8. bounds
    bounded = _clamp(ratio)
    if bounded != ratio:
        fire(Rule.RATIO_BOUNDS, f"The ratio {_pct(ratio)} is brought within 0%..100%.")
        ratio = bounded

    return TierDecision(
        tier, deductible, ratio, base.annual_cap, policy.code, policy.version, tuple(fired)
    )


def quote(policy: Policy, with_referral: TierInput) -> tuple[TierDecision, TierDecision]:
    """The same care with the referral and without it (no source, direction ``none``).

    Everything else (scheme, target, urgency, pathway, consortium and county, item, date) stays
    the same. When ``with_referral`` is not a referral, both decisions are the same.
    """
    without = TierInput(
        scheme=with_referral.scheme,
        source_level=None,
        target_level=with_referral.target_level,
        direction="none",
        urgency=with_referral.urgency,
        pathway=with_referral.pathway,
        referred=False,
        in_consortium=with_referral.in_consortium,
        in_county=with_referral.in_county,
        outside_primary_scope=with_referral.outside_primary_scope,
        deductible_paid_in_episode=with_referral.deductible_paid_in_episode,
        item_kind=with_referral.item_kind,
        on_date=with_referral.on_date,
    )
    return decide_tier(policy, with_referral), decide_tier(policy, without)


def policy_in_force(policies: Sequence[Policy], on: date) -> Policy:
    """The highest version among ``policies`` whose ``effective_from`` is on or before ``on``.

    Ties on version (several codes passed together) go to the later ``effective_from``, then the
    code. Raises :class:`NoPolicyInForce` when none has taken effect.
    """
    started = [p for p in policies if p.effective_from <= on]
    if not started:
        raise NoPolicyInForce(on)
    return max(started, key=lambda p: (p.version, p.effective_from, p.code))


# --- dictionaries ------------------------------------------------------------------------------

_FLAGS: Final = (
    "deductible_once_per_episode",
    "primary_rate_for_referred_up",
    "tcm_non_drug_no_deductible",
)
_FIGURES: Final = (
    "self_referral_ratio_cut",
    "out_of_consortium_with_referral_ratio_cut",
    "out_of_county_without_referral_ratio",
    "tcm_decoction_ratio",
)
_POLICY_KEYS: Final = frozenset(f.name for f in fields(Policy))
_POLICY_OPTIONAL: Final = frozenset({"sources", "note", "filing_tiers"})
_TERMS_KEYS: Final = frozenset({"deductible", "ratio", "annual_cap"})


def _decimal(where: str, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{where}: expected a decimal number as a string")
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{where}: not a decimal number") from None
    if not result.is_finite():
        raise ValueError(f"{where}: not a finite number")
    return result


def _bool(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where}: expected true or false")
    return value


def _str(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected a string")
    return value


def _mapping(where: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected an object")
    return value


def _level_terms_from_dict(where: str, data: Any) -> LevelTerms:
    data = _mapping(where, data)
    keys = set(data)
    if keys != _TERMS_KEYS:
        raise ValueError(f"{where}: expected keys {sorted(_TERMS_KEYS)}")
    try:
        return LevelTerms(
            deductible=_decimal(f"{where}.deductible", data["deductible"]),
            ratio=_decimal(f"{where}.ratio", data["ratio"]),
            annual_cap=_decimal(f"{where}.annual_cap", data["annual_cap"]),
        )
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def policy_from_dict(data: Mapping[str, Any]) -> Policy:
    """A :class:`Policy` from its JSON form (see :func:`policy_to_dict`); ValueError if invalid.

    Decimals may be strings (preferred: exact) or JSON numbers. Unknown keys are refused so that a
    misspelt rule name does not silently fall back to "off".
    """
    data = _mapping("policy", data)
    unknown = set(data) - _POLICY_KEYS
    if unknown:
        raise ValueError(f"policy: unknown keys {sorted(unknown)}")
    missing = _POLICY_KEYS - _POLICY_OPTIONAL - set(data)
    if missing:
        raise ValueError(f"policy: missing keys {sorted(missing)}")
    version = data["version"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError("version: expected an integer")
    try:
        effective_from = date.fromisoformat(_str("effective_from", data["effective_from"]))
    except ValueError:
        raise ValueError("effective_from: expected an ISO date") from None
    terms: dict[InsuranceScheme, dict[InstitutionLevel, LevelTerms]] = {}
    for scheme_key, by_level in _mapping("terms", data["terms"]).items():
        try:
            scheme = scheme_of(scheme_key)
        except ValueError:
            raise ValueError("terms: unknown scheme") from None
        levels: dict[InstitutionLevel, LevelTerms] = {}
        for level_key, raw in _mapping(f"terms.{scheme_key}", by_level).items():
            try:
                level = InstitutionLevel(level_key)
            except ValueError:
                raise ValueError(f"terms.{scheme_key}: unknown level") from None
            levels[level] = _level_terms_from_dict(f"terms.{scheme_key}.{level_key}", raw)
        terms[scheme] = levels
    sources = {
        _str("sources key", k): _str(f"sources.{k}", v)
        for k, v in _mapping("sources", data.get("sources", {})).items()
    }
    return Policy(
        code=_str("code", data["code"]),
        version=version,
        effective_from=effective_from,
        region_or_consortium=_str("region_or_consortium", data["region_or_consortium"]),
        is_example=_bool("is_example", data["is_example"]),
        terms=terms,
        deductible_once_per_episode=_bool(
            "deductible_once_per_episode", data["deductible_once_per_episode"]
        ),
        primary_rate_for_referred_up=_bool(
            "primary_rate_for_referred_up", data["primary_rate_for_referred_up"]
        ),
        self_referral_ratio_cut=_decimal(
            "self_referral_ratio_cut", data["self_referral_ratio_cut"]
        ),
        out_of_consortium_with_referral_ratio_cut=_decimal(
            "out_of_consortium_with_referral_ratio_cut",
            data["out_of_consortium_with_referral_ratio_cut"],
        ),
        out_of_county_without_referral_ratio=_decimal(
            "out_of_county_without_referral_ratio", data["out_of_county_without_referral_ratio"]
        ),
        tcm_decoction_ratio=_decimal("tcm_decoction_ratio", data["tcm_decoction_ratio"]),
        tcm_non_drug_no_deductible=_bool(
            "tcm_non_drug_no_deductible", data["tcm_non_drug_no_deductible"]
        ),
        sources=sources,
        note=_str("note", data.get("note", "")),
        filing_tiers=_filing_tiers(data.get("filing_tiers")),
    )


def _filing_tiers(value: Any) -> frozenset[TierCode]:
    if value is None:
        return DEFAULT_FILING_TIERS
    if not isinstance(value, list):
        raise ValueError("filing_tiers: expected a list of tier codes")
    try:
        return frozenset(TierCode(_str("filing_tiers item", v)) for v in value)
    except ValueError:
        raise ValueError(f"filing_tiers: expected tier codes of {sorted(TierCode)}") from None


def _level_terms_to_dict(terms: LevelTerms) -> dict[str, str]:
    return {
        "deductible": str(terms.deductible),
        "ratio": str(terms.ratio),
        "annual_cap": str(terms.annual_cap),
    }


def policy_to_dict(policy: Policy) -> dict[str, Any]:
    """A JSON-serialisable form of ``policy``: enums as values, Decimals as strings, ISO dates."""
    result: dict[str, Any] = {
        "code": policy.code,
        "version": policy.version,
        "effective_from": policy.effective_from.isoformat(),
        "region_or_consortium": policy.region_or_consortium,
        "is_example": policy.is_example,
        "note": policy.note,
        "terms": {
            scheme.value: {
                level.value: _level_terms_to_dict(terms) for level, terms in by_level.items()
            }
            for scheme, by_level in policy.terms.items()
        },
    }
    for name in _FLAGS:
        result[name] = getattr(policy, name)
    for name in _FIGURES:
        result[name] = str(getattr(policy, name))
    result["sources"] = dict(policy.sources)
    result["filing_tiers"] = sorted(t.value for t in policy.filing_tiers)
    return result


def decision_to_dict(decision: TierDecision) -> dict[str, Any]:
    """A JSON-serialisable form of ``decision`` (Decimals as strings) for storage and the API."""
    return {
        "tier": decision.tier.value,
        "deductible": str(decision.deductible),
        "ratio": str(decision.ratio),
        "annual_cap": str(decision.annual_cap),
        "policy_code": decision.policy_code,
        "policy_version": decision.policy_version,
        "rules": [{"rule": r.rule, "words": r.words, "source": r.source} for r in decision.rules],
    }
