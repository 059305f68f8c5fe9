"""Up-referral use cases: preview a routing decision, create a referral and hold its bed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db.base import new_id, utcnow
from app.db.models import Episode, Referral, TierRecord
from app.db.repositories import capacity as capacity_repo
from app.db.repositories import episodes as episode_repo
from app.db.repositories import referrals as repo
from app.db.repositories import registry as registry_repo
from app.db.repositories import routing as routing_repo
from app.db.repositories import tiers as tier_repo
from app.domain import routing
from app.domain.capacity import free
from app.domain.enums import CareType, Centre, Role
from app.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.domain.localtime import DEFAULT_TIME_ZONE, local_date, today
from app.services import (
    diagnoses,
    events,
    pathways,
    patients,
    routing_policy,
    service_levels,
    tiers,
)
from app.services.access import can_see
from app.services.auth import Principal
from app.services.crypto import PatientDataProtector

MAX_HOLD_ATTEMPTS = 8
# specialty codes found in the catalogue: codes are added with a catalogue, never removed, so
# a code once found stays valid (an unknown code is asked again every time)
_KNOWN_SPECIALTIES: set[str] = set()
STATUS_PENDING = "pending"
STATUS_WAITLISTED = "waitlisted"


@dataclass(frozen=True, slots=True)
class Number:
    """A referral number taken ahead of the create, in the idempotency claim's transaction."""

    consortium_id: str
    text: str


def format_number(prefix: str, day: date, seq: int) -> str:
    """`ZH-20261122-0007`: the day is the consortium's local date of the create."""
    return f"{prefix}-{day:%Y%m%d}-{seq:04d}"


async def take_number(session: AsyncSession, institution_id: str, now: datetime) -> Number | None:
    """The next number of the day for the institution's consortium, in the short transaction
    of the idempotency claim (committed before the create's own transaction starts).

    The day's counter row is the one row every create of a consortium writes: taken inside
    the create's transaction it would stay locked until that commits, queueing all creates of
    the consortium behind each other. Here it is locked for one short transaction. A create
    that fails afterwards leaves a gap in the day's numbers (numbers stay unique and rising).
    """
    found = await registry_repo.consortium_prefix_of(session, institution_id)
    if found is None:
        return None
    consortium_id, prefix, time_zone = found
    day = local_date(now, time_zone)
    seq = await repo.next_sequence(session, consortium_id, day)
    return Number(consortium_id, format_number(prefix, day, seq))


async def number_for(
    session: AsyncSession, consortium_id: str, now: datetime, taken: Number | None
) -> str:
    """The number taken ahead if it is for this consortium, else one taken here."""
    if taken is not None and taken.consortium_id == consortium_id:
        return taken.text
    consortium = await registry_repo.get_consortium(session, consortium_id)
    assert consortium is not None
    day = local_date(now, consortium.time_zone)
    seq = await repo.next_sequence(session, consortium_id, day)
    return format_number(consortium.referral_prefix, day, seq)


class PatientChoiceRefused(InvalidInput):
    kind = "patient-choice-not-allowed"


@dataclass(frozen=True, slots=True)
class RoutingInput:
    specialty_code: str
    care_type: CareType
    wanted_day: date | None
    signed_institution_ids: tuple[str, ...]
    patient_choice_id: str | None
    centre: Centre | None = None  # green channel: the centre the pathway needs


@dataclass(frozen=True, slots=True)
class Source:
    id: str
    consortium_id: str
    level: Any
    lat: float | None
    lon: float | None
    time_zone: str = DEFAULT_TIME_ZONE  # the consortium's: its "today"


@dataclass(frozen=True, slots=True)
class Candidates:
    members: list[routing.Candidate]
    partners: list[routing.Candidate]
    lead_id: str | None
    capacity_code: dict[str, str]  # institution -> the capacity row's specialty code
    #: the consortium's policy for this care type: do parent-only specialty matches count?
    parent_only_eligible: bool = True


HoldStep = Callable[[], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class ReferralView:
    row: Referral
    sensitive: dict[str, Any]
    decision: dict[str, Any] | None
    show_full_identity: bool
    tier: TierRecord | None = None
    # a new referral's bed or slot hold, not yet placed: the caller runs it as the last
    # statement before COMMIT; False means another request took the place, so the caller
    # rolls back and creates again (see ``create_up_referral``)
    hold: HoldStep | None = None
    time_zone: str = DEFAULT_TIME_ZONE  # the consortium's: the local date of its days

    @property
    def created_local_date(self) -> date:
        return local_date(self.row.created_at, self.time_zone)


def _ancestors(code: str) -> list[str]:
    parts = code.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


async def _source(session: AsyncSession, principal: Principal, source_id: str | None) -> Source:
    if principal.role in (Role.CLINIC, Role.HOSPITAL):
        if source_id is not None and source_id != principal.institution_id:
            raise Forbidden("A referral is always sent from the caller's own institution.")
        source_id = principal.institution_id
    elif principal.role in (Role.COUNCIL, Role.ADMIN):
        if source_id is None:
            raise InvalidInput(
                "Name the source institution for a preview made by the council or an admin.",
                [{"loc": ["body", "source_institution_id"], "msg": "required for this role"}],
            )
    else:
        raise Forbidden("This key's role may not send referrals.")
    source = await load_source(session, source_id or "")
    if principal.role is Role.COUNCIL and source.consortium_id != principal.consortium_id:
        raise Forbidden("A council key may preview only for its own consortium.")
    return source


async def load_source(session: AsyncSession, source_id: str) -> Source:
    inst = await registry_repo.get_institution_row(session, source_id)
    if inst is None or inst.consortium_id is None:
        raise InvalidInput(
            "The source institution is not a member of a consortium.",
            [{"loc": ["body", "source_institution_id"], "msg": "not a consortium member"}],
        )
    time_zone = await registry_repo.consortium_time_zone(session, inst.consortium_id)
    return Source(inst.id, inst.consortium_id, inst.level, inst.latitude, inst.longitude, time_zone)


def check_wanted_day(data: RoutingInput, source: Source) -> None:
    """`wanted_day` is a day of the source's consortium: today there or later."""
    if data.wanted_day is not None and data.wanted_day < today(utcnow(), source.time_zone):
        raise InvalidInput(
            "The referral has invalid fields.",
            [{"loc": ["body", "wanted_day"], "msg": "must not be in the past"}],
        )


async def candidates(session: AsyncSession, source: Source, data: RoutingInput) -> Candidates:
    facts = await routing_repo.institutions_for_routing(session, source.consortium_id)
    ids = [f.id for f in facts]
    codes = _ancestors(data.specialty_code)
    offered = await routing_repo.specialties_offered(session, ids, codes)
    centres = await routing_repo.centres_held(session, ids) if data.centre else {}
    if data.care_type is CareType.INPATIENT:
        rows = await capacity_repo.candidate_beds(session, ids, codes)
    else:
        day = data.wanted_day or today(utcnow(), source.time_zone)
        rows = await capacity_repo.candidate_slots(session, ids, codes, day)
    # the most specific capacity row per institution (03.04 before 03)
    best: dict[str, tuple[str, int, int, int, datetime | None]] = {}
    for iid, code, total, occupied, held, as_of in rows:
        current = best.get(iid)
        if current is None or len(code) > len(current[0]):
            best[iid] = (code, total, occupied, held, as_of)
    members: list[routing.Candidate] = []
    partners: list[routing.Candidate] = []
    lead_id = None
    for f in facts:
        cap = best.get(f.id)
        cand = routing.Candidate(
            institution_id=f.id,
            code=f.code,
            name=f.name,
            level=f.level,
            active=f.active,
            in_consortium=f.consortium_id == source.consortium_id,
            specialties=frozenset(offered.get(f.id, ())),
            centres=frozenset(centres.get(f.id, ())),
            lat=f.lat,
            lon=f.lon,
            capacity_free=free(cap[1], cap[2], cap[3]) if cap else None,
            capacity_total=cap[1] if cap else None,
            census_as_of=cap[4] if cap else None,
        )
        if f.consortium_id == source.consortium_id:
            members.append(cand)
            if f.is_lead:
                lead_id = f.id
        elif f.is_partner:
            partners.append(cand)
    parent_only = True
    if "." in data.specialty_code and data.centre is None:  # a sub-specialty: policy applies
        consortium = await registry_repo.get_consortium(session, source.consortium_id)
        policy = routing_policy.current()
        parent_only = policy.parent_only_eligible(
            consortium.code if consortium else None, data.care_type
        )
    capacity_code = {k: v[0] for k, v in best.items()}
    return Candidates(members, partners, lead_id, capacity_code, parent_only)


def _decide(
    settings: Settings,
    source: Source,
    data: RoutingInput,
    cands: Candidates,
    now: datetime,
    excluded: frozenset[str] = frozenset(),
) -> routing.RoutingDecision:
    request = routing.RoutingRequest(
        source_institution_id=source.id,
        source_level=source.level,
        source_lat=source.lat,
        source_lon=source.lon,
        consortium_id=source.consortium_id,
        lead_institution_id=cands.lead_id,
        specialty_code=data.specialty_code,
        care_type=data.care_type,
        signed_institution_ids=data.signed_institution_ids,
        patient_choice_id=data.patient_choice_id,
        excluded_institution_ids=excluded,
        green_channel=data.centre,
        parent_only_eligible=cands.parent_only_eligible,
        specialty_names=routing_policy.specialty_names(),
        now=now,
        stale_after=settings.census_stale_after,
        stale_exclude_after=settings.census_exclude_after,
    )
    try:
        return routing.route(request, cands.members, cands.partners)
    except routing.PatientChoiceNotAllowed as exc:
        raise PatientChoiceRefused(
            "The patient's chosen hospital cannot take this referral.",
            [{"loc": ["body", "patient_choice_institution_id"], "msg": str(exc.reason)}],
            reason=str(exc.reason),
        ) from exc


async def _check_routing_input(session: AsyncSession, data: RoutingInput) -> None:
    errors: list[dict[str, Any]] = []
    if not data.specialty_code:
        raise InvalidInput(
            "Name the specialty (or a green-channel pathway).",
            [{"loc": ["body", "specialty_code"], "msg": "required without a pathway"}],
        )
    if data.specialty_code not in _KNOWN_SPECIALTIES:
        known = await registry_repo.existing_specialty_codes(session, [data.specialty_code])
        _KNOWN_SPECIALTIES.update(known)
    if data.specialty_code not in _KNOWN_SPECIALTIES:
        errors.append({"loc": ["body", "specialty_code"], "msg": "unknown specialty code"})
    if data.care_type is not CareType.INPATIENT and data.wanted_day is None:
        errors.append(
            {"loc": ["body", "wanted_day"], "msg": "required for outpatient and examination"}
        )
    ids = [
        *data.signed_institution_ids,
        *([data.patient_choice_id] if data.patient_choice_id else []),
    ]
    found = {i.id for i in await registry_repo.get_institutions(session, ids)}
    for i, iid in enumerate(data.signed_institution_ids):
        if iid not in found:
            errors.append(
                {
                    "loc": ["body", "patient", "signed_institution_ids", i],
                    "msg": "unknown institution",
                }
            )
    if data.patient_choice_id and data.patient_choice_id not in found:
        errors.append(
            {"loc": ["body", "patient_choice_institution_id"], "msg": "unknown institution"}
        )
    if errors:
        raise InvalidInput("The referral has invalid fields.", errors)


async def routing_input(session: AsyncSession, body: dict[str, Any]) -> RoutingInput:
    """What routing needs from a create or preview body; a pathway gives the default
    specialty and the centre the green channel needs."""
    pathway = await pathways.for_referral(session, body.get("pathway"))
    specialty = body.get("specialty_code") or (pathway.specialties[0] if pathway else "")
    signed = body.get("signed_institution_ids") or (body.get("patient") or {}).get(
        "signed_institution_ids"
    )
    data = RoutingInput(
        specialty_code=specialty,
        care_type=CareType(body["care_type"]),
        wanted_day=body.get("wanted_day"),
        signed_institution_ids=tuple(signed or ()),
        patient_choice_id=body.get("patient_choice_institution_id"),
        centre=pathway.centre if pathway else None,
    )
    await _check_routing_input(session, data)
    return data


async def preview(
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    body: dict[str, Any],
    source_id: str | None,
) -> dict[str, Any]:
    data = await routing_input(session, body)
    source = await _source(session, principal, source_id)
    check_wanted_day(data, source)
    cands = await candidates(session, source, data)
    return routing.decision_to_dict(_decide(settings, source, data, cands, utcnow()))


@dataclass(frozen=True, slots=True)
class Placement:
    decision: routing.RoutingDecision
    candidates: Candidates
    held: bool

    @property
    def target(self) -> routing.RankedCandidate | None:
        return self.decision.target

    @property
    def overflow(self) -> bool:
        """A green-channel patient placed without a free place: flagged for the council."""
        return self.target is not None and not self.held

    def hold_code(self) -> str | None:
        target = self.decision.target
        if target is None or not self.held:
            return None
        return self.candidates.capacity_code[target.institution_id]


def _holds_a_place(data: RoutingInput, target: routing.RankedCandidate | None) -> bool:
    """Whether placing at ``target`` takes a bed or slot: not without a target, and not for a
    green-channel patient at a full centre (who must be received all the same)."""
    if target is None:
        return False
    return data.centre is None or bool(target.capacity_free)


async def _try_hold(
    session: AsyncSession, data: RoutingInput, institution_id: str, code: str
) -> bool:
    """One conditional UPDATE on the bed (inpatient) or the day's slot (outpatient)."""
    if data.care_type is CareType.INPATIENT:
        return await capacity_repo.try_hold_bed(session, institution_id, code)
    assert data.wanted_day is not None
    return await capacity_repo.try_hold_slot(session, institution_id, code, data.wanted_day)


async def route_and_hold(
    session: AsyncSession,
    settings: Settings,
    source: Source,
    data: RoutingInput,
    now: datetime,
    excluded: frozenset[str] = frozenset(),
) -> Placement:
    """Route, then hold the chosen place with one conditional UPDATE.

    If another transaction took the last place first, decide again without that hospital.
    """
    cands = await candidates(session, source, data)
    decision = _decide(settings, source, data, cands, now, excluded)
    for _ in range(MAX_HOLD_ATTEMPTS):
        target = decision.target
        if target is None or not _holds_a_place(data, target):
            return Placement(decision, cands, held=False)
        code = cands.capacity_code[target.institution_id]
        if await _try_hold(session, data, target.institution_id, code):
            return Placement(decision, cands, held=True)
        cands = without_capacity(cands, target.institution_id)
        decision = _decide(settings, source, data, cands, now, excluded)
    raise Conflict("Capacity kept changing while routing; retry the request.")


async def route_for_create(
    session: AsyncSession, settings: Settings, source: Source, data: RoutingInput, now: datetime
) -> tuple[Placement, HoldStep | None]:
    """Route a new referral and return the hold as a step to run last, just before COMMIT.

    The hold's conditional UPDATE locks the capacity row that every create for the same
    hospital and specialty writes, until the transaction ends. Run last, that lock is held
    for one statement and the commit instead of for the whole write of the referral."""
    cands = await candidates(session, source, data)
    decision = _decide(settings, source, data, cands, now)
    target = decision.target
    if target is None or not _holds_a_place(data, target):
        return Placement(decision, cands, held=False), None
    institution_id = target.institution_id
    code = cands.capacity_code[institution_id]

    async def hold() -> bool:
        return await _try_hold(session, data, institution_id, code)

    return Placement(decision, cands, held=True), hold


def without_capacity(cands: Candidates, institution_id: str) -> Candidates:
    def strip(items: list[routing.Candidate]) -> list[routing.Candidate]:
        return [
            replace(c, capacity_free=0) if c.institution_id == institution_id else c for c in items
        ]

    return replace(cands, members=strip(cands.members), partners=strip(cands.partners))


def validate_patient(patient: dict[str, Any], today: date) -> patients.CheckedPatient:
    """The identity document checked by its type, with the birth date and sex (see patients)."""
    return patients.check_patient(patient, today)


async def open_or_join_episode(
    session: AsyncSession,
    episode_id: str | None,
    consortium_id: str,
    resident_hmac: str,
    now: datetime,
) -> str:
    """Join the named episode (same patient, same consortium) or open a new one."""
    if episode_id is not None:
        episode = await episode_repo.get(session, episode_id)
        if (
            episode is None
            or episode.consortium_id != consortium_id
            or episode.resident_id_hmac != resident_hmac
        ):
            raise InvalidInput(
                "The episode does not exist or belongs to another patient or consortium.",
                [{"loc": ["body", "episode_id"], "msg": "not an episode of this patient"}],
            )
        return episode.id
    episode = Episode(consortium_id=consortium_id, resident_id_hmac=resident_hmac, opened_at=now)
    episode_repo.add(session, episode)
    await session.flush()
    return episode.id


async def _waitlist_goes_first(
    session: AsyncSession,
    settings: Settings,
    consortium_id: str,
    data: RoutingInput,
    placed: Placement,
    priority: int,
    now: datetime,
) -> bool:
    """A new referral never takes a place that a waitlisted one (at least as urgent) fits."""
    from app.services import lifecycle  # lifecycle routes through this module

    target = placed.target
    code = placed.hold_code()
    if target is None or code is None:
        return False
    inpatient = data.care_type is CareType.INPATIENT
    place = lifecycle.FreedPlace(
        target.institution_id,
        "bed" if inpatient else "slot",
        code,
        None if inpatient else data.wanted_day,
        max(1, target.capacity_free or 0),
    )
    return await lifecycle.waitlist_first(session, settings, consortium_id, place, priority, now)


def apply_placement(row: Referral, placed: Placement, settings: Settings, now: datetime) -> None:
    """Target, state, hold, overflow and answer time of a (re-)routed referral."""
    target = placed.target
    row.target_institution_id = target.institution_id if target else None
    row.out_of_consortium = bool(target and not target.in_consortium)
    row.status = STATUS_PENDING if target else STATUS_WAITLISTED
    held = placed.hold_code()
    row.hold_specialty_code = held
    row.hold_kind = (
        None if held is None else "bed" if row.care_type == CareType.INPATIENT else "slot"
    )
    row.hold_day = row.wanted_day if row.hold_kind == "slot" else None
    row.overflow = row.overflow or placed.overflow
    if target is not None:
        row.routed_at = now
    green = row.pathway_code is not None
    row.respond_by = (
        now + service_levels.respond_within(row.urgency, settings, green_channel=green)
        if target
        else None
    )


async def create_up_referral(
    session: AsyncSession,
    settings: Settings,
    protector: PatientDataProtector,
    principal: Principal,
    body: dict[str, Any],
    *,
    parent_referral_id: str | None = None,
    number: Number | None = None,
) -> ReferralView:
    """Write the referral for the routing decision; the bed or slot hold is returned as
    ``ReferralView.hold`` for the caller to run last (``route_for_create``)."""
    if principal.role not in (Role.CLINIC, Role.HOSPITAL):
        raise Forbidden("Only a clinic or hospital key sends referrals.")
    now = utcnow()
    source = await _source(session, principal, None)
    checked = validate_patient(body["patient"], today(now, source.time_zone))
    diagnosis = diagnoses.validate(settings, body["diagnosis"])
    data = await routing_input(session, body)
    check_wanted_day(data, source)
    consortium_id = source.consortium_id
    # the targets the referral keeps: its consortium's own, or the shared defaults
    pathway = await pathways.for_referral(session, body.get("pathway"), consortium_id)
    resident_hmac = protector.identifier_hmac(checked.document.match_key())
    episode_id = await open_or_join_episode(
        session, body.get("episode_id"), consortium_id, resident_hmac, now
    )
    referral_number = await number_for(session, consortium_id, now, number)
    referral_id = new_id()
    sensitive = {
        "patient": patients.sealed_patient(
            body["patient"], checked, list(data.signed_institution_ids)
        ),
        "diagnosis_text": body["diagnosis"].get("text"),
        "clinical_summary": body.get("clinical_summary"),
        "tests_done": body.get("tests_done") or [],
    }
    sealed = protector.seal(sensitive, associated=referral_id)
    priority = service_levels.priority(body["urgency"], green_channel=pathway is not None)
    placed, hold = await route_for_create(session, settings, source, data, now)
    if hold is not None and await _waitlist_goes_first(
        session, settings, consortium_id, data, placed, priority, now
    ):  # the waitlisted took the place: the new referral routes on (or waits)
        placed, hold = await route_for_create(session, settings, source, data, now)
    row = Referral(
        id=referral_id,
        number=referral_number,
        consortium_id=consortium_id,
        direction="up",
        source_institution_id=source.id,
        specialty_code=data.specialty_code,
        care_type=data.care_type,
        wanted_day=data.wanted_day,
        urgency=body["urgency"],
        insurance_scheme=body["patient"]["insurance_scheme"],
        diagnosis_code=diagnosis.code.code,
        diagnosis_code_system=diagnosis.code.system,
        diagnosis_name=diagnosis.name,
        diagnosis_morphology=diagnosis.morphology,
        patient_sex=checked.sex.code,
        patient_birth_date=checked.birth_date,
        resident_id_hmac=resident_hmac,
        sensitive=sealed,
        referring_doctor=(body.get("referring_doctor") or {}).get("name"),
        episode_id=episode_id,
        parent_referral_id=parent_referral_id,
        reason=body.get("reason"),
        signed_institution_ids=list(data.signed_institution_ids),
        patient_choice_id=data.patient_choice_id,
        declined_institution_ids=[],
        pathway_code=pathway.code if pathway else None,
        pathway_version=pathway.version if pathway else None,
        pathway_targets=pathway.targets if pathway else None,
        overflow=False,
        priority=priority,
        version=1,
        created_at=now,
        updated_at=now,
    )
    apply_placement(row, placed, settings, now)
    repo.add(session, row)
    decision_dict = routing.decision_to_dict(placed.decision)
    await session.flush()
    repo.add_attempt(
        session,
        referral_id=referral_id,
        attempt=1,
        outcome=str(placed.decision.outcome),
        target_institution_id=row.target_institution_id,
        decision=decision_dict,
        created_at=now,
    )
    actor_user = (body.get("referring_doctor") or {}).get("id")
    events.record(
        session,
        row,
        "created",
        None,
        at=now,
        actor_institution_id=source.id,
        actor_user=actor_user,
        reason=placed.decision.explanation,
    )
    if pathway is not None:
        await pathways.on_green_channel_created(session, row, source.id, actor_user, now)
    tier = await tiers.record_for(session, row, now, new_episode=body.get("episode_id") is None)
    await session.flush()  # ids and defaults of what was added, for the answer
    return ReferralView(
        row,
        sensitive,
        decision_dict,
        show_full_identity=True,
        tier=tier,
        hold=hold,
        time_zone=source.time_zone,
    )


async def get_referral(
    session: AsyncSession,
    protector: PatientDataProtector,
    principal: Principal,
    referral_id: str,
    *,
    just_declined: bool = False,
) -> ReferralView:
    """The referral as ``principal`` may see it. ``just_declined``: the answer to the hospital
    whose rejection just sent the referral on; it has lost access to the patient's data, so it
    gets the referral without clinical text, the name reduced to its first character and the
    identity masked."""
    row = await repo.get(session, referral_id)
    declined = (
        row is not None
        and just_declined
        and principal.institution_id in (row.declined_institution_ids or ())
    )
    if row is None or not (declined or can_see(principal, row)):
        raise NotFound("No referral with this id.")
    attempt = await repo.latest_attempt(session, row.id)
    sensitive = protector.open(row.sensitive, associated=row.id)
    if declined and not can_see(principal, row):
        patient = dict(sensitive["patient"])
        patient["name"] = patient["name"][:1] + "*" * max(0, len(patient["name"]) - 1)
        sensitive = {"patient": patient}
    full = principal.role in (Role.CLINIC, Role.HOSPITAL) and principal.institution_id in (
        row.source_institution_id,
        row.target_institution_id,
    )
    tier = await tier_repo.latest_of(session, row.id)
    zone = await registry_repo.consortium_time_zone(session, row.consortium_id)
    decision = attempt.decision if attempt else None
    return ReferralView(row, sensitive, decision, full, tier, time_zone=zone)


def masked(view: ReferralView) -> dict[str, Any]:
    return patients.shown_patient(view.sensitive["patient"], view.show_full_identity)
