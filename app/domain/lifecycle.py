"""The referral state machine: one table of allowed transitions, and who may take each.

Up-referral: pending → accepted → arrived → admitted (inpatient) or seen (outpatient,
examination) → completed. The target may ask the source for information first: pending →
needs information → (the source amends it) pending at the same target, the place still held.
Down-referral: pending → accepted → arrived → in follow-up →
completed. A rejection or an expiry sends the referral on to the next candidate
(it becomes pending again with a new target, or waitlisted); the source cancels; a patient who
does not come after acceptance is a no-show. Waitlisted referrals become pending when capacity
appears. A rejection because the patient declines ends the referral (it is never sent on), and a
rejection for incomplete information is a request for information (see ``effective``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.domain.enums import CareType


class Status(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    ARRIVED = "arrived"
    ADMITTED = "admitted"
    SEEN = "seen"
    IN_FOLLOW_UP = "in_follow_up"
    COMPLETED = "completed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"
    WAITLISTED = "waitlisted"
    NEEDS_INFORMATION = "needs_information"
    FORWARDED = "forwarded"  # passed through on the way to the institution the target named
    REPORTED = "reported"  # a consult or remote read answered (app/domain/remote.py)


class Direction(StrEnum):
    UP = "up"  # primary care to a hospital
    DOWN = "down"  # a hospital back to primary care


def routed(has_target: bool) -> Status:
    """The state a (re-)routing leaves a referral in: pending at its target, else waitlisted."""
    return Status.PENDING if has_target else Status.WAITLISTED


class Action(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"
    ARRIVE = "arrive"
    ADMIT = "admit"
    SEE = "see"
    START_FOLLOW_UP = "start-follow-up"
    COMPLETE = "complete"
    CANCEL = "cancel"
    NO_SHOW = "no-show"
    EXPIRE = "expire"  # the sweeper's, not an endpoint
    REQUEST_INFORMATION = "request-information"
    AMEND = "amend"
    FORWARD = "forward"
    PLACE = "place"  # the council places a pending or waitlisted referral at a named member
    REPORT = "report"  # the reader's or consultant's answer to a remote request


class Party(StrEnum):
    """Who takes an action: the current target, the source, or the service itself."""

    TARGET = "target"
    SOURCE = "source"
    SYSTEM = "system"
    COUNCIL = "council"  # the consortium's council (and admins): unified deployment of beds


class HoldEffect(StrEnum):
    KEEP = "keep"
    RELEASE = "release"
    OCCUPY = "occupy"  # the held place becomes an occupied one


class RejectReason(StrEnum):
    NO_BED = "no_bed"
    NO_SPECIALIST_ON_DUTY = "no_specialist_on_duty"
    BEYOND_CAPABILITY = "beyond_capability"
    INCOMPLETE_INFORMATION = "incomplete_information"
    PATIENT_DECLINED = "patient_declined"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Transition:
    source: Status
    action: Action
    to: Status
    party: Party
    hold: HoldEffect
    reroute: bool = False
    care_types: frozenset[CareType] = frozenset(CareType)
    directions: frozenset[Direction] = frozenset(Direction)
    #: the request kinds it applies to (``app.domain.remote.RequestKind``): transfers only,
    #: unless the row says otherwise
    kinds: frozenset[str] = frozenset({"transfer"})


_INPATIENT = frozenset({CareType.INPATIENT})
_AMBULATORY = frozenset({CareType.OUTPATIENT, CareType.EXAMINATION})
_UP = frozenset({Direction.UP})
_DOWN = frozenset({Direction.DOWN})
_ANY = frozenset({"transfer", "consult", "remote_read"})
_REMOTE = frozenset({"consult", "remote_read"})

# The whole state machine, one row per allowed transition.
# fmt: off
TRANSITIONS: tuple[Transition, ...] = (
    # from              action                  to                  who           hold
    Transition(Status.PENDING, Action.ACCEPT, Status.ACCEPTED, Party.TARGET, HoldEffect.KEEP,
               kinds=_ANY),
    Transition(Status.PENDING, Action.REJECT, Status.REJECTED, Party.TARGET, HoldEffect.RELEASE,
               reroute=True, kinds=_ANY),
    Transition(Status.PENDING, Action.EXPIRE, Status.EXPIRED, Party.SYSTEM, HoldEffect.RELEASE,
               reroute=True, kinds=_ANY),
    Transition(Status.PENDING, Action.CANCEL, Status.CANCELLED, Party.SOURCE, HoldEffect.RELEASE,
               kinds=_ANY),
    Transition(Status.ACCEPTED, Action.ARRIVE, Status.ARRIVED, Party.TARGET, HoldEffect.KEEP),
    Transition(Status.ACCEPTED, Action.NO_SHOW, Status.NO_SHOW, Party.TARGET, HoldEffect.RELEASE,
               directions=_UP),
    Transition(Status.ACCEPTED, Action.CANCEL, Status.CANCELLED, Party.SOURCE, HoldEffect.RELEASE,
               kinds=_ANY),
    Transition(Status.ARRIVED, Action.ADMIT, Status.ADMITTED, Party.TARGET, HoldEffect.OCCUPY,
               care_types=_INPATIENT, directions=_UP),
    Transition(Status.ARRIVED, Action.SEE, Status.SEEN, Party.TARGET, HoldEffect.OCCUPY,
               care_types=_AMBULATORY, directions=_UP),
    Transition(Status.ARRIVED, Action.START_FOLLOW_UP, Status.IN_FOLLOW_UP, Party.TARGET,
               HoldEffect.OCCUPY, directions=_DOWN),
    Transition(Status.ADMITTED, Action.COMPLETE, Status.COMPLETED, Party.TARGET, HoldEffect.KEEP),
    Transition(Status.SEEN, Action.COMPLETE, Status.COMPLETED, Party.TARGET, HoldEffect.KEEP),
    Transition(Status.IN_FOLLOW_UP, Action.COMPLETE, Status.COMPLETED, Party.TARGET,
               HoldEffect.KEEP, directions=_DOWN),
    Transition(Status.WAITLISTED, Action.CANCEL, Status.CANCELLED, Party.SOURCE, HoldEffect.KEEP,
               kinds=_ANY),
    # sent back for information: the place stays held while the source answers
    Transition(Status.PENDING, Action.REQUEST_INFORMATION, Status.NEEDS_INFORMATION, Party.TARGET,
               HoldEffect.KEEP, kinds=_ANY),
    Transition(Status.NEEDS_INFORMATION, Action.AMEND, Status.PENDING, Party.SOURCE,
               HoldEffect.KEEP, kinds=_ANY),
    Transition(Status.NEEDS_INFORMATION, Action.EXPIRE, Status.EXPIRED, Party.SYSTEM,
               HoldEffect.RELEASE, reroute=True, kinds=_ANY),
    Transition(Status.NEEDS_INFORMATION, Action.CANCEL, Status.CANCELLED, Party.SOURCE,
               HoldEffect.RELEASE, kinds=_ANY),
    # referred onward: the target sends it to a member or partner it knows is better placed
    Transition(Status.PENDING, Action.FORWARD, Status.FORWARDED, Party.TARGET, HoldEffect.RELEASE,
               reroute=True, kinds=_ANY),
    # council-directed placement (003: "unified deployment and use of the bed resources")
    Transition(Status.PENDING, Action.PLACE, Status.PENDING, Party.COUNCIL, HoldEffect.RELEASE),
    Transition(Status.WAITLISTED, Action.PLACE, Status.PENDING, Party.COUNCIL, HoldEffect.KEEP),
    # a consult or remote read answered: the read or consult slot is used
    Transition(Status.PENDING, Action.REPORT, Status.REPORTED, Party.TARGET, HoldEffect.OCCUPY,
               kinds=_REMOTE),
    Transition(Status.ACCEPTED, Action.REPORT, Status.REPORTED, Party.TARGET, HoldEffect.OCCUPY,
               kinds=_REMOTE),
)
# fmt: on

_BY_KEY = {(t.source, t.action): t for t in TRANSITIONS}
FINAL = frozenset({Status.COMPLETED, Status.CANCELLED, Status.NO_SHOW, Status.REPORTED})
#: the states a sweeper expires when their answer time has passed
EXPIRING = frozenset({Status.PENDING, Status.NEEDS_INFORMATION})


def effective(action: Action, reason_code: str | None) -> Action:
    """The action a request takes: a rejection for incomplete information asks the source for
    it instead (the referral is not sent on to another hospital as it is)."""
    if action is Action.REJECT and reason_code == RejectReason.INCOMPLETE_INFORMATION:
        return Action.REQUEST_INFORMATION
    return action


def reroutes(step: Transition, reason_code: str | None) -> bool:
    """Whether the step sends the referral on: a patient who declines is never sent elsewhere
    (the rejection ends the referral)."""
    return step.reroute and reason_code != RejectReason.PATIENT_DECLINED


def closes(step: Transition, reason_code: str | None) -> bool:
    """Whether the referral is closed by the step: a final state, or a rejection that is not
    sent on."""
    return step.to in FINAL or (step.reroute and not reroutes(step, reason_code))


class TransitionNotAllowed(Exception):
    def __init__(self, status: Status, action: Action, allowed: list[str]) -> None:
        super().__init__(f"'{action}' is not allowed while the referral is {status}")
        self.status = status
        self.action = action
        self.allowed = allowed


def find(
    status: Status,
    action: Action,
    care_type: CareType,
    direction: str = "up",
    kind: str = "transfer",
) -> Transition:
    """The transition for this action now, or TransitionNotAllowed naming what is allowed."""
    t = _BY_KEY.get((status, action))
    if t is None or not _applies(t, care_type, direction, kind):
        allowed = actions(status, care_type, direction=direction, kind=kind)
        raise TransitionNotAllowed(status, action, allowed)
    return t


def _applies(t: Transition, care_type: CareType, direction: str, kind: str) -> bool:
    return care_type in t.care_types and direction in t.directions and kind in t.kinds


def actions(
    status: Status,
    care_type: CareType,
    parties: frozenset[Party] | None = None,
    *,
    direction: str = "up",
    kind: str = "transfer",
) -> list[str]:
    """Endpoint actions available in this state (optionally only for these parties)."""
    return [
        str(t.action)
        for t in TRANSITIONS
        if t.source is status
        and _applies(t, care_type, direction, kind)
        and t.party is not Party.SYSTEM
        and (parties is None or t.party in parties)
    ]
