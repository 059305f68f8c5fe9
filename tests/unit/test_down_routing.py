"""Down-referral routing (app/domain/down_routing.py): stable patients back to primary care.

Expected from the rules the service documents (README "Down-referral", the domain's
down-referral): only the consortium's primary institutions receive; the patient's signed
family-doctor institution comes first, then the primary institution that referred the patient
up in this episode, then the nearest one offering the service; a named target is honoured when
it can take the patient and refused with its reason when it cannot; institutions that declined
the referral are left out; with no one left the referral waits.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from app.domain.down_routing import DownRequest, route_down
from app.domain.enums import CareType, InstitutionLevel
from app.domain.routing import (
    Candidate,
    ExclusionReason,
    PatientChoiceNotAllowed,
    RankingRule,
    RoutingDecision,
    RoutingOutcome,
)

L = InstitutionLevel
R = ExclusionReason
HOSPITAL_LAT, HOSPITAL_LON = 27.37, 118.86  # the county hospital sending the patient down
KM_PER_DEGREE_LAT = 111.2  # along a meridian


def primary(institution_id: str, km: float | None = 10.0, **changes: Any) -> Candidate:
    """A township health centre of the consortium, ``km`` north of the hospital, offering
    general practice (02) and rehabilitation (21), with free rehabilitation beds."""
    base = Candidate(
        institution_id=institution_id,
        code=institution_id.upper(),
        name=f"Township centre {institution_id}",
        level=L.PRIMARY,
        active=True,
        in_consortium=True,
        specialties=frozenset({"02", "21"}),
        centres=frozenset(),
        lat=None if km is None else HOSPITAL_LAT + km / KM_PER_DEGREE_LAT,
        lon=None if km is None else HOSPITAL_LON,
        capacity_free=4,
        capacity_total=10,
        census_as_of=None,
    )
    return replace(base, **changes)


def request(**changes: Any) -> DownRequest:
    base = DownRequest(
        source_institution_id="hospital",
        source_lat=HOSPITAL_LAT,
        source_lon=HOSPITAL_LON,
        service_code="02",
        care_type=CareType.OUTPATIENT,
    )
    return replace(base, **changes)


def order(decision: RoutingDecision) -> list[str]:
    head = [] if decision.target is None else [decision.target.institution_id]
    return head + [a.institution_id for a in decision.alternatives]


def excluded(decision: RoutingDecision) -> dict[str, ExclusionReason]:
    return {x.institution_id: x.reason for x in decision.excluded}


# -- the order -----------------------------------------------------------------------------


def test_nearest_primary_institution_offering_the_service() -> None:
    members = [primary("far", 30), primary("near", 5), primary("mid", 15)]
    d = route_down(request(), members)
    assert d.outcome is RoutingOutcome.ROUTED
    assert order(d) == ["near", "mid", "far"]
    assert d.target is not None and d.target.rule is RankingRule.TRAVEL_DISTANCE
    assert [c.rank for c in (d.target, *d.alternatives)] == [1, 2, 3]
    assert d.target.distance_km == pytest.approx(5.0, abs=0.1)
    assert d.target.in_consortium and d.excluded == ()
    assert d.explanation == (
        "Referred down to Township centre near: the nearest primary institution offering the "
        "service."
    )


def test_signed_family_doctor_institution_comes_first() -> None:
    members = [primary("near", 2), primary("origin", 8), primary("signed", 40)]
    d = route_down(request(signed_institution_ids=("signed",), episode_origin_id="origin"), members)
    assert order(d) == ["signed", "origin", "near"]
    assert d.target is not None and d.target.rule is RankingRule.SIGNED_INSTITUTION
    assert "signed family-doctor institution" in d.explanation


def test_then_the_institution_that_referred_the_patient_up() -> None:
    members = [primary("near", 2), primary("origin", 25), primary("mid", 12)]
    d = route_down(request(episode_origin_id="origin"), members)
    assert order(d) == ["origin", "near", "mid"]
    assert d.target is not None and d.target.rule is RankingRule.EPISODE_ORIGIN
    assert "referred the patient up" in d.explanation


@pytest.mark.parametrize(
    ("signed", "reason"),
    [
        (primary("signed", 1, level=L.SECONDARY), R.NOT_PRIMARY),  # signed with a county hospital
        (primary("signed", 1, specialties=frozenset({"03"})), R.SPECIALTY_NOT_OFFERED),
        (primary("signed", 1, active=False), R.INACTIVE),
    ],
    ids=["not-primary", "no-service", "inactive"],
)
def test_a_signed_institution_that_cannot_take_the_patient_is_passed_over(
    signed: Candidate, reason: ExclusionReason
) -> None:
    members = [signed, primary("origin", 20), primary("near", 3)]
    d = route_down(request(signed_institution_ids=("signed",), episode_origin_id="origin"), members)
    assert order(d) == ["origin", "near"]
    assert excluded(d) == {"signed": reason}


def test_the_signed_order_is_the_patients() -> None:
    members = [primary("a", 5), primary("b", 9)]
    d = route_down(request(signed_institution_ids=("b", "a")), members)
    assert order(d) == ["b", "a"]


def test_unknown_distances_rank_after_known_ones_then_by_code() -> None:
    members = [primary("zz", None), primary("far", 30), primary("aa", None)]
    d = route_down(request(), members)
    assert order(d) == ["far", "aa", "zz"]
    assert d.alternatives[0].distance_km is None


def test_equal_distances_fall_back_to_the_code() -> None:
    members = [primary("b", 7), primary("a", 7)]
    d = route_down(request(), members)
    assert order(d) == ["a", "b"]
    assert d.target is not None and d.target.rule is RankingRule.TIE_BREAK


def test_no_hospital_position_orders_by_code() -> None:
    members = [primary("b", 3), primary("a", 30)]
    d = route_down(request(source_lat=None, source_lon=None), members)
    assert order(d) == ["a", "b"]
    assert d.target is not None and d.target.distance_km is None


def test_one_candidate_is_the_only_candidate() -> None:
    d = route_down(request(episode_origin_id="origin"), [primary("origin", 12)])
    assert d.target is not None and d.target.institution_id == "origin"
    assert d.target.rule is RankingRule.ONLY_CANDIDATE
    assert d.alternatives == ()


# -- the patient's choice ------------------------------------------------------------------


def test_the_requested_institution_is_honoured() -> None:
    members = [primary("signed", 2), primary("origin", 4), primary("chosen", 35)]
    d = route_down(
        request(
            signed_institution_ids=("signed",), episode_origin_id="origin", requested_id="chosen"
        ),
        members,
    )
    assert order(d) == ["chosen", "signed", "origin"]
    assert d.target is not None and d.target.rule is RankingRule.PATIENT_CHOICE
    assert "named in the request" in d.explanation


@pytest.mark.parametrize(
    ("chosen", "reason"),
    [
        (primary("chosen", 5, level=L.SECONDARY), R.NOT_PRIMARY),
        (primary("chosen", 5, level=L.VILLAGE), R.NOT_PRIMARY),
        (primary("chosen", 5, level=L.TERTIARY, in_consortium=False), R.NOT_IN_CONSORTIUM),
        (primary("chosen", 5, in_consortium=False), R.NOT_IN_CONSORTIUM),
        (primary("chosen", 5, active=False), R.INACTIVE),
        (primary("chosen", 5, specialties=frozenset({"21"})), R.SPECIALTY_NOT_OFFERED),
    ],
    ids=["county-hospital", "village-clinic", "partner", "other-consortium", "inactive", "no-02"],
)
def test_a_requested_institution_that_cannot_take_the_patient_is_refused(
    chosen: Candidate, reason: ExclusionReason
) -> None:
    with pytest.raises(PatientChoiceNotAllowed) as refused:
        route_down(request(requested_id="chosen"), [chosen, primary("other", 3)])
    assert (refused.value.institution_id, refused.value.reason) == ("chosen", reason)


def test_a_requested_institution_that_declined_is_refused() -> None:
    with pytest.raises(PatientChoiceNotAllowed) as refused:
        route_down(
            request(requested_id="chosen", excluded_institution_ids=frozenset({"chosen"})),
            [primary("chosen", 5), primary("other", 3)],
        )
    assert refused.value.reason is R.PREVIOUSLY_DECLINED


def test_a_requested_institution_without_a_rehabilitation_bed_is_refused() -> None:
    rehab = request(requested_id="chosen", service_code="21", care_type=CareType.INPATIENT)
    with pytest.raises(PatientChoiceNotAllowed) as refused:
        route_down(rehab, [primary("chosen", 5, capacity_free=0), primary("other", 3)])
    assert refused.value.reason is R.NO_FREE_CAPACITY


def test_an_unknown_requested_institution_is_refused_as_not_a_member() -> None:
    with pytest.raises(PatientChoiceNotAllowed) as refused:
        route_down(request(requested_id="nowhere"), [primary("other", 3)])
    assert (refused.value.institution_id, refused.value.reason) == ("nowhere", R.NOT_IN_CONSORTIUM)


def test_the_sending_hospital_cannot_be_requested() -> None:
    hospital = primary("hospital", 0, level=L.SECONDARY)
    with pytest.raises(PatientChoiceNotAllowed) as refused:
        route_down(request(requested_id="hospital"), [hospital, primary("other", 3)])
    assert refused.value.reason is R.IS_SOURCE


# -- who is left out, and why --------------------------------------------------------------


def test_institutions_that_declined_are_left_out() -> None:
    members = [primary("origin", 4), primary("next", 9), primary("last", 20)]
    d = route_down(
        request(episode_origin_id="origin", excluded_institution_ids=frozenset({"origin"})),
        members,
    )
    assert order(d) == ["next", "last"]
    assert excluded(d) == {"origin": R.PREVIOUSLY_DECLINED}
    assert d.excluded[0].detail == "declined this referral before"


def test_each_is_left_out_with_its_reason() -> None:
    members = [
        primary("hospital", 0, level=L.SECONDARY),  # the sender is among the members
        primary("county-tcm", 3, level=L.SECONDARY),
        primary("village", 2, level=L.VILLAGE),
        primary("elsewhere", 4, in_consortium=False),
        primary("closed", 5, active=False),
        primary("rehab-only", 6, specialties=frozenset({"21"})),
        primary("declined", 7),
        primary("ok", 8),
    ]
    d = route_down(request(excluded_institution_ids=frozenset({"declined"})), members)
    assert order(d) == ["ok"]
    assert excluded(d) == {
        "hospital": R.IS_SOURCE,
        "county-tcm": R.NOT_PRIMARY,
        "village": R.NOT_PRIMARY,
        "elsewhere": R.NOT_IN_CONSORTIUM,
        "closed": R.INACTIVE,
        "rehab-only": R.SPECIALTY_NOT_OFFERED,
        "declined": R.PREVIOUSLY_DECLINED,
    }
    outside = next(x for x in d.excluded if x.institution_id == "elsewhere")
    assert outside.in_consortium is False


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (primary("x", in_consortium=False, active=False), R.NOT_IN_CONSORTIUM),
        (primary("x", active=False, level=L.SECONDARY), R.INACTIVE),
        (primary("x", level=L.SECONDARY, specialties=frozenset({"03"})), R.NOT_PRIMARY),
        (primary("x", specialties=frozenset({"03"})), R.SPECIALTY_NOT_OFFERED),
    ],
    ids=["member-before-active", "active-before-level", "level-before-service", "service"],
)
def test_the_first_reason_that_applies_is_given(member: Candidate, reason: ExclusionReason) -> None:
    d = route_down(request(excluded_institution_ids=frozenset({"x"})), [member])
    assert excluded(d) == {"x": reason}


@pytest.mark.parametrize(
    ("offered", "service", "eligible"),
    [
        ({"21"}, "21", True),
        ({"02"}, "21", False),
        ({"21.01"}, "21", False),  # a sub-specialty alone is not the service
        ({"21"}, "21.01", True),  # the subject covers its sub-specialties
    ],
)
def test_the_service_needed_is_offered(offered: set[str], service: str, eligible: bool) -> None:
    d = route_down(request(service_code=service), [primary("a", specialties=frozenset(offered))])
    assert (d.target is not None) is eligible
    if not eligible:
        assert excluded(d) == {"a": R.SPECIALTY_NOT_OFFERED}


@pytest.mark.parametrize(
    ("care", "free", "eligible"),
    [
        (CareType.INPATIENT, 2, True),
        (CareType.INPATIENT, 0, False),
        (CareType.INPATIENT, None, False),  # no census: no bed known to be free
        (CareType.OUTPATIENT, 0, True),  # follow-up visits need no bed
        (CareType.OUTPATIENT, None, True),
    ],
)
def test_only_a_rehabilitation_bed_needs_free_capacity(
    care: CareType, free: int | None, eligible: bool
) -> None:
    d = route_down(request(service_code="21", care_type=care), [primary("a", capacity_free=free)])
    assert (d.target is not None) is eligible
    if not eligible:
        assert excluded(d) == {"a": R.NO_FREE_CAPACITY}


# -- no target -----------------------------------------------------------------------------


def test_no_primary_institution_left_waits() -> None:
    members = [primary("hospital", 0, level=L.SECONDARY), primary("a", 3, active=False)]
    d = route_down(request(service_code="21"), members)
    assert d.outcome is RoutingOutcome.WAITLISTED
    assert d.target is None and d.alternatives == ()
    assert excluded(d) == {"hospital": R.IS_SOURCE, "a": R.INACTIVE}
    assert d.explanation.startswith("Waitlisted") and "service 21" in d.explanation


def test_no_members_at_all_waits() -> None:
    d = route_down(request(), [])
    assert d.outcome is RoutingOutcome.WAITLISTED
    assert (d.target, d.alternatives, d.excluded) == (None, (), ())
