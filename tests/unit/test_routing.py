"""Up-referral routing: eligibility, order, patient choice, partners, explanation."""

from __future__ import annotations

import itertools
import json
import math
import random
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.db.sql_functions import register_math_functions
from app.domain.enums import CareType, Centre, InstitutionLevel
from app.domain.geo import distance_from_km, haversine_km
from app.domain.routing import (
    ALTERNATIVES_LISTED,
    EXCLUDED_LISTED,
    Candidate,
    ExclusionReason,
    LeftOut,
    PatientChoiceNotAllowed,
    RankedCandidate,
    RankingRule,
    RoutingDecision,
    RoutingOutcome,
    RoutingRequest,
    decision_to_dict,
    route,
    specialty_covers,
)

NOW = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
FRESH = NOW - timedelta(minutes=10)
STALE = NOW - timedelta(hours=3)  # older than stale_after, younger than stale_exclude_after
VERY_STALE = NOW - timedelta(hours=30)  # older than stale_exclude_after
SRC_LAT, SRC_LON = 27.37, 118.86  # a township centre near Zhenghe

L = InstitutionLevel


def cand(institution_id: str, **changes: Any) -> Candidate:
    base = Candidate(
        institution_id=institution_id,
        code=institution_id.upper(),
        name=f"Hospital {institution_id}",
        level=L.SECONDARY,
        active=True,
        in_consortium=True,
        specialties=frozenset({"03", "03.04"}),
        centres=frozenset(),
        lat=SRC_LAT + 0.1,
        lon=SRC_LON,
        capacity_free=10,
        capacity_total=100,
        census_as_of=FRESH,
    )
    return replace(base, **changes)


def partner(institution_id: str, **changes: Any) -> Candidate:
    changes.setdefault("in_consortium", False)
    changes.setdefault("level", L.TERTIARY)
    return cand(institution_id, **changes)


def req(**changes: Any) -> RoutingRequest:
    base = RoutingRequest(
        source_institution_id="src",
        source_level=L.PRIMARY,
        source_lat=SRC_LAT,
        source_lon=SRC_LON,
        consortium_id="zhenghe",
        lead_institution_ids=frozenset(),
        specialty_code="03.04",
        care_type=CareType.INPATIENT,
        now=NOW,
        stale_after=timedelta(hours=1),
        stale_exclude_after=timedelta(hours=24),
    )
    return replace(base, **changes)


def ranked_ids(decision: RoutingDecision) -> list[str]:
    out = [] if decision.target is None else [decision.target.institution_id]
    return out + [a.institution_id for a in decision.alternatives]


# -- basics ------------------------------------------------------------------------------------


def test_single_member_is_routed_with_explanation() -> None:
    d = route(req(), [cand("a", name="Zhenghe County Hospital")], [])
    assert d.outcome is RoutingOutcome.ROUTED
    assert d.target is not None
    assert d.target.institution_id == "a"
    assert d.target.rank == 1
    assert d.target.rule is RankingRule.ONLY_CANDIDATE
    assert d.target.in_consortium
    assert not d.target.stale
    assert d.target.distance_km == pytest.approx(11.1, abs=0.05)
    assert d.alternatives == ()
    assert d.excluded == ()
    assert "Zhenghe County Hospital" in d.explanation
    assert "10 of 100 beds free" in d.explanation


def test_lead_hospital_explanation() -> None:
    members = [cand("lead", name="Zhenghe County Hospital", capacity_free=12, capacity_total=120)]
    members.append(cand("b"))
    d = route(req(lead_institution_ids=frozenset({"lead"})), members, [])
    assert d.target is not None
    assert d.target.rule is RankingRule.LEAD_HOSPITAL
    assert d.explanation == (
        "Routed to Zhenghe County Hospital: the consortium's lead hospital with free capacity "
        "(12 of 120 beds free)."
    )


def test_outpatient_counts_slots() -> None:
    d = route(req(care_type=CareType.OUTPATIENT), [cand("a")], [])
    assert "10 of 100 slots free" in d.explanation


# -- exclusions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "request_changes", "reason"),
    [
        ({"institution_id": "src"}, {}, ExclusionReason.IS_SOURCE),
        ({"in_consortium": False}, {}, ExclusionReason.NOT_IN_CONSORTIUM),
        ({"active": False}, {}, ExclusionReason.INACTIVE),
        ({"level": L.PRIMARY}, {}, ExclusionReason.LEVEL_NOT_HIGHER),
        ({"level": L.VILLAGE}, {}, ExclusionReason.LEVEL_NOT_HIGHER),
        ({"level": L.SECONDARY}, {"source_level": L.SECONDARY}, ExclusionReason.LEVEL_NOT_HIGHER),
        ({"specialties": frozenset({"04"})}, {}, ExclusionReason.SPECIALTY_NOT_OFFERED),
        ({"specialties": frozenset()}, {}, ExclusionReason.SPECIALTY_NOT_OFFERED),
        (
            {},
            {"excluded_institution_ids": frozenset({"a"})},
            ExclusionReason.PREVIOUSLY_DECLINED,
        ),
        ({"census_as_of": VERY_STALE}, {}, ExclusionReason.STALE_CENSUS),
        ({"census_as_of": None}, {}, ExclusionReason.STALE_CENSUS),
        ({"capacity_free": None}, {}, ExclusionReason.STALE_CENSUS),
        ({"capacity_free": 0}, {}, ExclusionReason.NO_FREE_CAPACITY),
        ({"capacity_free": -2}, {}, ExclusionReason.NO_FREE_CAPACITY),
    ],
)
def test_each_exclusion_reason(
    changes: dict[str, Any], request_changes: dict[str, Any], reason: ExclusionReason
) -> None:
    changes.setdefault("institution_id", "a")
    c = cand(**changes)
    d = route(req(**request_changes), [c], [])
    assert d.outcome is RoutingOutcome.WAITLISTED
    assert d.target is None
    assert d.alternatives == ()
    assert len(d.excluded) == 1
    x = d.excluded[0]
    assert (x.institution_id, x.code, x.name) == (c.institution_id, c.code, c.name)
    assert x.reason is reason
    assert x.detail
    assert x.in_consortium


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        (
            {"institution_id": "src", "in_consortium": False, "active": False},
            ExclusionReason.IS_SOURCE,
        ),
        ({"in_consortium": False, "active": False}, ExclusionReason.NOT_IN_CONSORTIUM),
        ({"active": False, "level": L.PRIMARY}, ExclusionReason.INACTIVE),
        (
            {"level": L.PRIMARY, "specialties": frozenset({"04"})},
            ExclusionReason.LEVEL_NOT_HIGHER,
        ),
        (
            {"specialties": frozenset({"04"}), "institution_id": "declined"},
            ExclusionReason.SPECIALTY_NOT_OFFERED,
        ),
        (
            {"institution_id": "declined", "census_as_of": None},
            ExclusionReason.PREVIOUSLY_DECLINED,
        ),
        ({"census_as_of": VERY_STALE, "capacity_free": 0}, ExclusionReason.STALE_CENSUS),
    ],
)
def test_first_failing_check_is_reported(changes: dict[str, Any], reason: ExclusionReason) -> None:
    changes.setdefault("institution_id", "a")
    d = route(req(excluded_institution_ids=frozenset({"declined"})), [cand(**changes)], [])
    assert [x.reason for x in d.excluded] == [reason]


def test_exclusion_detail_is_short_words() -> None:
    d = route(req(), [cand("a", capacity_free=0, capacity_total=120)], [])
    assert d.excluded[0].detail == "0 of 120 beds free"
    d = route(req(), [cand("a", census_as_of=VERY_STALE)], [])
    assert d.excluded[0].detail == "census 30 h old"


# -- specialty match ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "requested", "covers"),
    [
        ("03", "03", True),
        ("03", "03.04", True),
        ("03", "03.04.01", True),
        ("03.04", "03.04", True),
        ("03.04", "03", False),
        ("03.04", "03.03", False),
        ("03", "030", False),
        ("03", "04.03", False),
    ],
)
def test_specialty_covers(offered: str, requested: str, covers: bool) -> None:
    assert specialty_covers(offered, requested) is covers
    d = route(req(specialty_code=requested), [cand("a", specialties=frozenset({offered}))], [])
    assert (d.outcome is RoutingOutcome.ROUTED) is covers


def test_parent_specialty_among_several() -> None:
    d = route(req(specialty_code="03.04"), [cand("a", specialties=frozenset({"20", "03"}))], [])
    assert d.outcome is RoutingOutcome.ROUTED


# -- order: each rule decides a pair -----------------------------------------------------------


def _pair(
    better: Candidate, worse: Candidate, rule: RankingRule, request: RoutingRequest | None = None
) -> None:
    for members in ([better, worse], [worse, better]):
        d = route(request or req(), members, [])
        assert ranked_ids(d) == [better.institution_id, worse.institution_id]
        assert d.target is not None
        assert d.target.rule is rule
        assert d.alternatives[0].rule is rule
        assert d.alternatives[0].rank == 2
        assert better.name in d.explanation


def test_fresh_census_beats_everything_else() -> None:
    fresh = cand("z", level=L.TERTIARY, lat=SRC_LAT + 1.0, capacity_free=1, census_as_of=FRESH)
    stale = cand("a", census_as_of=STALE)
    _pair(fresh, stale, RankingRule.FRESH_CENSUS, req(lead_institution_ids=frozenset({"a"})))
    _pair(fresh, stale, RankingRule.FRESH_CENSUS, req(signed_institution_ids=("a",)))


def test_stale_candidate_is_eligible_but_flagged() -> None:
    d = route(req(), [cand("a", census_as_of=STALE)], [])
    assert d.target is not None
    assert d.target.stale
    assert "stale" in d.explanation


def test_stale_boundaries() -> None:
    exactly_stale_after = cand("a", census_as_of=NOW - timedelta(hours=1))
    exactly_exclude_after = cand("b", census_as_of=NOW - timedelta(hours=24))
    d = route(req(), [exactly_stale_after, exactly_exclude_after], [])
    assert d.target is not None
    assert not d.target.stale
    assert d.alternatives[0].stale
    assert d.excluded == ()


def test_signed_institution_beats_lead() -> None:
    signed = cand("z", level=L.TERTIARY, lat=SRC_LAT + 1.0)
    lead = cand("a")
    _pair(signed, lead, RankingRule.SIGNED_INSTITUTION, req(signed_institution_ids=("z",)))
    request = req(signed_institution_ids=("z",), lead_institution_ids=frozenset({"a"}))
    _pair(signed, lead, RankingRule.SIGNED_INSTITUTION, request)


def test_signed_institutions_keep_the_given_order() -> None:
    request = req(signed_institution_ids=("s2", "s1"))
    _pair(cand("s2", level=L.TERTIARY), cand("s1"), RankingRule.SIGNED_INSTITUTION, request)


def test_lead_beats_lower_level() -> None:
    lead = cand("z", level=L.TERTIARY, lat=SRC_LAT + 1.0)
    _pair(lead, cand("a"), RankingRule.LEAD_HOSPITAL, req(lead_institution_ids=frozenset({"z"})))


def test_lowest_adequate_level_beats_distance() -> None:
    county = cand("z", level=L.SECONDARY, lat=SRC_LAT + 1.0)
    city = cand("a", level=L.TERTIARY, lat=SRC_LAT + 0.01)
    _pair(county, city, RankingRule.LOWEST_ADEQUATE_LEVEL)


def test_distance_beats_free_share() -> None:
    near = cand("z", lat=SRC_LAT + 0.1, capacity_free=1)
    far = cand("a", lat=SRC_LAT + 0.5, capacity_free=90)
    _pair(near, far, RankingRule.TRAVEL_DISTANCE)
    d = route(req(), [near, far], [])
    assert "nearest" in d.explanation
    assert "11.1 km" in d.explanation


def test_unknown_distance_ranks_last() -> None:
    known = cand("z", lat=SRC_LAT + 2.0, capacity_free=1)
    unknown = cand("a", lat=None, lon=None, capacity_free=90)
    _pair(known, unknown, RankingRule.TRAVEL_DISTANCE)
    d = route(req(), [unknown], [])
    assert d.target is not None
    assert d.target.distance_km is None


def test_unknown_source_position_skips_distance() -> None:
    roomy = cand("z", lat=SRC_LAT + 1.0, capacity_free=90)
    tight = cand("a", lat=SRC_LAT + 0.01, capacity_free=1)
    _pair(roomy, tight, RankingRule.FREE_SHARE, req(source_lat=None, source_lon=None))


def test_distance_compared_at_one_decimal() -> None:
    # 0.0001 degrees of latitude is about 11 m: same distance after rounding, so share decides.
    a = cand("z", lat=SRC_LAT + 0.1, capacity_free=50)
    b = cand("a", lat=SRC_LAT + 0.1001, capacity_free=10)
    _pair(a, b, RankingRule.FREE_SHARE)


def test_free_share_is_a_share_not_a_count() -> None:
    small_but_empty = cand("z", capacity_free=8, capacity_total=10)
    big_but_busy = cand("a", capacity_free=30, capacity_total=300)
    _pair(small_but_empty, big_but_busy, RankingRule.FREE_SHARE)


def test_unknown_share_ranks_last() -> None:
    _pair(cand("z", capacity_free=1), cand("a", capacity_total=None), RankingRule.FREE_SHARE)
    _pair(cand("z", capacity_free=1), cand("a", capacity_total=0), RankingRule.FREE_SHARE)


def test_tie_break_on_code_then_id() -> None:
    _pair(cand("z", code="A01"), cand("a", code="B01"), RankingRule.TIE_BREAK)
    _pair(cand("a", code="C01"), cand("b", code="C01"), RankingRule.TIE_BREAK)


def test_rules_of_a_longer_list() -> None:
    members = [
        cand("e", census_as_of=STALE),
        cand("d", capacity_free=5),
        cand("c", level=L.TERTIARY),
        cand("b"),
        cand("a", lat=SRC_LAT + 0.5),
        cand("lead", level=L.TERTIARY),
    ]
    d = route(req(lead_institution_ids=frozenset({"lead"})), members, [])
    assert ranked_ids(d) == ["lead", "b", "d", "a", "c", "e"]
    assert [r.rank for r in (d.target, *d.alternatives) if r] == [1, 2, 3, 4, 5, 6]
    rules = [r.rule for r in (d.target, *d.alternatives) if r]
    assert rules == [
        RankingRule.LEAD_HOSPITAL,
        RankingRule.LEAD_HOSPITAL,  # b is below lead because lead is the lead hospital
        RankingRule.FREE_SHARE,
        RankingRule.TRAVEL_DISTANCE,
        RankingRule.LOWEST_ADEQUATE_LEVEL,
        RankingRule.FRESH_CENSUS,
    ]


# -- patient choice ----------------------------------------------------------------------------


def test_patient_choice_allowed() -> None:
    members = [cand("a"), cand("b", level=L.TERTIARY), cand("c", capacity_free=1)]
    d = route(req(patient_choice_id="b"), members, [])
    assert d.outcome is RoutingOutcome.ROUTED
    assert ranked_ids(d) == ["b", "a", "c"]
    assert d.target is not None
    assert d.target.rule is RankingRule.PATIENT_CHOICE
    assert d.alternatives[0].rule is RankingRule.PATIENT_CHOICE
    assert d.alternatives[1].rule is RankingRule.FREE_SHARE
    assert "patient's own choice" in d.explanation
    assert "Hospital b" in d.explanation


def test_patient_choice_of_the_best_candidate() -> None:
    d = route(req(patient_choice_id="a"), [cand("a"), cand("b", capacity_free=1)], [])
    assert ranked_ids(d) == ["a", "b"]
    assert d.target is not None
    assert d.target.rule is RankingRule.PATIENT_CHOICE


def test_patient_choice_of_a_partner_goes_out_of_consortium() -> None:
    d = route(req(patient_choice_id="city"), [cand("a")], [partner("city")])
    assert d.outcome is RoutingOutcome.OUT_OF_CONSORTIUM
    assert ranked_ids(d) == ["city", "a"]
    assert d.target is not None
    assert not d.target.in_consortium
    assert "No consortium member" not in d.explanation
    assert "patient's own choice" in d.explanation


@pytest.mark.parametrize(
    ("choice", "reason"),
    [
        ("full", ExclusionReason.NO_FREE_CAPACITY),
        ("src", ExclusionReason.IS_SOURCE),
        ("unknown", ExclusionReason.NOT_IN_CONSORTIUM),
        ("city", ExclusionReason.SPECIALTY_NOT_OFFERED),
        ("declined", ExclusionReason.PREVIOUSLY_DECLINED),
    ],
)
def test_patient_choice_refused(choice: str, reason: ExclusionReason) -> None:
    members = [cand("a"), cand("full", capacity_free=0), cand("src"), cand("declined")]
    partners = [partner("city", specialties=frozenset({"04"}))]
    request = req(patient_choice_id=choice, excluded_institution_ids=frozenset({"declined"}))
    with pytest.raises(PatientChoiceNotAllowed) as info:
        route(request, members, partners)
    assert info.value.institution_id == choice
    assert info.value.reason is reason


# -- partners, waitlist ------------------------------------------------------------------------


def test_falls_through_to_partners() -> None:
    members = [cand("a", capacity_free=0), cand("b", specialties=frozenset({"04"}))]
    partners = [
        partner("far", lat=SRC_LAT + 2.0, name="Far City Hospital"),
        partner("near", lat=SRC_LAT + 1.0, name="Nanping First Hospital"),
        partner("shut", active=False),
    ]
    d = route(req(lead_institution_ids=frozenset({"a"})), members, partners)
    assert d.outcome is RoutingOutcome.OUT_OF_CONSORTIUM
    assert ranked_ids(d) == ["near", "far"]
    assert d.target is not None
    assert not d.target.in_consortium
    assert d.target.rule is RankingRule.TRAVEL_DISTANCE
    assert [(x.institution_id, x.reason, x.in_consortium) for x in d.excluded] == [
        ("a", ExclusionReason.NO_FREE_CAPACITY, True),
        ("b", ExclusionReason.SPECIALTY_NOT_OFFERED, True),
        ("shut", ExclusionReason.INACTIVE, False),
    ]
    assert "Nanping First Hospital" in d.explanation
    assert "No consortium member can take the patient" in d.explanation
    assert "full: 1" in d.explanation


def test_partners_ignore_signed_and_lead() -> None:
    partners = [partner("signed", lat=SRC_LAT + 2.0), partner("near", lat=SRC_LAT + 1.0)]
    request = req(signed_institution_ids=("signed",), lead_institution_ids=frozenset({"signed"}))
    d = route(request, [], partners)
    assert ranked_ids(d) == ["near", "signed"]


def test_partners_listed_when_a_member_wins() -> None:
    members = [cand("a"), cand("b", lat=SRC_LAT + 0.2)]
    partners = [partner("city", lat=SRC_LAT + 0.01), partner("full", capacity_free=0)]
    d = route(req(), members, partners)
    assert d.outcome is RoutingOutcome.ROUTED
    assert ranked_ids(d) == ["a", "b", "city"]
    city = d.alternatives[1]
    assert not city.in_consortium
    assert city.rank == 3
    assert city.rule is RankingRule.CONSORTIUM_MEMBER
    assert [(x.institution_id, x.in_consortium) for x in d.excluded] == [("full", False)]


def test_only_member_beats_partner() -> None:
    d = route(req(), [cand("a")], [partner("city")])
    assert d.target is not None
    assert d.target.rule is RankingRule.CONSORTIUM_MEMBER
    assert "only eligible member" in d.explanation


def test_institution_listed_as_member_and_partner_counts_once() -> None:
    d = route(req(), [cand("a")], [partner("a")])
    assert ranked_ids(d) == ["a"]
    assert d.excluded == ()


def test_waitlisted_when_nobody_can_take_the_patient() -> None:
    members = [cand("a", capacity_free=0), cand("b", capacity_free=0)]
    d = route(req(), members, [partner("city", census_as_of=None)])
    assert d.outcome is RoutingOutcome.WAITLISTED
    assert d.target is None
    assert d.alternatives == ()
    assert len(d.excluded) == 3
    assert d.explanation.startswith("Waitlisted")
    assert "full: 2" in d.explanation
    assert "stale or missing census: 1" in d.explanation


def test_waitlisted_without_any_candidate() -> None:
    d = route(req(), [], [])
    assert d.outcome is RoutingOutcome.WAITLISTED
    assert "no candidates" in d.explanation


def test_previously_declined_moves_on_to_the_next() -> None:
    members = [cand("a"), cand("b", capacity_free=1)]
    d = route(req(excluded_institution_ids=frozenset({"a"})), members, [])
    assert ranked_ids(d) == ["b"]
    assert d.target is not None
    assert d.target.rule is RankingRule.ONLY_CANDIDATE
    assert [(x.institution_id, x.reason) for x in d.excluded] == [
        ("a", ExclusionReason.PREVIOUSLY_DECLINED)
    ]


# -- green channel -----------------------------------------------------------------------------


def test_green_channel_goes_to_nearest_centre_even_when_full() -> None:
    stroke = frozenset({Centre.STROKE})
    members = [
        cand("lead", level=L.SECONDARY, lat=SRC_LAT + 0.5, centres=stroke),
        cand("near", capacity_free=0, lat=SRC_LAT + 0.1, centres=stroke, census_as_of=None),
        cand("nocentre", lat=SRC_LAT + 0.01, specialties=frozenset({"03.03"})),
    ]
    request = req(
        green_channel=Centre.STROKE,
        lead_institution_ids=frozenset({"lead"}),
        specialty_code="03.03",
    )
    d = route(request, members, [])
    assert d.outcome is RoutingOutcome.ROUTED
    assert ranked_ids(d) == ["near", "lead"]
    assert d.target is not None
    assert d.target.rule is RankingRule.TRAVEL_DISTANCE
    assert d.target.overflow
    assert d.overflow
    assert not d.alternatives[0].overflow
    assert [(x.institution_id, x.reason) for x in d.excluded] == [
        ("nocentre", ExclusionReason.CENTRE_NOT_HELD)
    ]
    assert d.explanation.startswith("Green channel (stroke): Routed to Hospital near")
    assert "overflow" in d.explanation


def test_green_channel_falls_through_to_partner() -> None:
    trauma = frozenset({Centre.TRAUMA})
    d = route(req(green_channel=Centre.TRAUMA), [cand("a")], [partner("city", centres=trauma)])
    assert d.outcome is RoutingOutcome.OUT_OF_CONSORTIUM
    assert ranked_ids(d) == ["city"]
    assert not d.overflow


# -- request validation, serialisation ---------------------------------------------------------


def test_request_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="aware"):
        req(now=datetime(2024, 5, 1, 8, 0))  # deliberately naive


def test_request_needs_consistent_staleness() -> None:
    with pytest.raises(ValueError, match="stale_after"):
        req(stale_after=timedelta(hours=25))


def _plain(value: object) -> None:
    """Assert that ``value`` holds only plain JSON types (no enum subclasses)."""
    if isinstance(value, dict):
        for k, v in value.items():
            assert type(k) is str
            _plain(v)
    elif isinstance(value, list):
        for v in value:
            _plain(v)
    else:
        assert value is None or type(value) in (str, int, float, bool)


def test_decision_to_dict_is_json() -> None:
    members = [cand("a"), cand("b", capacity_free=0)]
    d = route(req(), members, [partner("city")])
    out = decision_to_dict(d)
    _plain(out)
    assert json.loads(json.dumps(out)) == out
    assert out["outcome"] == "routed"
    assert out["target"]["institution_id"] == "a"
    assert out["target"]["level"] == "secondary"
    assert out["target"]["rule"] == "consortium_member"
    assert out["alternatives"][0]["in_consortium"] is False
    assert out["excluded"][0]["reason"] == "no_free_capacity"
    assert out["explanation"] == d.explanation
    empty = decision_to_dict(route(req(), [], []))
    assert empty["target"] is None
    _plain(empty)


# -- geo ---------------------------------------------------------------------------------------


def test_haversine_known_distances() -> None:
    assert haversine_km(SRC_LAT, SRC_LON, SRC_LAT, SRC_LON) == 0.0
    # Beijing (Tiananmen) to Shanghai (People's Square): about 1,067 km
    assert haversine_km(39.9087, 116.3975, 31.2304, 121.4737) == pytest.approx(1067, abs=5)
    # one degree of latitude: about 111.2 km
    assert haversine_km(0.0, 0.0, 1.0, 0.0) == pytest.approx(111.195, abs=0.01)
    # antipodes: half the circumference
    assert haversine_km(0.0, 0.0, 0.0, 180.0) == pytest.approx(math.pi * 6371.0088, rel=1e-9)
    assert haversine_km(10, 20, 30, 40) == pytest.approx(haversine_km(30, 40, 10, 20))


def test_distance_from_matches_haversine() -> None:
    rng = random.Random(7)
    from_source = distance_from_km(SRC_LAT, SRC_LON)
    for _ in range(1000):
        lat, lon = rng.uniform(-90, 90), rng.uniform(-180, 180)
        assert from_source(lat, lon) == pytest.approx(haversine_km(SRC_LAT, SRC_LON, lat, lon))


def test_sqlite_without_math_functions_gets_them_from_python() -> None:
    """The pre-filter's distance (SQL) on a SQLite built without its math functions."""
    conn = sqlite3.connect(":memory:")
    assert register_math_functions(conn, force=True) == ["sin", "cos", "asin", "sqrt"]
    assert register_math_functions(conn) == []  # present now
    row = conn.execute("SELECT sin(0.5), cos(0.5), asin(0.5), sqrt(2), sqrt(-1), sin(NULL)")
    assert row.fetchone() == (
        math.sin(0.5),
        math.cos(0.5),
        math.asin(0.5),
        math.sqrt(2),
        None,
        None,
    )


# -- property-style ----------------------------------------------------------------------------


def _random_candidate(rng: random.Random, i: int, member: bool) -> Candidate:
    census_choices = [FRESH, STALE, VERY_STALE, None, NOW - timedelta(minutes=59)]
    return Candidate(
        institution_id="src" if member and i % 97 == 0 else f"i{i:05d}",
        code=f"C{rng.randrange(50):03d}",
        name=f"Institution {i}",
        level=rng.choice(list(L)),
        active=rng.random() > 0.1,
        in_consortium=member if rng.random() > 0.05 else not member,
        specialties=frozenset(rng.sample(["03", "03.04", "03.03", "04", "20"], rng.randrange(4))),
        centres=frozenset(),
        lat=None if rng.random() < 0.1 else SRC_LAT + rng.uniform(-1, 1),
        lon=None if rng.random() < 0.1 else SRC_LON + rng.uniform(-1, 1),
        capacity_free=None if rng.random() < 0.05 else rng.randrange(-1, 30),
        capacity_total=rng.choice([None, 0, 30, 60, 120]),
        census_as_of=rng.choice(census_choices),
    )


def _expected_reason(c: Candidate, r: RoutingRequest, member: bool) -> ExclusionReason | None:
    """Reference eligibility, written independently of the implementation."""
    checks = [
        (c.institution_id == r.source_institution_id, ExclusionReason.IS_SOURCE),
        (member and not c.in_consortium, ExclusionReason.NOT_IN_CONSORTIUM),
        (not c.active, ExclusionReason.INACTIVE),
        (c.level.rank <= r.source_level.rank, ExclusionReason.LEVEL_NOT_HIGHER),
        (
            not any(specialty_covers(s, r.specialty_code) for s in c.specialties),
            ExclusionReason.SPECIALTY_NOT_OFFERED,
        ),
        (c.institution_id in r.excluded_institution_ids, ExclusionReason.PREVIOUSLY_DECLINED),
        (
            c.census_as_of is None
            or c.capacity_free is None
            or r.now - c.census_as_of > r.stale_exclude_after,
            ExclusionReason.STALE_CENSUS,
        ),
        ((c.capacity_free or 0) <= 0, ExclusionReason.NO_FREE_CAPACITY),
    ]
    return next((reason for failed, reason in checks if failed), None)


def _reference_key(x: RankedCandidate, c: Candidate, r: RoutingRequest) -> tuple[Any, ...]:
    assert c.census_as_of is not None
    assert x.stale is (r.now - c.census_as_of > r.stale_after)
    if c.lat is None or c.lon is None:
        assert x.distance_km is None
    else:
        assert x.distance_km == round(haversine_km(SRC_LAT, SRC_LON, c.lat, c.lon), 1)
    signed = (
        r.signed_institution_ids.index(x.institution_id)
        if x.in_consortium and x.institution_id in r.signed_institution_ids
        else len(r.signed_institution_ids)
    )
    lead = x.in_consortium and x.institution_id in r.lead_institution_ids
    share = (
        -(x.capacity_free / x.capacity_total)
        if x.capacity_free is not None and x.capacity_total
        else math.inf
    )
    # how many dotted levels the best offered code is above the requested one (0: offers it)
    offered = [o for o in c.specialties if specialty_covers(o, r.specialty_code)]
    gap = r.specialty_code.count(".") - max(o.count(".") for o in offered)
    assert x.specialty_match == ("exact" if gap == 0 else "parent")
    return (
        not x.in_consortium,
        gap,
        x.stale,
        signed,
        not lead,
        x.level.rank,
        math.inf if x.distance_km is None else x.distance_km,
        share,
        x.code,
        x.institution_id,
    )


@pytest.mark.parametrize("seed", range(40))
def test_random_candidates(seed: int) -> None:
    rng = random.Random(seed)
    n_members, n_partners = rng.randrange(0, 40), rng.randrange(0, 8)
    members = [_random_candidate(rng, i, True) for i in range(n_members)]
    partners = [_random_candidate(rng, 1000 + i, False) for i in range(n_partners)]
    ids = [c.institution_id for c in (*members, *partners)]
    pool = [i for i in ids if i != "src"]
    request = req(
        source_level=rng.choice([L.VILLAGE, L.PRIMARY]),
        specialty_code=rng.choice(["03", "03.04", "04"]),
        lead_institution_ids=frozenset(rng.sample(pool, min(len(pool), rng.randrange(3)))),
        signed_institution_ids=tuple(rng.sample(pool, min(len(pool), rng.randrange(3)))),
        excluded_institution_ids=frozenset(rng.sample(pool, min(len(pool), rng.randrange(3)))),
    )
    d = route(request, members, partners)

    expected = {c.institution_id: _expected_reason(c, request, True) for c in members}
    expected |= {c.institution_id: _expected_reason(c, request, False) for c in partners}
    ranked = [r for r in (d.target, *d.alternatives) if r is not None]

    # every candidate appears exactly once, as ranked or excluded, with the reference reason
    assert sorted([r.institution_id for r in ranked] + [x.institution_id for x in d.excluded]) == (
        sorted(ids)
    )
    assert {x.institution_id: x.reason for x in d.excluded} == {
        k: v for k, v in expected.items() if v is not None
    }
    assert all(expected[r.institution_id] is None for r in ranked)

    # outcome and target
    eligible_members = [c for c in members if expected[c.institution_id] is None]
    if d.target is None:
        assert d.outcome is RoutingOutcome.WAITLISTED
        assert all(v is not None for v in expected.values())
    else:
        assert expected[d.target.institution_id] is None
        assert d.target.in_consortium is bool(eligible_members)
        want = RoutingOutcome.ROUTED if eligible_members else RoutingOutcome.OUT_OF_CONSORTIUM
        assert d.outcome is want

    # order, ranks and rules
    by_id = {c.institution_id: c for c in (*members, *partners)}
    keys = [_reference_key(r, by_id[r.institution_id], request) for r in ranked]
    assert keys == sorted(keys)
    assert [r.rank for r in ranked] == list(range(1, len(ranked) + 1))
    names = [
        RankingRule.CONSORTIUM_MEMBER,
        RankingRule.SPECIALTY_MATCH,
        RankingRule.FRESH_CENSUS,
        RankingRule.SIGNED_INSTITUTION,
        RankingRule.LEAD_HOSPITAL,
        RankingRule.LOWEST_ADEQUATE_LEVEL,
        RankingRule.TRAVEL_DISTANCE,
        RankingRule.FREE_SHARE,
    ]
    for above, below, r in zip(keys, keys[1:], ranked[1:], strict=False):
        diff = next((i for i in range(len(names)) if above[i] != below[i]), None)
        assert r.rule is (RankingRule.TIE_BREAK if diff is None else names[diff])
    if len(ranked) == 1:
        assert ranked[0].rule is RankingRule.ONLY_CANDIDATE
    if d.target is not None:
        assert d.target.name in d.explanation
    json.dumps(decision_to_dict(d))


@pytest.mark.parametrize("seed", range(20))
def test_random_patient_choice(seed: int) -> None:
    rng = random.Random(1000 + seed)
    members = [_random_candidate(rng, i, True) for i in range(1, 30)]
    partners = [_random_candidate(rng, 1000 + i, False) for i in range(1, 5)]
    normal = route(req(), members, partners)
    ranked = [r for r in (normal.target, *normal.alternatives) if r is not None]
    if not ranked:
        return
    choice = rng.choice(ranked)
    d = route(req(patient_choice_id=choice.institution_id), members, partners)
    assert d.target is not None
    assert d.target.institution_id == choice.institution_id
    assert d.target.rule is RankingRule.PATIENT_CHOICE
    assert d.outcome is (
        RoutingOutcome.ROUTED if choice.in_consortium else RoutingOutcome.OUT_OF_CONSORTIUM
    )
    rest = [r.institution_id for r in ranked if r.institution_id != choice.institution_id]
    assert [a.institution_id for a in d.alternatives] == rest
    if d.alternatives:
        assert d.alternatives[0].rule is RankingRule.PATIENT_CHOICE
    assert d.excluded == normal.excluded


def test_ten_thousand_candidates_are_all_accounted_for() -> None:
    """Speed is measured by bench/, not here; this checks the large case is complete."""
    rng = random.Random(10_000)
    members = [_random_candidate(rng, i, True) for i in range(9_000)]
    partners = [_random_candidate(rng, 10_000 + i, False) for i in range(1_000)]
    request = req(
        lead_institution_ids=frozenset({"i00001"}), signed_institution_ids=("i00002", "i00003")
    )
    d = route(request, members, partners)
    assert len(d.alternatives) + len(d.excluded) + 1 == 10_000


# -- sub-specialty matching and the words of each entry ------------------------------------------


def test_sub_specialty_ranks_before_parent_only_even_when_the_parent_is_the_lead() -> None:
    cardio = cand("cardio", name="Cardiology Centre", specialties=frozenset({"03.04"}))
    general = cand("general", name="Township Centre", specialties=frozenset({"03"}))
    names = {"03": "internal medicine", "03.04": "cardiology"}
    d = route(
        req(lead_institution_ids=frozenset({"general"}), specialty_names=names),
        [general, cardio],
        [],
    )
    assert ranked_ids(d) == ["cardio", "general"]
    assert d.target is not None and d.target.specialty_match == "exact"
    assert d.target.rule is RankingRule.SPECIALTY_MATCH
    second = d.alternatives[0]
    assert (second.specialty_match, second.offered_specialty) == ("parent", "03")
    assert second.rule is RankingRule.SPECIALTY_MATCH
    assert "offers only internal medicine (03), not cardiology (03.04)" in second.why
    assert second.why.startswith("after Cardiology Centre")


def test_parent_only_match_excluded_when_the_policy_says_so() -> None:
    general = cand("general", name="Township Centre", specialties=frozenset({"03"}))
    names = {"03": "internal medicine", "03.04": "cardiology"}
    d = route(req(parent_only_eligible=False, specialty_names=names), [general], [])
    assert d.outcome is RoutingOutcome.WAITLISTED
    (x,) = d.excluded
    assert x.reason is ExclusionReason.ONLY_PARENT_SPECIALTY
    assert x.detail == "offers only internal medicine (03), not cardiology (03.04)"


def test_parent_only_target_says_so_in_the_explanation() -> None:
    general = cand("general", name="Township Centre", specialties=frozenset({"03"}))
    d = route(req(specialty_names={"03": "internal medicine"}), [general], [])
    assert d.target is not None and d.target.specialty_match == "parent"
    assert d.explanation.endswith("It offers only internal medicine (03), not 03.04.")


def test_second_entry_says_the_first_is_the_lead_not_itself() -> None:
    members = [cand("lead", name="County Hospital"), cand("b", name="TCM Hospital")]
    d = route(req(lead_institution_ids=frozenset({"lead"})), members, [])
    assert d.target is not None
    assert d.target.why == "chosen: the consortium's lead hospital"
    assert d.target.why_zh.startswith("首选：医联体牵头医院")
    (second,) = d.alternatives
    assert second.rule is RankingRule.LEAD_HOSPITAL  # the rule the entry above won on
    assert second.why == "after County Hospital, the consortium's lead hospital"
    assert "County Hospital为医联体牵头医院" in second.why_zh


def test_every_entry_has_words() -> None:
    rng = random.Random(7)
    members = [_random_candidate(rng, i, True) for i in range(1, 40)]
    d = route(req(lead_institution_ids=frozenset({members[3].institution_id})), members, [])
    ranked = [r for r in (d.target, *d.alternatives) if r is not None]
    assert len(ranked) >= 3
    for above, entry in itertools.pairwise(ranked):
        assert entry.why.startswith(f"after {above.name}")
        assert entry.why_zh.startswith(f"排在{above.name}")


# -- bounded decisions: the listing, the counts, what the caller left out ----------------------


def _big_consortium(n: int, seed: int = 5) -> tuple[list[Candidate], list[Candidate]]:
    """``n`` members around the source: a tenth hospitals (some full, some stale), the rest
    primary and village institutions; two partners."""
    rng = random.Random(seed)
    members = [cand("src", level=L.PRIMARY, lat=SRC_LAT, lon=SRC_LON)]
    for i in range(1, n):
        lat, lon = SRC_LAT + rng.uniform(-0.5, 0.5), SRC_LON + rng.uniform(-0.5, 0.5)
        if i % 10 == 0:
            census = rng.choice([FRESH, FRESH, STALE, VERY_STALE])
            free = rng.choice([0, 3, 10, 25])
            members.append(
                cand(f"h{i:04d}", lat=lat, lon=lon, capacity_free=free, census_as_of=census)
            )
        else:
            level = L.PRIMARY if i % 3 else L.VILLAGE
            members.append(cand(f"p{i:04d}", level=level, lat=lat, lon=lon, capacity_free=None))
    partners = [partner("city"), partner("far", active=False)]
    return members, partners


def test_decision_lists_a_bounded_number_and_counts_all() -> None:
    members, partners = _big_consortium(500)
    d = route(req(lead_institution_ids=frozenset({"h0010"})), members, partners)
    out = decision_to_dict(d)
    assert len(out["excluded"]) == EXCLUDED_LISTED
    assert out["excluded_total"] == len(d.excluded) > EXCLUDED_LISTED
    assert out["excluded_truncated"] is True
    # the counts per reason add up to the total and agree with the full list
    assert sum(out["excluded_counts"].values()) == out["excluded_total"]
    counts: dict[str, int] = {}
    for x in d.excluded:
        counts[x.reason.value] = counts.get(x.reason.value, 0) + 1
    assert out["excluded_counts"] == counts
    assert list(out["excluded_counts"]) == [r.value for r in ExclusionReason if r.value in counts]
    assert out["excluded_counts"]["level_not_higher"] == 450
    assert len(out["alternatives"]) == ALTERNATIVES_LISTED
    assert out["alternatives_total"] == len(d.alternatives) > ALTERNATIVES_LISTED
    assert out["alternatives_truncated"] is True
    assert [a["rank"] for a in out["alternatives"]] == list(range(2, ALTERNATIVES_LISTED + 2))
    # a few hundred bytes an entry, whatever the size of the consortium
    assert len(json.dumps(out, ensure_ascii=False)) < 40_000


def test_decision_lists_everything_when_asked_and_when_small() -> None:
    members, partners = _big_consortium(500)
    d = route(req(), members, partners)
    full = decision_to_dict(d, excluded_limit=None, alternatives_limit=None)
    assert len(full["excluded"]) == full["excluded_total"] == len(d.excluded)
    assert len(full["alternatives"]) == full["alternatives_total"]
    assert full["excluded_truncated"] is False and full["alternatives_truncated"] is False
    # the bounded list is the head of the complete one
    assert decision_to_dict(d)["excluded"] == full["excluded"][:EXCLUDED_LISTED]
    small = decision_to_dict(route(req(), [cand("a"), cand("b", capacity_free=0)], []))
    assert small["excluded_total"] == 1 and small["excluded_truncated"] is False
    assert small["excluded_counts"] == {"no_free_capacity": 1}


def test_listing_names_first_what_a_clinic_asks_about_then_near_misses_nearest_first() -> None:
    members = [
        cand("src", level=L.PRIMARY, lat=SRC_LAT, lon=SRC_LON),
        cand("far-full", lat=SRC_LAT + 0.4, capacity_free=0),
        cand("near-full", lat=SRC_LAT + 0.1, capacity_free=0),
        cand("stale", lat=SRC_LAT + 0.2, census_as_of=VERY_STALE),
        cand("village", level=L.VILLAGE, lat=SRC_LAT + 0.01),
        cand("signed-2", level=L.PRIMARY, lat=SRC_LAT + 0.3),
        cand("signed-1", capacity_free=0, lat=SRC_LAT + 0.5),
        cand("lead", active=False, lat=SRC_LAT + 0.6),
        cand("declined", lat=SRC_LAT + 0.7),
        cand("chosen-ok"),
        cand("other", specialties=frozenset({"04"}), lat=SRC_LAT + 0.02),
    ]
    request = req(
        lead_institution_ids=frozenset({"lead"}),
        signed_institution_ids=("signed-1", "signed-2"),
        excluded_institution_ids=frozenset({"declined"}),
    )
    d = route(request, members, [partner("city", capacity_free=0)])
    listed = [x.institution_id for x in d.listed_exclusions()]
    assert listed == [
        "signed-1",
        "signed-2",
        "lead",
        "src",
        "declined",
        "city",
        "near-full",  # near misses, nearest first
        "stale",
        "far-full",
        "village",  # the others, nearest first
        "other",
    ]
    assert [x.institution_id for x in d.listed_exclusions(3)] == listed[:3]
    near = next(x for x in d.excluded if x.institution_id == "near-full")
    assert near.distance_km == pytest.approx(11.1, abs=0.05)


def test_left_out_members_are_counted_not_ranked() -> None:
    members, partners = _big_consortium(300)
    full = route(req(lead_institution_ids=frozenset({"h0010"})), members, partners)
    # what a database pre-filter would pass: the source, the lead, every hospital
    passed = [c for c in members if c.level is L.SECONDARY or c.institution_id == "src"]
    lower = {"level_not_higher": len(members) - len(passed)}
    left = LeftOut({ExclusionReason.LEVEL_NOT_HIGHER: lower["level_not_higher"]}, 0)
    part = route(req(lead_institution_ids=frozenset({"h0010"})), passed, partners, left)
    assert part.target == full.target
    assert part.alternatives == full.alternatives
    assert part.explanation == full.explanation
    assert part.exclusion_counts() == full.exclusion_counts()
    assert part.excluded_total == full.excluded_total
    a, b = decision_to_dict(part), decision_to_dict(full)
    for key in ("excluded_counts", "excluded_total", "alternatives", "alternatives_total"):
        assert a[key] == b[key]
    # eligible members left out rank below the listed ones: counted in the total only
    more = route(req(), passed[:40], partners, LeftOut({}, 7))
    assert more.alternatives_total == len(more.alternatives) + 7
    assert decision_to_dict(more)["alternatives_total"] == len(more.alternatives) + 7


def test_left_out_members_count_in_the_explanation() -> None:
    left = LeftOut({ExclusionReason.LEVEL_NOT_HIGHER: 8950, ExclusionReason.INACTIVE: 3}, 0)
    d = route(req(), [cand("a", capacity_free=0)], [], left)
    assert d.outcome is RoutingOutcome.WAITLISTED
    assert "inactive: 3, not of a higher level: 8950, full: 1" in d.explanation
    out = decision_to_dict(d)
    assert out["excluded_counts"] == {
        "inactive": 3,
        "level_not_higher": 8950,
        "no_free_capacity": 1,
    }
    assert out["excluded_total"] == 8954 and len(out["excluded"]) == 1
    assert out["excluded_truncated"] is True
    partnered = route(req(), [cand("a", capacity_free=0)], [partner("city")], left)
    assert "No consortium member can take the patient (inactive: 3, not of a higher" in (
        partnered.explanation
    )


def test_a_decision_stored_before_the_bound_reads_with_totals_from_its_lists() -> None:
    from app.api.schemas.referrals import DecisionOut

    members = [cand("a"), cand("b", capacity_free=0), cand("c", census_as_of=None)]
    stored = decision_to_dict(route(req(), members, [partner("city")]))
    for key in ("alternatives_total", "alternatives_truncated", "excluded_total"):
        del stored[key]
    del stored["excluded_counts"], stored["excluded_truncated"]
    for x in stored["excluded"]:
        del x["distance_km"]
    out = DecisionOut.model_validate(stored)
    assert out.excluded_total == 2 and out.alternatives_total == 1
    assert out.excluded_counts == {"stale_census": 1, "no_free_capacity": 1}
    assert out.excluded_truncated is False and out.alternatives_truncated is False
    assert out.excluded[0].distance_km is None
