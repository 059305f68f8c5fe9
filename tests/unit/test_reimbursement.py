"""Differential reimbursement tier: one test per rule, the check scenario, properties, round trips.

hypothesis is not installed in the project's environment: the property tests are loops over
``random.Random(seed)``.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.domain import reimbursement
from app.domain.enums import InstitutionLevel, InsuranceScheme, Urgency
from app.domain.reimbursement import (
    DEFAULT_SOURCES,
    Direction,
    ItemKind,
    LevelTerms,
    MissingTerms,
    NoPolicyInForce,
    Policy,
    Rule,
    TierCode,
    TierDecision,
    TierInput,
    decide_tier,
    decision_to_dict,
    policy_from_dict,
    policy_in_force,
    policy_to_dict,
    quote,
)

L = InstitutionLevel
S = InsuranceScheme
D = Decimal
EXAMPLE_FILE = Path(reimbursement.__file__).parents[1] / "data" / "policies" / "example-policy.json"
DAY = date(2026, 3, 1)
# The basic schemes the example policy prices (the supplementary 险种 such as 320 have no terms).
INSURED: list[InsuranceScheme] = [
    S.EMPLOYEE_BASIC,
    S.URBAN_RURAL_RESIDENT,
    S.URBAN_RESIDENT_LEGACY,
    S.NEW_RURAL_COOPERATIVE_LEGACY,
]
ITEM_KINDS: list[ItemKind] = ["general", "tcm_decoction", "tcm_non_drug"]


def load_example() -> Policy:
    return policy_from_dict(json.loads(EXAMPLE_FILE.read_text(encoding="utf-8")))


EXAMPLE = load_example()


def inp(**changes: Any) -> TierInput:
    """A resident referred up from a township centre to the county hospital, in the consortium."""
    base = TierInput(
        scheme=S.URBAN_RURAL_RESIDENT,
        source_level=L.PRIMARY,
        target_level=L.SECONDARY,
        direction="up",
        urgency=Urgency.ROUTINE,
        pathway=None,
        referred=True,
        in_consortium=True,
        in_county=True,
        outside_primary_scope=False,
        deductible_paid_in_episode=False,
        on_date=DAY,
    )
    return replace(base, **changes)


def unreferred(**changes: Any) -> TierInput:
    return inp(source_level=None, direction="none", referred=False, **changes)


def rule_names(decision: TierDecision) -> list[str]:
    return [r.rule for r in decision.rules]


def fired(decision: TierDecision, rule: Rule) -> reimbursement.FiredRule:
    matches = [r for r in decision.rules if r.rule == rule.value]
    assert len(matches) == 1, rule_names(decision)
    return matches[0]


# --- one test per rule -------------------------------------------------------------------------


def test_self_pay_has_no_terms() -> None:
    """self_pay. 002: the basic schemes are employee, urban resident and new rural cooperative
    insurance; a self-paying patient is in none of them."""
    d = decide_tier(EXAMPLE, inp(scheme=S.SELF_PAY, deductible_paid_in_episode=True))
    assert d.tier is TierCode.SELF_PAY
    assert (d.deductible, d.ratio, d.annual_cap) == (D(0), D(0), D(0))
    assert rule_names(d) == ["self_pay"]


def test_differential_payment_base_terms_tilted_toward_primary() -> None:
    """differential_payment. 002 (2): "Improve the differential payment mechanism, with payment
    ratios further tilted toward primary healthcare organizations"."""
    for scheme in INSURED:
        ratios = [EXAMPLE.terms[scheme][level].ratio for level in L]
        deductibles = [EXAMPLE.terms[scheme][level].deductible for level in L]
        assert ratios == sorted(ratios, reverse=True)
        assert deductibles == sorted(deductibles)
    d = decide_tier(EXAMPLE, unreferred(target_level=L.PRIMARY))
    rule = fired(d, Rule.DIFFERENTIAL_PAYMENT)
    assert "deductible 200 yuan, ratio 85%, annual cap 150000 yuan" in rule.words
    assert rule.source.startswith("002")
    employee = decide_tier(EXAMPLE, unreferred(scheme=S.EMPLOYEE_BASIC, target_level=L.PRIMARY))
    assert employee.ratio > d.ratio


def test_in_consortium_referral_gets_the_target_terms() -> None:
    """in_consortium_referral. 003: "Two-way referral of patients within the medical association"
    (policy support item 1)."""
    d = decide_tier(EXAMPLE, inp())
    assert d.tier is TierCode.IN_CONSORTIUM_REFERRAL
    assert (d.deductible, d.ratio, d.annual_cap) == (D(500), D("0.70"), D(150000))
    assert rule_names(d) == ["differential_payment", "in_consortium_referral"]
    assert (d.policy_code, d.policy_version) == ("EXAMPLE-COUNTY", 1)


def test_deductible_once_per_episode() -> None:
    """deductible_once_per_episode. 003 policy support item 1: "cancel the second starting line";
    004: "implement continuous calculation of medical insurance within the medical alliance"."""
    d = decide_tier(EXAMPLE, inp(deductible_paid_in_episode=True))
    assert d.deductible == 0
    assert d.ratio == D("0.70")
    rule = fired(d, Rule.DEDUCTIBLE_ONCE_PER_EPISODE)
    assert "500 yuan" in rule.words
    assert "cancel the second starting line" in rule.source
    # not yet paid: the deductible applies
    assert decide_tier(EXAMPLE, inp()).deductible == 500
    # the flag off: a second deductible
    off = replace(EXAMPLE, deductible_once_per_episode=False)
    assert decide_tier(off, inp(deductible_paid_in_episode=True)).deductible == 500
    # without referral a new episode starts
    assert decide_tier(EXAMPLE, unreferred(deductible_paid_in_episode=True)).deductible == 500


@pytest.mark.parametrize(
    "changes",
    [
        {"outside_primary_scope": True},
        {"urgency": Urgency.EMERGENCY},
        {"pathway": "stroke"},
        {"outside_primary_scope": True, "source_level": L.VILLAGE},
    ],
    ids=["outside-scope", "emergency", "green-channel", "from-village"],
)
def test_primary_rate_for_referred_up(changes: dict[str, Any]) -> None:
    """primary_rate_for_referred_up. 003 policy support item 2: "Not within the scope of the
    primary health care institutions diagnosis and treatment subjects or emergency, critical,
    difficult, major disease patients, by the grass-roots health centers first referral to the
    higher hospitals in the county for treatment, the new rural cooperative reimbursement rate in
    accordance with the township health centers policy implementation"."""
    d = decide_tier(EXAMPLE, inp(**changes))
    assert d.tier is TierCode.IN_CONSORTIUM_REFERRAL_PRIMARY_RATE
    assert d.ratio == EXAMPLE.terms[S.URBAN_RURAL_RESIDENT][L.PRIMARY].ratio == D("0.85")
    assert d.deductible == 500  # the target's deductible and cap stay
    assert d.annual_cap == 150000
    rule = fired(d, Rule.PRIMARY_RATE_FOR_REFERRED_UP)
    assert "85%" in rule.words
    assert "70%" in rule.words
    assert "township health centre" in rule.source


def test_primary_rate_does_not_apply_otherwise() -> None:
    """primary_rate_for_referred_up, limits. 003 item 2 speaks of patients referred first by the
    grass-roots health centres to "the higher hospitals in the county", for a condition outside
    primary scope or an emergency."""
    scope = {"outside_primary_scope": True}
    cases = [
        inp(),  # routine, inside primary scope
        inp(urgency=Urgency.URGENT),  # urgent is not an emergency
        inp(source_level=L.SECONDARY, target_level=L.TERTIARY, **scope),  # not from primary
        inp(in_county=False, **scope),  # not a hospital in the county
    ]
    for case in cases:
        assert decide_tier(EXAMPLE, case).tier is TierCode.IN_CONSORTIUM_REFERRAL
    off = replace(EXAMPLE, primary_rate_for_referred_up=False)
    assert decide_tier(off, inp(**scope)).tier is TierCode.IN_CONSORTIUM_REFERRAL
    # only when the primary ratio is higher than the target's
    flat = replace(
        EXAMPLE,
        terms={S.URBAN_RURAL_RESIDENT: {level: LevelTerms(D(0), D("0.7"), D(1)) for level in L}},
    )
    d = decide_tier(flat, inp(**scope))
    assert d.tier is TierCode.IN_CONSORTIUM_REFERRAL
    assert Rule.PRIMARY_RATE_FOR_REFERRED_UP.value not in rule_names(d)


def test_down_referral_target_terms_and_deductible_continuity() -> None:
    """down_referral. 003: "Two-way referral of patients within the medical association ... cancel
    the second starting line"; 004: continuous calculation within the alliance."""
    down = inp(source_level=L.SECONDARY, target_level=L.PRIMARY, direction="down")
    d = decide_tier(EXAMPLE, down)
    assert d.tier is TierCode.DOWN_REFERRAL
    assert (d.deductible, d.ratio) == (D(200), D("0.85"))
    assert Rule.DOWN_REFERRAL.value in rule_names(d)
    paid = decide_tier(EXAMPLE, replace(down, deductible_paid_in_episode=True))
    assert paid.deductible == 0
    assert Rule.DEDUCTIBLE_ONCE_PER_EPISODE.value in rule_names(paid)


def test_self_referral_ratio_cut() -> None:
    """self_referral_ratio_cut. 002 (2): "differential payment mechanism ... guiding the public's
    first visit to the grassroots level"; 003 Huangzhong: "The gap between the starting payment
    line and the payment ratio of county and township healthcare organizations within the
    healthcare consortium has been appropriately widened"."""
    d = decide_tier(EXAMPLE, unreferred(deductible_paid_in_episode=True))
    assert d.tier is TierCode.SELF_REFERRAL
    assert d.ratio == D("0.60")  # 0.70 - 0.10
    assert d.deductible == 500
    assert "10 points" in fired(d, Rule.SELF_REFERRAL_RATIO_CUT).words


def test_out_of_consortium_with_referral_ratio_cut() -> None:
    """out_of_consortium_with_referral_ratio_cut. 003 Huangzhong: "Primary medical institutions
    give priority to the core hospitals within the medical association referral"."""
    d = decide_tier(EXAMPLE, inp(in_consortium=False, deductible_paid_in_episode=True))
    assert d.tier is TierCode.REFERRAL_OUT_OF_CONSORTIUM
    assert d.ratio == D("0.65")  # 0.70 - 0.05
    assert d.deductible == 500  # continuity holds only inside the consortium
    assert "5 points" in fired(d, Rule.OUT_OF_CONSORTIUM_WITH_REFERRAL_RATIO_CUT).words
    # even with an emergency the primary rate is a consortium rule
    emergency = decide_tier(EXAMPLE, inp(in_consortium=False, urgency=Urgency.EMERGENCY))
    assert emergency.tier is TierCode.REFERRAL_OUT_OF_CONSORTIUM


def test_out_of_county_without_referral_is_lowest() -> None:
    """out_of_county_without_referral_ratio. 002: county hospitals should improve "the rate of
    intra-county consultations and reducing the rate of out-of-county referrals"; 002 (2):
    differential payment."""
    d = decide_tier(EXAMPLE, unreferred(in_county=False, in_consortium=False))
    assert d.tier is TierCode.OUT_OF_COUNTY_WITHOUT_REFERRAL
    assert d.ratio == D("0.30")
    assert d.deductible == 500
    fired(d, Rule.OUT_OF_COUNTY_WITHOUT_REFERRAL_RATIO)
    # never more than without referral inside the county: tertiary resident 0.55 - 0.10 = 0.45
    low = replace(EXAMPLE, out_of_county_without_referral_ratio=D("0.50"))
    tertiary = decide_tier(low, unreferred(target_level=L.TERTIARY, in_county=False))
    assert tertiary.ratio == D("0.45")
    in_county = decide_tier(low, unreferred(target_level=L.TERTIARY))
    assert tertiary.ratio <= in_county.ratio


def test_primary_direct_needs_no_referral() -> None:
    """primary_direct. 002 (2): "guiding the public's first visit to the grassroots level"."""
    for level, ratio in ((L.PRIMARY, D("0.85")), (L.VILLAGE, D("0.90"))):
        d = decide_tier(EXAMPLE, unreferred(target_level=level))
        assert d.tier is TierCode.PRIMARY_DIRECT
        assert d.ratio == ratio
        assert rule_names(d) == ["differential_payment", "primary_direct"]


def test_tcm_decoction_ratio() -> None:
    """tcm_decoction_ratio. 004 Sanming (an example): "implement 80% medical insurance
    reimbursement of traditional Chinese medicine decoctions"."""
    d = decide_tier(EXAMPLE, unreferred(item_kind="tcm_decoction"))
    assert d.tier is TierCode.SELF_REFERRAL
    assert d.ratio == D("0.80")
    rule = fired(d, Rule.TCM_DECOCTION_RATIO)
    assert "80%" in rule.words
    assert "60%" in rule.words
    assert rule.source.startswith("004")
    # never lowers a ratio already above 80%
    village = decide_tier(EXAMPLE, unreferred(target_level=L.VILLAGE, item_kind="tcm_decoction"))
    assert village.ratio == D("0.90")
    assert Rule.TCM_DECOCTION_RATIO.value not in rule_names(village)
    # a local policy: not out of county without referral
    away = decide_tier(EXAMPLE, unreferred(in_county=False, item_kind="tcm_decoction"))
    assert away.ratio == D("0.30")


def test_tcm_non_drug_no_deductible() -> None:
    """tcm_non_drug_no_deductible. 004 Sanming (an example): "24 traditional Chinese medicine
    non-drug therapy medical insurance zero-deductible reimbursement policies"."""
    d = decide_tier(EXAMPLE, unreferred(item_kind="tcm_non_drug"))
    assert d.deductible == 0
    assert d.ratio == D("0.60")
    assert "500 yuan" in fired(d, Rule.TCM_NON_DRUG_NO_DEDUCTIBLE).words
    off = replace(EXAMPLE, tcm_non_drug_no_deductible=False)
    assert decide_tier(off, unreferred(item_kind="tcm_non_drug")).deductible == 500


def test_ratio_bounds() -> None:
    """ratio_bounds. A reimbursement ratio (报销比例) is a share of the cost: 0..1."""
    steep = replace(EXAMPLE, self_referral_ratio_cut=D("0.90"))
    d = decide_tier(steep, unreferred(target_level=L.TERTIARY))
    assert d.ratio == 0
    assert "-35%" in fired(d, Rule.RATIO_BOUNDS).words
    with pytest.raises(ValueError, match="between 0 and 1"):
        LevelTerms(D(0), D("1.01"), D(0))
    with pytest.raises(ValueError, match="between 0 and 1"):
        replace(EXAMPLE, tcm_decoction_ratio=D("-0.1"))


# --- the check scenario ------------------------------------------------------------------------


def test_check_scenario_township_to_county_hospital() -> None:
    """A resident referred from a township centre to the county hospital inside the consortium is
    in the in-consortium tier with no second deductible in the episode and the primary rate where
    the rule applies; going to the county hospital without referral gets a lower ratio; going out
    of county without referral is lowest."""
    referred = inp(deductible_paid_in_episode=True)
    d = decide_tier(EXAMPLE, referred)
    assert d.tier is TierCode.IN_CONSORTIUM_REFERRAL
    assert d.deductible == 0
    assert d.ratio == D("0.70")

    outside_scope = decide_tier(EXAMPLE, replace(referred, outside_primary_scope=True))
    assert outside_scope.tier is TierCode.IN_CONSORTIUM_REFERRAL_PRIMARY_RATE
    assert outside_scope.deductible == 0
    assert outside_scope.ratio == D("0.85")

    with_ref, without = quote(EXAMPLE, referred)
    assert with_ref == d
    assert without.tier is TierCode.SELF_REFERRAL
    assert without.ratio < d.ratio
    assert without.deductible == 500

    away = decide_tier(EXAMPLE, unreferred(in_county=False, in_consortium=False))
    assert away.tier is TierCode.OUT_OF_COUNTY_WITHOUT_REFERRAL
    others = [d, outside_scope, without, decide_tier(EXAMPLE, inp(in_consortium=False))]
    assert all(away.ratio < other.ratio for other in others)


def test_quote_keeps_everything_but_the_referral() -> None:
    care = inp(target_level=L.TERTIARY, source_level=L.SECONDARY, item_kind="tcm_non_drug")
    with_ref, without = quote(EXAMPLE, care)
    assert with_ref == decide_tier(EXAMPLE, care)
    assert without == decide_tier(
        EXAMPLE, unreferred(target_level=L.TERTIARY, item_kind="tcm_non_drug")
    )
    same = unreferred(target_level=L.PRIMARY)
    assert quote(EXAMPLE, same) == (decide_tier(EXAMPLE, same),) * 2


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"referred": False}, "referred must be true"),
        ({"direction": "none"}, "referred must be true"),
        ({"source_level": None}, "needs source_level"),
        ({"source_level": L.SECONDARY}, "higher level"),
        ({"direction": "down"}, "lower level"),
        ({"direction": "sideways"}, "direction"),
        ({"item_kind": "acupuncture"}, "item_kind"),
    ],
)
def test_tier_input_validation(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        inp(**changes)


def test_policy_validation_and_immutability() -> None:
    with pytest.raises(ValueError, match="self-pay"):
        replace(EXAMPLE, terms={S.SELF_PAY: {}})
    with pytest.raises(ValueError, match="version"):
        replace(EXAMPLE, version=0)
    with pytest.raises(TypeError):
        EXAMPLE.terms[S.EMPLOYEE_BASIC] = {}  # type: ignore[index]
    with pytest.raises(TypeError):
        EXAMPLE.terms[S.EMPLOYEE_BASIC][L.PRIMARY] = LevelTerms(D(0), D(1), D(0))  # type: ignore[index]


def test_decide_tier_refuses_a_policy_not_yet_in_force_and_missing_terms() -> None:
    with pytest.raises(NoPolicyInForce, match="takes effect on 2026-01-01"):
        decide_tier(EXAMPLE, inp(on_date=date(2025, 12, 31)))
    partial = replace(EXAMPLE, terms={S.EMPLOYEE_BASIC: EXAMPLE.terms[S.EMPLOYEE_BASIC]})
    with pytest.raises(MissingTerms, match="390"):
        decide_tier(partial, inp())


def test_every_rule_has_a_default_source_and_the_example_cites_seeds() -> None:
    assert set(DEFAULT_SOURCES) == {r.value for r in Rule}
    assert set(EXAMPLE.sources) <= {r.value for r in Rule}
    assert all(text[:3] in {"002", "003", "004"} for text in EXAMPLE.sources.values())


# --- policy_in_force ---------------------------------------------------------------------------


def test_policy_in_force_by_date_and_version() -> None:
    v1 = EXAMPLE
    v2 = replace(EXAMPLE, version=2, effective_from=date(2026, 7, 1))
    v3 = replace(EXAMPLE, version=3, effective_from=date(2026, 4, 1))  # a correction, earlier
    policies = [v2, v1, v3]
    assert policy_in_force(policies, date(2026, 1, 1)) is v1
    assert policy_in_force(policies, date(2026, 3, 31)) is v1
    assert policy_in_force(policies, date(2026, 4, 1)) is v3
    assert policy_in_force(policies, date(2026, 12, 1)) is v3
    assert policy_in_force([v1, v2], date(2026, 7, 1)) is v2
    with pytest.raises(NoPolicyInForce, match="2025-12-31"):
        policy_in_force(policies, date(2025, 12, 31))
    with pytest.raises(NoPolicyInForce):
        policy_in_force([], DAY)


def test_property_policy_in_force_picks_highest_version_started() -> None:
    rng = random.Random(20260301)
    start = date(2024, 1, 1)
    for _ in range(300):
        policies = [
            replace(EXAMPLE, version=v, effective_from=start + timedelta(days=rng.randint(0, 900)))
            for v in rng.sample(range(1, 40), rng.randint(1, 6))
        ]
        on = start + timedelta(days=rng.randint(-30, 950))
        started = [p for p in policies if p.effective_from <= on]
        if not started:
            with pytest.raises(NoPolicyInForce):
                policy_in_force(policies, on)
            continue
        chosen = policy_in_force(policies, on)
        assert chosen.effective_from <= on
        assert chosen.version == max(p.version for p in started)


# --- properties --------------------------------------------------------------------------------


def _ratio(rng: random.Random) -> Decimal:
    return D(rng.randint(0, 100)) / 100


def random_policy(rng: random.Random) -> Policy:
    terms = {
        scheme: {
            level: LevelTerms(D(rng.randint(0, 2000)), _ratio(rng), D(rng.randint(0, 400000)))
            for level in L
        }
        for scheme in INSURED
    }
    return replace(
        EXAMPLE,
        terms=terms,
        deductible_once_per_episode=rng.random() < 0.7,
        primary_rate_for_referred_up=rng.random() < 0.7,
        self_referral_ratio_cut=_ratio(rng) / 2,
        out_of_consortium_with_referral_ratio_cut=_ratio(rng) / 2,
        out_of_county_without_referral_ratio=_ratio(rng),
        tcm_decoction_ratio=_ratio(rng),
        tcm_non_drug_no_deductible=rng.random() < 0.7,
    )


def random_input(rng: random.Random, *, referred_in_consortium: bool = False) -> TierInput:
    target = rng.choice(list(L))
    direction: Direction
    if referred_in_consortium:
        options: list[Direction] = []
        if target is not L.VILLAGE:
            options.append("up")
        if target is not L.TERTIARY:
            options.append("down")
        direction = rng.choice(options)
    else:
        direction = rng.choice(["up", "down", "none"])
        if (direction == "up" and target is L.VILLAGE) or (
            direction == "down" and target is L.TERTIARY
        ):
            direction = "none"
    if direction == "up":
        source: InstitutionLevel | None = rng.choice([lv for lv in L if lv.rank < target.rank])
    elif direction == "down":
        source = rng.choice([lv for lv in L if lv.rank > target.rank])
    else:
        source = None
    return TierInput(
        scheme=rng.choice([*INSURED, S.SELF_PAY]),
        source_level=source,
        target_level=target,
        direction=direction,
        urgency=rng.choice(list(Urgency)),
        pathway=rng.choice([None, None, "stroke", "chest_pain"]),
        referred=direction != "none",
        in_consortium=True if referred_in_consortium else rng.random() < 0.7,
        in_county=rng.random() < 0.7,
        outside_primary_scope=rng.random() < 0.5,
        deductible_paid_in_episode=rng.random() < 0.5,
        item_kind=rng.choice(ITEM_KINDS),
        on_date=DAY + timedelta(days=rng.randint(0, 365)),
    )


def test_property_referral_in_consortium_never_worse_than_without() -> None:
    """A referral inside the consortium is never reimbursed worse (lower ratio or higher
    deductible) than the same care without referral."""
    rng = random.Random(7)
    for i in range(600):
        policy = EXAMPLE if i % 2 else random_policy(rng)
        care = random_input(rng, referred_in_consortium=True)
        with_ref, without = quote(policy, care)
        assert with_ref.ratio >= without.ratio, (care, with_ref, without)
        assert with_ref.deductible <= without.deductible, (care, with_ref, without)
        assert with_ref.annual_cap == without.annual_cap


def test_property_ratio_within_bounds_and_rules_explained() -> None:
    rng = random.Random(11)
    for i in range(600):
        policy = EXAMPLE if i % 3 == 0 else random_policy(rng)
        care = random_input(rng)
        d = decide_tier(policy, care)
        assert 0 <= d.ratio <= 1
        assert d.deductible >= 0
        assert d.rules
        assert all(r.words and r.source for r in d.rules)
        if care.scheme is not S.SELF_PAY:
            base = policy.terms[care.scheme][care.target_level]
            assert d.annual_cap == base.annual_cap
            assert d.deductible in {base.deductible, 0}
        json.dumps(decision_to_dict(d))


def test_property_out_of_county_without_referral_is_lowest() -> None:
    """002 / 003: self-referral and going out of county without referral are reimbursed below a
    referral; out of county without referral is the lowest of all for the same care."""
    rng = random.Random(13)
    for i in range(400):
        policy = EXAMPLE if i % 2 else random_policy(rng)
        care = random_input(rng)
        away = decide_tier(
            policy,
            replace(care, source_level=None, direction="none", referred=False, in_county=False),
        )
        for variant in (care, replace(care, in_county=True), replace(care, in_consortium=True)):
            assert away.ratio <= decide_tier(policy, variant).ratio


# --- dictionaries ------------------------------------------------------------------------------


def test_example_file_round_trip() -> None:
    raw = json.loads(EXAMPLE_FILE.read_text(encoding="utf-8"))
    policy = policy_from_dict(raw)
    assert policy.is_example
    assert (policy.code, policy.version, policy.effective_from) == (
        "EXAMPLE-COUNTY",
        1,
        date(2026, 1, 1),
    )
    assert "illustrative" in policy.note
    assert set(policy.terms) == set(INSURED)
    assert all(set(by_level) == set(L) for by_level in policy.terms.values())
    assert policy_to_dict(policy) == raw
    assert policy_from_dict(json.loads(json.dumps(policy_to_dict(policy)))) == policy


def test_property_random_policies_round_trip() -> None:
    rng = random.Random(17)
    for _ in range(200):
        policy = random_policy(rng)
        assert policy_from_dict(json.loads(json.dumps(policy_to_dict(policy)))) == policy


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"self_referal_ratio_cut": "0.1"}, "unknown keys"),
        ({"tcm_decoction_ratio": None}, "tcm_decoction_ratio"),
        ({"tcm_decoction_ratio": "lots"}, "not a decimal"),
        ({"tcm_decoction_ratio": "1.5"}, "between 0 and 1"),
        ({"version": "1"}, "version"),
        ({"effective_from": "1 Jan 2026"}, "ISO date"),
        ({"is_example": "yes"}, "is_example"),
        ({"terms": {"gold_plan": {}}}, "unknown scheme"),
        ({"terms": {"employee_basic": {"clinic": {}}}}, "unknown level"),
        (
            {"terms": {"employee_basic": {"village": {"deductible": "0", "ratio": "0.9"}}}},
            "expected keys",
        ),
    ],
)
def test_policy_from_dict_refuses_bad_data(changes: dict[str, Any], message: str) -> None:
    raw = policy_to_dict(EXAMPLE) | changes
    with pytest.raises(ValueError, match=message):
        policy_from_dict(raw)


def test_policy_from_dict_missing_key_and_numbers() -> None:
    raw = policy_to_dict(EXAMPLE)
    del raw["tcm_decoction_ratio"]
    with pytest.raises(ValueError, match="missing keys"):
        policy_from_dict(raw)
    raw = policy_to_dict(EXAMPLE) | {"tcm_decoction_ratio": 0.8}
    assert policy_from_dict(raw).tcm_decoction_ratio == D("0.8")


def test_decision_to_dict() -> None:
    d = decide_tier(EXAMPLE, inp(outside_primary_scope=True, deductible_paid_in_episode=True))
    data = decision_to_dict(d)
    assert data["tier"] == "in_consortium_referral_primary_rate"
    assert (data["deductible"], data["ratio"], data["annual_cap"]) == ("0", "0.85", "150000")
    assert (data["policy_code"], data["policy_version"]) == ("EXAMPLE-COUNTY", 1)
    assert [r["rule"] for r in data["rules"]] == [
        "differential_payment",
        "in_consortium_referral",
        "primary_rate_for_referred_up",
        "deductible_once_per_episode",
    ]
    assert json.loads(json.dumps(data)) == data
