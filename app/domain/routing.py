"""Up-referral routing: pick the target institution and say why.

:func:`route` is a pure function of a :class:`RoutingRequest` and the candidate institutions the
caller loaded (the consortium's members and its configured upstream partners, with their capacity
figures for the requested specialty and care type). It reads no clock and no database; the
request carries ``now``.

Eligibility. Each candidate is checked in this order; the first failing check is the reason it is
left out (:class:`ExclusionReason`):

1. ``is_source``: it is the referring institution;
2. ``not_in_consortium``: an entry of ``members`` flagged ``in_consortium=False`` (never applied to
   ``partners``, which are outside the consortium by definition);
3. ``inactive``;
4. ``level_not_higher``: its level is not above the source's level;
5. ``specialty_not_offered``: see *specialty match* below;
6. ``previously_declined``: listed in ``excluded_institution_ids`` (it rejected this referral or let
   it expire);
7. ``stale_census``: no census ever reported (``census_as_of`` or ``capacity_free`` is None), or
   the census is older than ``stale_exclude_after``;
8. ``no_free_capacity``: ``capacity_free <= 0``.

A census older than ``stale_after`` (but not older than ``stale_exclude_after``) keeps the
candidate eligible but ranks it below every candidate with a fresh census.

An institution listed both in ``members`` and in ``partners`` is assessed once, as a member.

Specialty match. Codes of the national catalogue of medical subjects are dotted paths
(``03`` internal medicine, ``03.04`` cardiology). A candidate offering a code covers that code and
everything below it: offering ``03`` covers a request for ``03.04``. Not the other way round:
offering only ``03.04`` does not cover a request for ``03``. Matching is on whole dotted segments
(``03`` does not cover ``030``).

Order (a single sort key, earlier components decide first; :class:`RankingRule`):

0. ``consortium_member``: members before partners (partners only matter when no member is
   eligible, or when the patient chose one);
1. ``fresh_census``: fresh before stale;
2. ``signed_institution``: the patient's signed institutions first, in the order given
   (members only);
3. ``lead_hospital``: a hospital of the consortium's lead unit (members only);
4. ``lowest_adequate_level``: lower level first ("major illness stays in the county");
5. ``travel_distance``: great-circle distance from the source, rounded to 0.1 km, unknown last;
6. ``free_share``: higher ``capacity_free / capacity_total`` first, unknown share last;
7. ``tie_break``: ``code``, then ``institution_id``.

``consortium_member`` is the rule value that names why the first partner
ranks below the last member.

Each ranked entry records the rule that placed it: the first key component on which it differs
from the entry directly above it. The first entry records the component on which it beat the
second, or ``only_candidate`` when alone. When the patient's own choice is eligible it is ranked
first with ``patient_choice``; the rest keep their normal order, the first of them also recording
``patient_choice`` (it is second because of the patient's choice), the others as above.

Candidates left out by the caller. The service's database pre-filter passes only the members
that could be eligible and those a clinic asks about by name (``app.services.candidates``); the
others come as :class:`LeftOut`: the ineligible ones counted per reason (in the same order of
checks), and the number of eligible ones that rank below every member passed. They count in the
explanation and in :meth:`RoutingDecision.exclusion_counts`, never in the ranking.

Listing. :meth:`RoutingDecision.listed_exclusions` orders the exclusions as a clinic asks about
them: first
the named ones (the signed institutions in order, the lead hospital, the referring institution,
those that declined this referral, then the partners), then the near
misses (``only_parent_specialty``, ``stale_census``, ``no_free_capacity``), then the others
(``inactive``, ``level_not_higher``, ``specialty_not_offered``, ``centre_not_held``), each group
nearest first, then by code. :func:`decision_to_dict` lists the first ``EXCLUDED_LISTED`` and
counts all of them per reason.

Green channel (used when ``RoutingRequest.green_channel`` names a
centre): the patient must be received, so the centre replaces the specialty check
(``centre_not_held``), and neither a stale census nor full beds exclude anyone. The order is
members before partners, then distance (nearest first), then fresh census, free share and the
tie-break. A target without free capacity is flagged ``overflow`` for the council.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import chain, repeat
from operator import itemgetter
from typing import Any, Final

from app.domain.enums import CareType, Centre, InstitutionLevel
from app.domain.geo import distance_from_km

__all__ = [
    "ALTERNATIVES_LISTED",
    "EXCLUDED_LISTED",
    "NEAR_MISSES",
    "Candidate",
    "Exclusion",
    "ExclusionReason",
    "LeftOut",
    "PatientChoiceNotAllowed",
    "RankedCandidate",
    "RankingRule",
    "RoutingDecision",
    "RoutingOutcome",
    "RoutingRequest",
    "decision_to_dict",
    "route",
    "specialty_covers",
]


class RoutingOutcome(StrEnum):
    ROUTED = "routed"
    OUT_OF_CONSORTIUM = "out_of_consortium"
    WAITLISTED = "waitlisted"


class ExclusionReason(StrEnum):
    """Why a candidate is not eligible; declared in the order the checks run."""

    IS_SOURCE = "is_source"
    NOT_IN_CONSORTIUM = "not_in_consortium"
    INACTIVE = "inactive"
    LEVEL_NOT_HIGHER = "level_not_higher"
    SPECIALTY_NOT_OFFERED = "specialty_not_offered"
    CENTRE_NOT_HELD = "centre_not_held"
    PREVIOUSLY_DECLINED = "previously_declined"
    STALE_CENSUS = "stale_census"
    NO_FREE_CAPACITY = "no_free_capacity"
    NOT_PRIMARY = "not_primary"  # down-referral: only primary institutions receive
    #: it offers only a parent subject (03) of the requested sub-specialty (03.04) and the
    #: consortium's policy does not count parent-only matches for this care type
    ONLY_PARENT_SPECIALTY = "only_parent_specialty"


#: Exclusions of institutions that offer what is needed and failed only on this referral's
#: particulars (the policy on parent subjects, declined, census, capacity): listed before the
#: others (level, specialty, centre, inactive), which only ``exclusions=all`` names in full.
NEAR_MISSES: Final = frozenset(
    {
        ExclusionReason.ONLY_PARENT_SPECIALTY,
        ExclusionReason.PREVIOUSLY_DECLINED,
        ExclusionReason.STALE_CENSUS,
        ExclusionReason.NO_FREE_CAPACITY,
    }
)

#: what :func:`decision_to_dict` lists by default (the API answer and the stored attempt); the
#: rest is counted (``excluded_counts``, ``alternatives_total``)
EXCLUDED_LISTED: Final = 20
ALTERNATIVES_LISTED: Final = 20


class RankingRule(StrEnum):
    """The rule that put a ranked candidate in its place."""

    CONSORTIUM_MEMBER = "consortium_member"
    SPECIALTY_MATCH = "specialty_match"  # offers the requested sub-specialty, not only its parent
    FRESH_CENSUS = "fresh_census"
    SIGNED_INSTITUTION = "signed_institution"
    LEAD_HOSPITAL = "lead_hospital"
    LOWEST_ADEQUATE_LEVEL = "lowest_adequate_level"
    TRAVEL_DISTANCE = "travel_distance"
    FREE_SHARE = "free_share"
    TIE_BREAK = "tie_break"
    ONLY_CANDIDATE = "only_candidate"
    PATIENT_CHOICE = "patient_choice"
    FORWARDED = "forwarded_by_target"  # named by the hospital that forwarded the referral
    COUNCIL_DIRECTED = "council_directed"  # placed there by the consortium's council
    EPISODE_ORIGIN = "episode_origin"  # down-referral: back to who referred the patient up


# Module-level aliases for the hot loop: attribute access on an Enum class costs about 0.1 us
# in Python 3.11, which adds up over 10,000 candidates.
_IS_SOURCE: Final = ExclusionReason.IS_SOURCE
_NOT_IN_CONSORTIUM: Final = ExclusionReason.NOT_IN_CONSORTIUM
_INACTIVE: Final = ExclusionReason.INACTIVE
_LEVEL_NOT_HIGHER: Final = ExclusionReason.LEVEL_NOT_HIGHER
_SPECIALTY_NOT_OFFERED: Final = ExclusionReason.SPECIALTY_NOT_OFFERED
_CENTRE_NOT_HELD: Final = ExclusionReason.CENTRE_NOT_HELD
_PREVIOUSLY_DECLINED: Final = ExclusionReason.PREVIOUSLY_DECLINED
_STALE_CENSUS: Final = ExclusionReason.STALE_CENSUS
_NO_FREE_CAPACITY: Final = ExclusionReason.NO_FREE_CAPACITY
_TIE_BREAK: Final = RankingRule.TIE_BREAK
_ONLY_CANDIDATE: Final = RankingRule.ONLY_CANDIDATE
_PATIENT_CHOICE: Final = RankingRule.PATIENT_CHOICE


class PatientChoiceNotAllowed(Exception):
    """The institution the patient chose cannot take this referral."""

    def __init__(self, institution_id: str, reason: ExclusionReason) -> None:
        super().__init__(f"the patient's chosen institution is not eligible: {reason.value}")
        self.institution_id = institution_id
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Candidate:
    """An institution that might take the referral, with its capacity for this request.

    ``capacity_free``: free beds of the specialty (inpatient) or free slots on the wanted day
    (outpatient, examination); None when no census was ever reported. ``census_as_of`` is an
    aware UTC datetime.
    """

    institution_id: str
    code: str
    name: str
    level: InstitutionLevel
    active: bool
    in_consortium: bool
    specialties: frozenset[str]
    centres: frozenset[Centre]
    lat: float | None
    lon: float | None
    capacity_free: int | None
    capacity_total: int | None
    census_as_of: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingRequest:
    source_institution_id: str
    source_level: InstitutionLevel
    source_lat: float | None
    source_lon: float | None
    consortium_id: str
    #: the consortium's lead unit: one hospital, or several (Zhenghe's County Hospital with the
    #: County TCM and Maternity-and-Child hospitals); each ranks as ``lead_hospital``
    lead_institution_ids: frozenset[str]
    specialty_code: str
    care_type: CareType
    signed_institution_ids: tuple[str, ...] = ()
    patient_choice_id: str | None = None
    #: who named ``patient_choice_id``: the patient, the target that forwarded the referral, or
    #: the council (placed there even without a free place or a fresh census: overflow)
    choice_by: str = "patient"
    excluded_institution_ids: frozenset[str] = frozenset()
    now: datetime
    stale_after: timedelta
    stale_exclude_after: timedelta
    green_channel: Centre | None = None
    #: consortium policy: does an institution offering only a parent subject (03) count for a
    #: sub-specialty request (03.04)? (app/data/routing_policy.json, per care type)
    parent_only_eligible: bool = True
    #: specialty code -> readable name, for the explanations ("internal medicine (03)")
    specialty_names: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.now.tzinfo is None or self.now.utcoffset() is None:
            raise ValueError("now must be an aware datetime")
        if self.stale_after > self.stale_exclude_after:
            raise ValueError("stale_after must not exceed stale_exclude_after")


@dataclass(frozen=True, slots=True)
class RankedCandidate:
    institution_id: str
    code: str
    name: str
    level: InstitutionLevel
    rank: int
    rule: RankingRule
    capacity_free: int | None
    capacity_total: int | None
    distance_km: float | None
    stale: bool
    in_consortium: bool
    #: Green channel only: the target has no free capacity; the council is told.
    overflow: bool = False
    #: ``exact``: offers the requested specialty (or a code between it and the request);
    #: ``parent``: offers only a parent subject of it (``offered_specialty``)
    specialty_match: str = "exact"
    offered_specialty: str | None = None
    #: why it stands where it stands, in words a clinic can read to a patient (English, Chinese)
    why: str = ""
    why_zh: str = ""


@dataclass(frozen=True, slots=True)
class Exclusion:
    institution_id: str
    code: str
    name: str
    reason: ExclusionReason
    detail: str
    in_consortium: bool = True
    #: great-circle distance from the source, rounded to 0.1 km (None: a location is unknown)
    distance_km: float | None = None


@dataclass(frozen=True, slots=True)
class LeftOut:
    """Members the caller did not pass to :func:`route` (its database pre-filter found them
    ineligible, or ranked them below every eligible member it passed)."""

    #: ineligible members per reason: the first failing check, as :func:`route` would find it
    excluded: Mapping[ExclusionReason, int] = field(default_factory=dict)
    #: eligible members that rank below every eligible member passed
    eligible: int = 0


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    outcome: RoutingOutcome
    target: RankedCandidate | None
    alternatives: tuple[RankedCandidate, ...]
    excluded: tuple[Exclusion, ...]
    explanation: str
    #: candidates the caller left out, counted (see :class:`LeftOut`)
    left_out: LeftOut = field(default_factory=LeftOut)
    #: the order in which ``excluded`` is listed, as a sort key (module documentation); None:
    #: as ``excluded``. Applied when listed, to as many as are listed.
    listing_key: Callable[[Exclusion], Any] | None = field(default=None, compare=False, repr=False)

    @property
    def overflow(self) -> bool:
        return self.target is not None and self.target.overflow

    def exclusion_counts(self) -> dict[ExclusionReason, int]:
        """Every excluded candidate, those left out included, per reason (in check order)."""
        counts = Counter(x.reason for x in self.excluded)
        for reason, n in self.left_out.excluded.items():
            counts[reason] += n
        return {r: counts[r] for r in ExclusionReason if counts[r] > 0}

    @property
    def excluded_total(self) -> int:
        return len(self.excluded) + sum(self.left_out.excluded.values())

    @property
    def alternatives_total(self) -> int:
        return len(self.alternatives) + self.left_out.eligible

    def listed_exclusions(self, limit: int | None = None) -> tuple[Exclusion, ...]:
        """The first ``limit`` exclusions in listing order (all when None)."""
        key = self.listing_key
        if key is None:
            return self.excluded if limit is None else self.excluded[:limit]
        if limit is None:
            return tuple(sorted(self.excluded, key=key))
        return tuple(heapq.nsmallest(limit, self.excluded, key=key))


def specialty_covers(offered: str, requested: str) -> bool:
    """True when offering ``offered`` covers a request for ``requested`` (same code or a parent)."""
    return offered == requested or requested.startswith(offered + ".")


def _specialty_ancestors(code: str) -> frozenset[str]:
    """``"03.04.01"`` -> ``{"03", "03.04", "03.04.01"}``: every offered code that covers it."""
    parts = code.split(".")
    return frozenset(".".join(parts[: i + 1]) for i in range(len(parts)))


# -- ranking key -------------------------------------------------------------------------------

#: The ranking components as numbers, in the order of the mode's rules (_RULES, _GREEN_RULES).
_Components = tuple[float, ...]
#: The same order flattened for one fast sort: (number, number, number, number, code, id).
_SortKey = tuple[float, float, float, float, str, str]

_RULES: Final = (
    RankingRule.CONSORTIUM_MEMBER,
    RankingRule.SPECIALTY_MATCH,
    RankingRule.FRESH_CENSUS,
    RankingRule.SIGNED_INSTITUTION,
    RankingRule.LEAD_HOSPITAL,
    RankingRule.LOWEST_ADEQUATE_LEVEL,
    RankingRule.TRAVEL_DISTANCE,
    RankingRule.FREE_SHARE,
)
_GREEN_RULES: Final = (
    RankingRule.CONSORTIUM_MEMBER,
    RankingRule.TRAVEL_DISTANCE,
    RankingRule.FRESH_CENSUS,
    RankingRule.FREE_SHARE,
)

_INF: Final = math.inf


#: (sort key, components, candidate, is a member, stale census, distance in km rounded to 0.1)
#: and the parent subject it offers when it offers only that
_Eligible = tuple[_SortKey, _Components, Candidate, bool, bool, float | None, str | None]

_LEVEL_RANK: Final = {level: float(level.rank) for level in InstitutionLevel}


def _deciding_rule(a: _Components, b: _Components, rules: tuple[RankingRule, ...]) -> RankingRule:
    """The rule of the first component on which ``b`` differs from ``a`` (else the tie-break)."""
    if a != b:
        for i, rule in enumerate(rules):
            if a[i] != b[i]:
                return rule
    return _TIE_BREAK


# -- wording -----------------------------------------------------------------------------------

_REASON_SUMMARY: Final = {
    ExclusionReason.IS_SOURCE: "the referring institution",
    ExclusionReason.NOT_IN_CONSORTIUM: "not in the consortium",
    ExclusionReason.INACTIVE: "inactive",
    ExclusionReason.LEVEL_NOT_HIGHER: "not of a higher level",
    ExclusionReason.SPECIALTY_NOT_OFFERED: "without the specialty",
    ExclusionReason.CENTRE_NOT_HELD: "without the centre",
    ExclusionReason.PREVIOUSLY_DECLINED: "already declined",
    ExclusionReason.STALE_CENSUS: "stale or missing census",
    ExclusionReason.NO_FREE_CAPACITY: "full",
    ExclusionReason.ONLY_PARENT_SPECIALTY: "only the parent subject",
}


def _age_words(age: timedelta) -> str:
    minutes = int(age.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // (24 * 60)} d"


def _unit(care_type: CareType) -> str:
    return "beds" if care_type is CareType.INPATIENT else "slots"


def _capacity_words(free: int | None, total: int | None, unit: str) -> str:
    if free is None:
        return "no census"
    if total is None:
        return f"{free} {unit} free"
    return f"{free} of {total} {unit} free"


def _centre_words(centre: Centre) -> str:
    return centre.value.replace("_", " ")


def _summary(counts: Mapping[ExclusionReason, int]) -> str:
    if not any(counts.values()):
        return "no candidates"
    return ", ".join(f"{_REASON_SUMMARY[r]}: {counts[r]}" for r in ExclusionReason if counts.get(r))


def _why(target: RankedCandidate, request: RoutingRequest) -> str:
    kind = "member" if target.in_consortium else "partner"
    if request.green_channel is not None:
        kind += f" holding the {_centre_words(request.green_channel)} centre"
    rule = target.rule
    if rule is RankingRule.PATIENT_CHOICE:
        return "the patient's own choice"
    if rule is RankingRule.FORWARDED:
        return "named by the hospital that forwarded the referral"
    if rule is RankingRule.COUNCIL_DIRECTED:
        return "placed there by the consortium's council"
    if rule in (RankingRule.ONLY_CANDIDATE, RankingRule.CONSORTIUM_MEMBER):
        return f"the only eligible {kind}"
    if rule is RankingRule.SPECIALTY_MATCH:
        offered = _specialty_words(request, request.specialty_code)
        return f"the first eligible {kind} offering {offered}"
    if rule is RankingRule.FRESH_CENSUS:
        return f"the first eligible {kind} with a fresh capacity census"
    if rule is RankingRule.SIGNED_INSTITUTION:
        return "one of the patient's signed institutions"
    if rule is RankingRule.LEAD_HOSPITAL:
        if len(request.lead_institution_ids) > 1:
            return "a hospital of the consortium's lead unit"
        return "the consortium's lead hospital"
    if rule is RankingRule.LOWEST_ADEQUATE_LEVEL:
        return f"the lowest adequate level ({target.level.value})"
    if rule is RankingRule.TRAVEL_DISTANCE:
        return f"the nearest eligible {kind} ({target.distance_km:.1f} km)"
    if rule is RankingRule.FREE_SHARE:
        return f"the eligible {kind} with the highest share of free capacity"
    return f"first of equally ranked {kind}s by code"


def _explain(
    request: RoutingRequest,
    target: RankedCandidate | None,
    member_exclusions: Mapping[ExclusionReason, int],
    all_exclusions: Mapping[ExclusionReason, int],
    any_member_eligible: bool,
) -> str:
    prefix = ""
    if request.green_channel is not None:
        prefix = f"Green channel ({_centre_words(request.green_channel)}): "
    if target is None:
        return (
            f"{prefix}Waitlisted: no consortium member or partner can take the patient "
            f"({_summary(all_exclusions)})."
        )
    unit = _unit(request.care_type)
    capacity = _capacity_words(target.capacity_free, target.capacity_total, unit)
    if target.overflow:
        tail = (
            f"; it has no free capacity ({capacity}), so the overflow is flagged for the council."
        )
    else:
        tail = f" with free capacity ({capacity})."
    if target.stale:
        tail += " Its capacity census is stale."
    if target.specialty_match == "parent" and target.offered_specialty:
        tail += f" It {_only_parent_words(request, target.offered_specialty)}."
    why = _why(target, request)
    if target.in_consortium:
        return f"{prefix}Routed to {target.name}: {why}{tail}"
    lead_in = ""
    if not any_member_eligible:
        lead_in = f"No consortium member can take the patient ({_summary(member_exclusions)}). "
    return f"{prefix}{lead_in}Referred out of the consortium to {target.name}: {why}{tail}"


def _offered_ancestor(c: Candidate, ancestors: frozenset[str]) -> str:
    """The most specific code of ``ancestors`` that ``c`` offers."""
    return max(ancestors & c.specialties, key=len)


def _specialty_words(request: RoutingRequest, code: str) -> str:
    name = request.specialty_names.get(code)
    return f"{name} ({code})" if name else code


def _only_parent_words(request: RoutingRequest, offered: str) -> str:
    return (
        f"offers only {_specialty_words(request, offered)}, "
        f"not {_specialty_words(request, request.specialty_code)}"
    )


def _entry_why(
    entry: RankedCandidate, above: RankedCandidate | None, request: RoutingRequest
) -> tuple[str, str]:
    """Why ``entry`` stands where it stands (English, Chinese)."""
    rule = entry.rule
    if above is None:  # the first entry: why it was chosen
        en = f"chosen: {_why(entry, request)}"
        zh = f"首选：{_WHY_ZH.get(rule, '排序第一')}"
        if entry.specialty_match == "parent" and entry.offered_specialty:
            en += f"; it {_only_parent_words(request, entry.offered_specialty)}"
            zh += f"；仅开设上级科目 {entry.offered_specialty}，未开设 {request.specialty_code}"
        return en, zh
    a = above.name
    if rule is RankingRule.PATIENT_CHOICE:
        return f"after {a}, the patient's own choice", f"排在患者自选的{a}之后"
    if rule is RankingRule.FORWARDED:
        return (
            f"after {a}, which the forwarding hospital named",
            f"排在转诊医院转介指定的{a}之后",
        )
    if rule is RankingRule.COUNCIL_DIRECTED:
        return f"after {a}, where the council placed the patient", f"排在医联体统一调配的{a}之后"
    if rule is RankingRule.CONSORTIUM_MEMBER:
        return (
            f"after {a}: consortium members come before partners outside the consortium",
            f"排在{a}之后：医联体成员单位优先于体外合作医院",
        )
    if rule is RankingRule.SPECIALTY_MATCH:
        offered = entry.offered_specialty or ""
        return (
            f"after {a}, which offers {_specialty_words(request, request.specialty_code)}; "
            f"this one {_only_parent_words(request, offered)}",
            f"排在{a}之后：{a}开设{request.specialty_code}，本机构仅开设上级科目{offered}",
        )
    if rule is RankingRule.FRESH_CENSUS:
        return (
            f"after {a}, whose capacity census is fresh; this one's is stale",
            f"排在{a}之后：{a}床位/号源数据为最新，本机构数据已过时",
        )
    if rule is RankingRule.SIGNED_INSTITUTION:
        return (
            f"after {a}, which comes first in the patient's family-doctor signing",
            f"排在{a}之后：{a}在患者家庭医生签约中排序更前",
        )
    if rule is RankingRule.LEAD_HOSPITAL:
        if len(request.lead_institution_ids) > 1:
            return (
                f"after {a}, a hospital of the consortium's lead unit",
                f"排在{a}之后：{a}为医联体牵头单位成员医院",
            )
        return (
            f"after {a}, the consortium's lead hospital",
            f"排在{a}之后：{a}为医联体牵头医院",
        )
    if rule is RankingRule.LOWEST_ADEQUATE_LEVEL:
        return (
            f"after {a}, a lower adequate level ({above.level.value}, "
            f"this one {entry.level.value}): major illness stays in the county",
            f"排在{a}之后：{a}级别较低且足以诊治（大病不出县）",
        )
    if rule is RankingRule.TRAVEL_DISTANCE:

        def km(x: RankedCandidate) -> str:
            return "unknown" if x.distance_km is None else f"{x.distance_km:.1f} km"

        return (
            f"after {a}, which is nearer ({km(above)}; this one {km(entry)})",
            f"排在{a}之后：{a}距离更近（{km(above)}，本机构 {km(entry)}）",
        )
    if rule is RankingRule.FREE_SHARE:
        return (
            f"after {a}, which has a larger share of free capacity",
            f"排在{a}之后：{a}空闲床位/号源比例更高",
        )
    return f"after {a}: equally ranked, ordered by code", f"排在{a}之后：条件相同，按机构编码排序"


_WHY_ZH: Final = {
    RankingRule.PATIENT_CHOICE: "患者自选",
    RankingRule.FORWARDED: "由转出医院转介指定",
    RankingRule.COUNCIL_DIRECTED: "医联体统一调配",
    RankingRule.ONLY_CANDIDATE: "唯一符合条件的机构",
    RankingRule.CONSORTIUM_MEMBER: "唯一符合条件的机构",
    RankingRule.SPECIALTY_MATCH: "开设所需专业",
    RankingRule.FRESH_CENSUS: "床位/号源数据为最新",
    RankingRule.SIGNED_INSTITUTION: "患者家庭医生签约机构",
    RankingRule.LEAD_HOSPITAL: "医联体牵头医院",
    RankingRule.LOWEST_ADEQUATE_LEVEL: "级别足以诊治且最低（大病不出县）",
    RankingRule.TRAVEL_DISTANCE: "距离最近",
    RankingRule.FREE_SHARE: "空闲比例最高",
    RankingRule.TIE_BREAK: "条件相同，按机构编码排序",
}


# -- routing -----------------------------------------------------------------------------------


def route(
    request: RoutingRequest,
    members: Sequence[Candidate],
    partners: Sequence[Candidate],
    left_out: LeftOut | None = None,
) -> RoutingDecision:
    """Choose the target of an up-referral among ``members``, then ``partners``.

    Returns ROUTED with a member target, OUT_OF_CONSORTIUM with a partner target (no member
    eligible, or the patient chose the partner), or WAITLISTED without a target. Raises
    :class:`PatientChoiceNotAllowed` when ``patient_choice_id`` names an ineligible or unknown
    institution. See the module documentation for the checks and the order; ``left_out``:
    members not passed, counted only.
    """
    green = request.green_channel
    rules = _RULES if green is None else _GREEN_RULES
    ancestors = _specialty_ancestors(request.specialty_code)
    declined = request.excluded_institution_ids
    source_id = request.source_institution_id
    source_rank = _LEVEL_RANK[request.source_level]
    src_lat, src_lon = request.source_lat, request.source_lon
    distance_from_source = (
        None if src_lat is None or src_lon is None else distance_from_km(src_lat, src_lon)
    )
    now = request.now
    stale_before = now - request.stale_after  # census older than this: stale
    exclude_before = now - request.stale_exclude_after  # older than this: excluded
    lead_ids = request.lead_institution_ids
    signed_index: dict[str, float] = {}
    for i, inst in enumerate(request.signed_institution_ids):
        signed_index.setdefault(inst, float(i))
    not_signed = float(len(request.signed_institution_ids))
    signed_radix = not_signed + 1
    unit = _unit(request.care_type)
    source_level = request.source_level.value
    level_details = {lvl: f"level {lvl.value} not above {source_level}" for lvl in InstitutionLevel}
    specialty_detail = f"specialty {request.specialty_code} not offered"
    requested = request.specialty_code
    depth = float(len(ancestors))  # radix of the specialty-match component
    has_parent = green is None and len(ancestors) > 1
    parent_ok = request.parent_only_eligible
    centre_detail = "" if green is None else f"no {_centre_words(green)} centre"

    # One pass: each candidate is either excluded (first failing check) or gets its sort key,
    # computed once. Then one sort.
    eligible: list[_Eligible] = []
    directed = request.choice_by == "council"
    choice_of = request.patient_choice_id
    member_exclusions: list[Exclusion] = []
    partner_exclusions: list[Exclusion] = []
    member_ids = {c.institution_id for c in members}
    entries = chain(zip(members, repeat(True)), zip(partners, repeat(False)))
    for c, member in entries:
        inst = c.institution_id
        if not member and inst in member_ids:
            continue  # listed as a member too: the member entry wins
        census = c.census_as_of
        level_rank = _LEVEL_RANK[c.level]
        reason: ExclusionReason | None = None
        if inst == source_id:
            reason, detail = _IS_SOURCE, "referring institution"
        elif member and not c.in_consortium:
            reason, detail = _NOT_IN_CONSORTIUM, "not a member of this consortium"
        elif not c.active:
            reason, detail = _INACTIVE, "inactive"
        elif level_rank <= source_rank:
            reason, detail = _LEVEL_NOT_HIGHER, level_details[c.level]
        elif green is None and ancestors.isdisjoint(c.specialties):
            reason, detail = _SPECIALTY_NOT_OFFERED, specialty_detail
        elif has_parent and requested not in c.specialties and not parent_ok:
            reason = ExclusionReason.ONLY_PARENT_SPECIALTY
            detail = _only_parent_words(request, _offered_ancestor(c, ancestors))
        elif green is not None and green not in c.centres:
            reason, detail = _CENTRE_NOT_HELD, centre_detail
        elif inst in declined:
            reason, detail = _PREVIOUSLY_DECLINED, "declined or let it expire"
        elif green is None and not (directed and inst == choice_of):
            # (the council places where it says even without a free place or a fresh census)
            free = c.capacity_free
            if census is None or free is None:
                reason, detail = _STALE_CENSUS, "no census reported"
            elif census < exclude_before:
                reason, detail = _STALE_CENSUS, f"census {_age_words(now - census)} old"
            elif free <= 0:
                reason = _NO_FREE_CAPACITY
                detail = _capacity_words(free, c.capacity_total, unit)
        distance: float | None = None
        if distance_from_source is not None and c.lat is not None and c.lon is not None:
            distance = round(distance_from_source(c.lat, c.lon), 1)
        if reason is not None:
            exclusion = Exclusion(inst, c.code, c.name, reason, detail, member, distance)
            (member_exclusions if member else partner_exclusions).append(exclusion)
            continue

        stale = census is None or census < stale_before
        distance_key = _INF if distance is None else distance
        free, total = c.capacity_free, c.capacity_total
        share_key = _INF if free is None or not total or total <= 0 else -(free / total)
        stale_key = 1.0 if stale else 0.0
        member_key = 0.0 if member else 1.0
        offered_code: str | None = None
        match_key = 0.0
        if has_parent and requested not in c.specialties:
            offered_code = _offered_ancestor(c, ancestors)
            match_key = depth - len(offered_code.split("."))
        numbers: _Components
        sort_key: _SortKey
        if green is not None:
            numbers = (member_key, distance_key, stale_key, share_key)
            sort_key = (member_key, distance_key, stale_key, share_key, c.code, inst)
        else:
            if member:
                signed = signed_index.get(inst, not_signed)
                lead = 0.0 if inst in lead_ids else 1.0
            else:  # partners: no signed or lead preference
                signed, lead = not_signed, 1.0
            numbers = (
                member_key,
                match_key,
                stale_key,
                signed,
                lead,
                level_rank,
                distance_key,
                share_key,
            )
            # The discrete components (member, specialty match, stale, signed, lead, level)
            # packed into one number, mixed radix, so that the sort compares flat tuples.
            packed = ((member_key * depth + match_key) * 2 + stale_key) * signed_radix + signed
            packed = (packed * 2 + lead) * 4 + level_rank
            sort_key = (packed, distance_key, share_key, 0.0, c.code, inst)
        eligible.append((sort_key, numbers, c, member, stale, distance, offered_code))

    eligible.sort(key=itemgetter(0))

    choice_id = request.patient_choice_id
    chosen = choice_id is not None
    if choice_id is not None:
        index = next((i for i, e in enumerate(eligible) if e[2].institution_id == choice_id), -1)
        if index < 0:
            refused = next(
                (
                    x.reason
                    for x in (*member_exclusions, *partner_exclusions)
                    if x.institution_id == choice_id
                ),
                ExclusionReason.NOT_IN_CONSORTIUM,
            )
            raise PatientChoiceNotAllowed(choice_id, refused)
        if index > 0:
            eligible.insert(0, eligible.pop(index))

    ranked: list[RankedCandidate] = []
    previous: _Components = ()
    chosen_rule = {
        "target": RankingRule.FORWARDED,
        "council": RankingRule.COUNCIL_DIRECTED,
    }.get(request.choice_by, _PATIENT_CHOICE)
    for i, (_, numbers, c, member, stale, distance, offered_code) in enumerate(eligible):
        if i == 0:
            if chosen:
                rule = chosen_rule
            elif len(eligible) == 1:
                rule = _ONLY_CANDIDATE
            else:
                rule = _deciding_rule(numbers, eligible[1][1], rules)
        elif i == 1 and chosen:
            rule = chosen_rule
        else:
            rule = _deciding_rule(previous, numbers, rules)
        previous = numbers
        free = c.capacity_free
        overflow = (
            i == 0 and (green is not None or (directed and chosen)) and (free is None or free <= 0)
        )
        entry = RankedCandidate(
            c.institution_id,
            c.code,
            c.name,
            c.level,
            i + 1,
            rule,
            free,
            c.capacity_total,
            distance,
            stale,
            member,
            overflow,
            "exact" if offered_code is None else "parent",
            offered_code,
        )
        why, why_zh = _entry_why(entry, ranked[-1] if ranked else None, request)
        ranked.append(replace(entry, why=why, why_zh=why_zh))

    target = ranked[0] if ranked else None
    if target is None:
        outcome = RoutingOutcome.WAITLISTED
    elif target.in_consortium:
        outcome = RoutingOutcome.ROUTED
    else:
        outcome = RoutingOutcome.OUT_OF_CONSORTIUM
    excluded = (*member_exclusions, *partner_exclusions)
    any_member_eligible = any(e[3] for e in eligible)
    left = left_out or LeftOut()
    member_counts = Counter(x.reason for x in member_exclusions)
    member_counts.update(left.excluded)
    all_counts = member_counts + Counter(x.reason for x in partner_exclusions)
    return RoutingDecision(
        outcome=outcome,
        target=target,
        alternatives=tuple(ranked[1:]),
        excluded=excluded,
        explanation=_explain(request, target, member_counts, all_counts, any_member_eligible),
        left_out=left,
        listing_key=_listing_key(request),
    )


#: places in the first group of the listing: the signed institutions (in order, at most a few),
#: then these (the patient's choice is never excluded: it is the target, or refused)
_LEAD_PLACE: Final = 100
_SOURCE_PLACE: Final = 101
_DECLINED_PLACE: Final = 102
_PARTNER_PLACE: Final = 103


def _listing_key(request: RoutingRequest) -> Callable[[Exclusion], Any]:
    """The sort key of the listing order (module documentation)."""
    named: dict[str, int] = {}
    for inst in request.excluded_institution_ids:
        named[inst] = _DECLINED_PLACE
    named[request.source_institution_id] = _SOURCE_PLACE
    for inst in sorted(request.lead_institution_ids):
        named[inst] = _LEAD_PLACE
    for i, inst in reversed(list(enumerate(request.signed_institution_ids))):
        named[inst] = i

    def key(x: Exclusion) -> tuple[int, int, float, str, str]:
        place = named.get(x.institution_id)
        if place is None and not x.in_consortium:
            place = _PARTNER_PLACE
        if place is not None:
            group = 0
        else:
            group, place = (1 if x.reason in NEAR_MISSES else 2), 0
        distance = _INF if x.distance_km is None else x.distance_km
        return (group, place, distance, x.code, x.institution_id)

    return key


# -- serialisation -----------------------------------------------------------------------------


def _ranked_to_dict(r: RankedCandidate) -> dict[str, Any]:
    return {
        "specialty_match": r.specialty_match,
        "offered_specialty": r.offered_specialty,
        "why": r.why,
        "why_zh": r.why_zh,
        "institution_id": r.institution_id,
        "code": r.code,
        "name": r.name,
        "level": r.level.value,
        "rank": r.rank,
        "rule": r.rule.value,
        "capacity_free": r.capacity_free,
        "capacity_total": r.capacity_total,
        "distance_km": r.distance_km,
        "stale": r.stale,
        "in_consortium": r.in_consortium,
        "overflow": r.overflow,
    }


def _exclusion_to_dict(x: Exclusion) -> dict[str, Any]:
    return {
        "institution_id": x.institution_id,
        "code": x.code,
        "name": x.name,
        "reason": x.reason.value,
        "detail": x.detail,
        "in_consortium": x.in_consortium,
        "distance_km": x.distance_km,
    }


def decision_to_dict(
    decision: RoutingDecision,
    *,
    excluded_limit: int | None = EXCLUDED_LISTED,
    alternatives_limit: int | None = ALTERNATIVES_LISTED,
) -> dict[str, Any]:
    """A JSON-serialisable form of ``decision`` (enums as their values) for storage and the API.

    Bounded whatever the number of candidates: the first ``alternatives_limit`` alternatives and
    ``excluded_limit`` exclusions (in listing order), with the totals and the exclusions counted
    per reason; None lists all."""
    alternatives = decision.alternatives
    if alternatives_limit is not None:
        alternatives = alternatives[:alternatives_limit]
    listed = decision.listed_exclusions(excluded_limit)
    counts = decision.exclusion_counts()
    excluded_total = sum(counts.values())
    alternatives_total = decision.alternatives_total
    return {
        "outcome": decision.outcome.value,
        "target": None if decision.target is None else _ranked_to_dict(decision.target),
        "alternatives": [_ranked_to_dict(r) for r in alternatives],
        "alternatives_total": alternatives_total,
        "alternatives_truncated": len(alternatives) < alternatives_total,
        "excluded": [_exclusion_to_dict(x) for x in listed],
        "excluded_total": excluded_total,
        "excluded_counts": {r.value: n for r, n in counts.items()},
        "excluded_truncated": len(listed) < excluded_total,
        "explanation": decision.explanation,
        "overflow": decision.overflow,
    }
