"""Down-referral routing: stable patients back to primary care, and why.

Candidates are the consortium's primary institutions (township health centres, community
health service centres). Each is left out with the first reason that applies:
``is_source``, ``not_in_consortium``, ``inactive``, ``not_primary``, ``specialty_not_offered``
(the service needed, e.g. ``02`` general practice or ``21`` rehabilitation),
``previously_declined``, and for a rehabilitation bed ``no_free_capacity``.

Order: the patient's signed primary institution (family doctor) first; then the primary
institution that referred the patient up in this episode; then travel distance from the
hospital; then a stable tie-break on code. A named target (``requested_id``) that is not
eligible is refused with its reason. The decision has the same shape as up-routing's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.domain.enums import CareType, InstitutionLevel
from app.domain.geo import haversine_km
from app.domain.routing import (
    Candidate,
    Exclusion,
    ExclusionReason,
    PatientChoiceNotAllowed,
    RankedCandidate,
    RankingRule,
    RoutingDecision,
    RoutingOutcome,
    specialty_covers,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DownRequest:
    source_institution_id: str
    source_lat: float | None
    source_lon: float | None
    service_code: str
    care_type: CareType
    signed_institution_ids: tuple[str, ...] = ()
    episode_origin_id: str | None = None
    requested_id: str | None = None
    excluded_institution_ids: frozenset[str] = frozenset()


def _distance(r: DownRequest, c: Candidate) -> float | None:
    if r.source_lat is None or r.source_lon is None or c.lat is None or c.lon is None:
        return None
    return round(haversine_km(r.source_lat, r.source_lon, c.lat, c.lon), 1)


def _reason(c: Candidate, r: DownRequest) -> ExclusionReason | None:
    if c.institution_id == r.source_institution_id:
        return ExclusionReason.IS_SOURCE
    if not c.in_consortium:
        return ExclusionReason.NOT_IN_CONSORTIUM
    if not c.active:
        return ExclusionReason.INACTIVE
    if c.level is not InstitutionLevel.PRIMARY:
        return ExclusionReason.NOT_PRIMARY
    if not any(specialty_covers(o, r.service_code) for o in c.specialties):
        return ExclusionReason.SPECIALTY_NOT_OFFERED
    if c.institution_id in r.excluded_institution_ids:
        return ExclusionReason.PREVIOUSLY_DECLINED
    if r.care_type is CareType.INPATIENT and not c.capacity_free:
        return ExclusionReason.NO_FREE_CAPACITY
    return None


_WORDS = {
    ExclusionReason.IS_SOURCE: "the referring hospital itself",
    ExclusionReason.NOT_IN_CONSORTIUM: "not a member of the consortium",
    ExclusionReason.INACTIVE: "inactive",
    ExclusionReason.NOT_PRIMARY: "not a primary institution",
    ExclusionReason.SPECIALTY_NOT_OFFERED: "does not offer the service needed",
    ExclusionReason.PREVIOUSLY_DECLINED: "declined this referral before",
    ExclusionReason.NO_FREE_CAPACITY: "no free rehabilitation bed",
}


def route_down(request: DownRequest, members: Sequence[Candidate]) -> RoutingDecision:
    eligible: list[tuple[tuple[int, int, float, str, str], Candidate, float | None]] = []
    excluded: list[Exclusion] = []
    signed = {iid: i for i, iid in enumerate(request.signed_institution_ids)}
    for c in members:
        reason = _reason(c, request)
        if reason is not None:
            excluded.append(
                Exclusion(c.institution_id, c.code, c.name, reason, _WORDS[reason], c.in_consortium)
            )
            continue
        distance = _distance(request, c)
        key = (
            signed.get(c.institution_id, len(signed)),
            0 if c.institution_id == request.episode_origin_id else 1,
            distance if distance is not None else float("inf"),
            c.code,
            c.institution_id,
        )
        eligible.append((key, c, distance))
    if request.requested_id is not None and not any(
        c.institution_id == request.requested_id for _, c, _ in eligible
    ):
        reason = next(
            (x.reason for x in excluded if x.institution_id == request.requested_id),
            ExclusionReason.NOT_IN_CONSORTIUM,
        )
        raise PatientChoiceNotAllowed(request.requested_id, reason)
    eligible.sort(key=lambda e: (e[1].institution_id != request.requested_id, e[0]))
    ranked: list[RankedCandidate] = []
    for i, (_key, c, distance) in enumerate(eligible):
        rule = _rule(eligible, i, request)
        ranked.append(
            RankedCandidate(
                institution_id=c.institution_id,
                code=c.code,
                name=c.name,
                level=c.level,
                rank=i + 1,
                rule=rule,
                capacity_free=c.capacity_free,
                capacity_total=c.capacity_total,
                distance_km=distance,
                stale=False,
                in_consortium=True,
            )
        )
    target = ranked[0] if ranked else None
    return RoutingDecision(
        outcome=RoutingOutcome.ROUTED if target else RoutingOutcome.WAITLISTED,
        target=target,
        alternatives=tuple(ranked[1:]),
        excluded=tuple(excluded),
        explanation=_explain(target, request),
    )


def _rule(
    eligible: Sequence[tuple[tuple[int, int, float, str, str], Candidate, float | None]],
    i: int,
    request: DownRequest,
) -> RankingRule:
    if len(eligible) == 1:
        return RankingRule.ONLY_CANDIDATE
    if request.requested_id is not None and i <= 1:
        return RankingRule.PATIENT_CHOICE
    a = eligible[i - 1][0] if i > 0 else eligible[0][0]
    b = eligible[i][0] if i > 0 else eligible[1][0]
    for position, rule in enumerate(
        (
            RankingRule.SIGNED_INSTITUTION,
            RankingRule.EPISODE_ORIGIN,
            RankingRule.TRAVEL_DISTANCE,
        )
    ):
        if a[position] != b[position]:
            return rule
    return RankingRule.TIE_BREAK


def _explain(target: RankedCandidate | None, request: DownRequest) -> str:
    if target is None:
        return (
            "Waitlisted: no primary institution of the consortium can take the patient for "
            f"service {request.service_code}."
        )
    why = {
        RankingRule.SIGNED_INSTITUTION: "the patient's signed family-doctor institution",
        RankingRule.EPISODE_ORIGIN: "the primary institution that referred the patient up",
        RankingRule.TRAVEL_DISTANCE: "the nearest primary institution offering the service",
        RankingRule.PATIENT_CHOICE: "the institution named in the request",
        RankingRule.ONLY_CANDIDATE: "the only primary institution able to take the patient",
        RankingRule.TIE_BREAK: "a primary institution offering the service",
    }.get(target.rule, "a primary institution offering the service")
    return f"Referred down to {target.name}: {why}."
