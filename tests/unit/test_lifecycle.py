"""The referral state machine (app/domain/lifecycle.py), table by table.

The expected table below is written from the lifecycle the service documents (README
"Lifecycle", the domain's up- and down-referral lifecycles), not read out of the module:

- up: pending → accepted → arrived → admitted (inpatient) or seen (outpatient, examination)
  → completed; down: pending → accepted → arrived → in follow-up → completed;
- the target accepts, rejects, records arrival, admission, the visit, the start of follow-up,
  completion and a no-show (up only); the source cancels before arrival (and while waitlisted);
  the service itself expires a pending referral;
- the council (or an admin) places a pending or waitlisted referral at a member it names;
- the target may forward a pending referral to an institution it names (sent on, like a
  rejection, to that one), or send it back to its source for information: it waits in
  needs information with its place kept, the source amends it (pending at the same target) or
  cancels it, and unanswered it expires like a pending one;
- a rejection or an expiry sends the referral on (re-routed), except a rejection because the
  patient declines (it ends the referral) and one for incomplete information (a request for
  information instead); completed, cancelled and no-show are final;
- the place held on routing is kept on accept and arrival, becomes an occupied place on
  admission, the visit or the start of follow-up, and is released on reject, cancel, expiry
  and no-show (a waitlisted referral holds nothing to release).
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from app.domain.enums import CareType
from app.domain.lifecycle import (
    FINAL,
    TRANSITIONS,
    Action,
    HoldEffect,
    Party,
    Status,
    TransitionNotAllowed,
    actions,
    closes,
    effective,
    find,
    reroutes,
)

S, A, P, H = Status, Action, Party, HoldEffect
INPATIENT, OUTPATIENT, EXAMINATION = CareType.INPATIENT, CareType.OUTPATIENT, CareType.EXAMINATION
ANY_CARE = (INPATIENT, OUTPATIENT, EXAMINATION)
AMBULATORY = (OUTPATIENT, EXAMINATION)
UP, DOWN, BOTH = ("up",), ("down",), ("up", "down")


class Row(NamedTuple):
    source: Status
    action: Action
    to: Status
    party: Party
    hold: HoldEffect
    reroute: bool
    care_types: tuple[CareType, ...]
    directions: tuple[str, ...]
    kinds: tuple[str, ...] = ("transfer",)  # request kinds (app/domain/remote.py)


# the care types of a row: all, inpatient only, ambulatory (outpatient and examination)
ALL, INP, AMB = ANY_CARE, (INPATIENT,), AMBULATORY
# the request kinds of a row: every kind, or the remote ones (consult, remote read)
KINDS, REMOTE = ("transfer", "consult", "remote_read"), ("consult", "remote_read")

# fmt: off
EXPECTED = (
    #   from            action             to              who       hold       reroute care up/down
    Row(S.PENDING,      A.ACCEPT,          S.ACCEPTED,     P.TARGET, H.KEEP,    False, ALL, BOTH),
    Row(S.PENDING,      A.REJECT,          S.REJECTED,     P.TARGET, H.RELEASE, True,  ALL, BOTH),
    Row(S.PENDING,      A.EXPIRE,          S.EXPIRED,      P.SYSTEM, H.RELEASE, True,  ALL, BOTH),
    Row(S.PENDING,      A.CANCEL,          S.CANCELLED,    P.SOURCE, H.RELEASE, False, ALL, BOTH),
    Row(S.ACCEPTED,     A.ARRIVE,          S.ARRIVED,      P.TARGET, H.KEEP,    False, ALL, BOTH),
    Row(S.ACCEPTED,     A.NO_SHOW,         S.NO_SHOW,      P.TARGET, H.RELEASE, False, ALL, UP),
    Row(S.ACCEPTED,     A.CANCEL,          S.CANCELLED,    P.SOURCE, H.RELEASE, False, ALL, BOTH),
    Row(S.ARRIVED,      A.ADMIT,           S.ADMITTED,     P.TARGET, H.OCCUPY,  False, INP, UP),
    Row(S.ARRIVED,      A.SEE,             S.SEEN,         P.TARGET, H.OCCUPY,  False, AMB, UP),
    Row(S.ARRIVED,      A.START_FOLLOW_UP, S.IN_FOLLOW_UP, P.TARGET, H.OCCUPY,  False, ALL, DOWN),
    Row(S.ADMITTED,     A.COMPLETE,        S.COMPLETED,    P.TARGET, H.KEEP,    False, INP, UP),
    Row(S.SEEN,         A.COMPLETE,        S.COMPLETED,    P.TARGET, H.KEEP,    False, AMB, UP),
    Row(S.IN_FOLLOW_UP, A.COMPLETE,        S.COMPLETED,    P.TARGET, H.KEEP,    False, ALL, DOWN),
    Row(S.WAITLISTED,   A.CANCEL,          S.CANCELLED,    P.SOURCE, H.KEEP,    False, ALL, BOTH),
    Row(S.PENDING,      A.REQUEST_INFORMATION, S.NEEDS_INFORMATION, P.TARGET, H.KEEP, False, ALL,
        BOTH),
    Row(S.NEEDS_INFORMATION, A.AMEND,      S.PENDING,      P.SOURCE, H.KEEP,    False, ALL, BOTH),
    Row(S.NEEDS_INFORMATION, A.EXPIRE,     S.EXPIRED,      P.SYSTEM, H.RELEASE, True,  ALL, BOTH),
    Row(S.NEEDS_INFORMATION, A.CANCEL,     S.CANCELLED,    P.SOURCE, H.RELEASE, False, ALL, BOTH),
    Row(S.PENDING,      A.FORWARD,         S.FORWARDED,    P.TARGET, H.RELEASE, True,  ALL, BOTH),
    Row(S.PENDING,      A.PLACE,           S.PENDING,      P.COUNCIL, H.RELEASE, False, ALL, BOTH),
    Row(S.WAITLISTED,   A.PLACE,           S.PENDING,      P.COUNCIL, H.KEEP,   False, ALL, BOTH),
    Row(S.PENDING,      A.REPORT,          S.REPORTED,     P.TARGET, H.OCCUPY,  False, ALL, BOTH,
        REMOTE),
    Row(S.ACCEPTED,     A.REPORT,          S.REPORTED,     P.TARGET, H.OCCUPY,  False, ALL, BOTH,
        REMOTE),
)
# fmt: on
#: the rows consults and remote reads share with transfers: taken, refused, cancelled, asked,
#: expired and forwarded alike
SHARED = {
    (S.PENDING, A.ACCEPT),
    (S.PENDING, A.REJECT),
    (S.PENDING, A.EXPIRE),
    (S.PENDING, A.CANCEL),
    (S.ACCEPTED, A.CANCEL),
    (S.WAITLISTED, A.CANCEL),
    (S.PENDING, A.REQUEST_INFORMATION),
    (S.NEEDS_INFORMATION, A.AMEND),
    (S.NEEDS_INFORMATION, A.EXPIRE),
    (S.NEEDS_INFORMATION, A.CANCEL),
    (S.PENDING, A.FORWARD),
}
EXPECTED = tuple(r._replace(kinds=KINDS) if (r.source, r.action) in SHARED else r for r in EXPECTED)

#: every (status, action, care type, direction) the table allows a transfer, with its row
ALLOWED = {
    (r.source, r.action, care, direction): r
    for r in EXPECTED
    for care in r.care_types
    for direction in r.directions
    if "transfer" in r.kinds
}


def _reachable() -> set[tuple[Status, CareType, str]]:
    """The states a referral of each care type and direction can be in: created pending or
    waitlisted, moved along the expected rows; a rejected or expired one is routed again
    (pending or waitlisted), a waitlisted one becomes pending when capacity appears."""
    seen: set[tuple[Status, CareType, str]] = set()
    todo = [(s, c, d) for s in (S.PENDING, S.WAITLISTED) for c in ANY_CARE for d in BOTH]
    while todo:
        state = todo.pop()
        if state in seen:
            continue
        seen.add(state)
        status, care, direction = state
        nxt = [r.to for (s, _a, c, d), r in ALLOWED.items() if (s, c, d) == state]
        if status in (S.REJECTED, S.EXPIRED, S.FORWARDED, S.WAITLISTED):
            nxt += [S.PENDING, S.WAITLISTED]
        todo += [(n, care, direction) for n in nxt]
    return seen


REACHABLE = sorted(_reachable())


def _endpoint_actions(status: Status, care: CareType, direction: str) -> set[str]:
    """What a caller may do in this state: every expected row but the service's own expiry."""
    return {
        str(r.action)
        for (s, _a, c, d), r in ALLOWED.items()
        if (s, c, d) == (status, care, direction) and r.party is not P.SYSTEM
    }


def _id(value: object) -> str:
    return str(value)


# -- every allowed row ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "row"), [pytest.param(k, r, id="-".join(map(str, k))) for k, r in ALLOWED.items()]
)
def test_each_allowed_transition_goes_where_the_lifecycle_says(
    key: tuple[Status, Action, CareType, str], row: Row
) -> None:
    status, action, care, direction = key
    t = find(status, action, care, direction)
    assert (t.source, t.action) == (status, action)
    assert (t.to, t.party, t.hold, t.reroute) == (row.to, row.party, row.hold, row.reroute)


def test_the_table_names_each_state_and_action_once() -> None:
    """The table is looked up by (state, action): a second row for the same pair would be
    silently shadowed."""
    keys = [(t.source, t.action) for t in TRANSITIONS]
    assert len(keys) == len(set(keys))
    assert set(keys) == {(r.source, r.action) for r in EXPECTED}


def test_only_a_rejection_or_an_expiry_routes_again() -> None:
    rerouting = {(t.source, t.action) for t in TRANSITIONS if t.reroute}
    assert rerouting == {
        (S.PENDING, A.REJECT),
        (S.PENDING, A.EXPIRE),
        (S.NEEDS_INFORMATION, A.EXPIRE),
        (S.PENDING, A.FORWARD),
    }
    assert {t.to for t in TRANSITIONS if t.reroute} == {S.REJECTED, S.EXPIRED, S.FORWARDED}


def test_holds_follow_the_state() -> None:
    by_effect: dict[HoldEffect, set[Action]] = {}
    for t in TRANSITIONS:
        if t.source is not S.WAITLISTED:  # nothing held while waitlisted
            by_effect.setdefault(t.hold, set()).add(t.action)
    assert by_effect[H.RELEASE] == {A.REJECT, A.CANCEL, A.EXPIRE, A.NO_SHOW, A.FORWARD, A.PLACE}
    assert by_effect[H.OCCUPY] == {A.ADMIT, A.SEE, A.START_FOLLOW_UP, A.REPORT}
    assert by_effect[H.KEEP] == {
        A.ACCEPT,
        A.ARRIVE,
        A.COMPLETE,
        A.REQUEST_INFORMATION,
        A.AMEND,
    }


# -- everything else is refused, naming what is allowed --------------------------------------


@pytest.mark.parametrize(("status", "care", "direction"), REACHABLE, ids=_id)
def test_every_action_in_every_reachable_state(
    status: Status, care: CareType, direction: str
) -> None:
    allowed = _endpoint_actions(status, care, direction)
    for action in Action:
        row = ALLOWED.get((status, action, care, direction))
        if row is not None:
            assert find(status, action, care, direction).to is row.to
            continue
        with pytest.raises(TransitionNotAllowed) as refused:
            find(status, action, care, direction)
        assert (refused.value.status, refused.value.action) == (status, action)
        assert set(refused.value.allowed) == allowed, (status, action, care, direction)
        assert len(refused.value.allowed) == len(allowed)  # each named once


def test_reachable_states_are_those_of_the_lifecycle() -> None:
    up = {s for s, _c, d in REACHABLE if d == "up"}
    down = {s for s, _c, d in REACHABLE if d == "down"}
    assert up == set(Status) - {S.IN_FOLLOW_UP, S.REPORTED}  # reported: remote requests only
    assert down == set(Status) - {S.ADMITTED, S.SEEN, S.NO_SHOW, S.REPORTED}
    assert (S.SEEN, INPATIENT, "up") not in REACHABLE
    assert (S.ADMITTED, OUTPATIENT, "up") not in REACHABLE


@pytest.mark.parametrize(
    ("status", "action", "care", "direction", "allowed"),
    [
        (
            S.PENDING,
            A.ADMIT,
            INPATIENT,
            "up",
            {"accept", "reject", "cancel", "request-information", "forward", "place"},
        ),
        (
            S.PENDING,
            A.ARRIVE,
            OUTPATIENT,
            "down",
            {"accept", "reject", "cancel", "request-information", "forward", "place"},
        ),
        (S.NEEDS_INFORMATION, A.ACCEPT, INPATIENT, "up", {"amend", "cancel"}),
        (S.ACCEPTED, A.ACCEPT, INPATIENT, "up", {"arrive", "no-show", "cancel"}),
        (S.ACCEPTED, A.NO_SHOW, OUTPATIENT, "down", {"arrive", "cancel"}),
        (S.ARRIVED, A.CANCEL, INPATIENT, "up", {"admit"}),  # too late to cancel
        (S.ARRIVED, A.SEE, INPATIENT, "up", {"admit"}),
        (S.ARRIVED, A.ADMIT, OUTPATIENT, "up", {"see"}),
        (S.ARRIVED, A.ADMIT, EXAMINATION, "up", {"see"}),
        (S.ARRIVED, A.START_FOLLOW_UP, INPATIENT, "up", {"admit"}),
        (S.ARRIVED, A.ADMIT, INPATIENT, "down", {"start-follow-up"}),
        (S.ADMITTED, A.ADMIT, INPATIENT, "up", {"complete"}),
        (S.IN_FOLLOW_UP, A.CANCEL, OUTPATIENT, "down", {"complete"}),
        (S.WAITLISTED, A.ACCEPT, INPATIENT, "up", {"cancel", "place"}),
        (S.WAITLISTED, A.EXPIRE, INPATIENT, "up", {"cancel", "place"}),  # nothing to answer yet
        (S.REJECTED, A.ACCEPT, INPATIENT, "up", set()),  # passed through, never stays
        (S.EXPIRED, A.CANCEL, INPATIENT, "up", set()),
        (S.COMPLETED, A.CANCEL, INPATIENT, "up", set()),
        (S.CANCELLED, A.CANCEL, OUTPATIENT, "down", set()),
        (S.NO_SHOW, A.ARRIVE, INPATIENT, "up", set()),
    ],
    ids=_id,
)
def test_refused_transitions_name_the_allowed_actions(
    status: Status, action: Action, care: CareType, direction: str, allowed: set[str]
) -> None:
    with pytest.raises(TransitionNotAllowed) as refused:
        find(status, action, care, direction)
    assert set(refused.value.allowed) == allowed
    assert str(action) in str(refused.value) and str(status) in str(refused.value)


def test_direction_defaults_to_up() -> None:
    assert find(S.ACCEPTED, A.NO_SHOW, INPATIENT).to is S.NO_SHOW
    with pytest.raises(TransitionNotAllowed):
        find(S.ARRIVED, A.START_FOLLOW_UP, OUTPATIENT)


# -- final states --------------------------------------------------------------------------


def test_final_states() -> None:
    assert frozenset({S.COMPLETED, S.CANCELLED, S.NO_SHOW, S.REPORTED}) == FINAL
    assert not {t.source for t in TRANSITIONS} & FINAL  # nothing leaves a final state
    assert {t.to for t in TRANSITIONS} & FINAL == FINAL  # and each is reached
    # rejected and expired are not final: the referral moves on to the next candidate
    assert not {S.REJECTED, S.EXPIRED, S.WAITLISTED} & FINAL


@pytest.mark.parametrize("status", sorted(FINAL), ids=_id)
def test_nothing_is_allowed_in_a_final_state(status: Status) -> None:
    for care in ANY_CARE:
        for direction in BOTH:
            assert actions(status, care, direction=direction) == []
            for action in Action:
                with pytest.raises(TransitionNotAllowed) as refused:
                    find(status, action, care, direction)
                assert refused.value.allowed == []


# -- what each party may do ----------------------------------------------------------------

TARGET, SOURCE, SYSTEM = frozenset({P.TARGET}), frozenset({P.SOURCE}), frozenset({P.SYSTEM})


@pytest.mark.parametrize(
    ("status", "care", "direction", "parties", "expected"),
    [
        (
            S.PENDING,
            INPATIENT,
            "up",
            TARGET,
            ["accept", "reject", "request-information", "forward"],
        ),
        (S.PENDING, INPATIENT, "up", SOURCE, ["cancel"]),
        (
            S.PENDING,
            OUTPATIENT,
            "down",
            TARGET,
            ["accept", "reject", "request-information", "forward"],
        ),
        (S.NEEDS_INFORMATION, INPATIENT, "up", SOURCE, ["amend", "cancel"]),
        (S.NEEDS_INFORMATION, INPATIENT, "up", TARGET, []),
        (S.PENDING, INPATIENT, "up", SYSTEM, []),  # expiry is the sweeper's, never offered
        (S.ACCEPTED, INPATIENT, "up", TARGET, ["arrive", "no-show"]),
        (S.ACCEPTED, OUTPATIENT, "down", TARGET, ["arrive"]),
        (S.ACCEPTED, EXAMINATION, "up", SOURCE, ["cancel"]),
        (S.ARRIVED, INPATIENT, "up", TARGET, ["admit"]),
        (S.ARRIVED, OUTPATIENT, "up", TARGET, ["see"]),
        (S.ARRIVED, EXAMINATION, "up", TARGET, ["see"]),
        (S.ARRIVED, OUTPATIENT, "down", TARGET, ["start-follow-up"]),
        (S.ARRIVED, INPATIENT, "down", TARGET, ["start-follow-up"]),  # a rehabilitation bed
        (S.ARRIVED, INPATIENT, "up", SOURCE, []),
        (S.ADMITTED, INPATIENT, "up", TARGET, ["complete"]),
        (S.SEEN, OUTPATIENT, "up", TARGET, ["complete"]),
        (S.IN_FOLLOW_UP, OUTPATIENT, "down", TARGET, ["complete"]),
        (S.IN_FOLLOW_UP, OUTPATIENT, "down", SOURCE, []),
        (S.WAITLISTED, INPATIENT, "up", SOURCE, ["cancel"]),
        (S.WAITLISTED, INPATIENT, "up", TARGET, []),
        (S.REJECTED, INPATIENT, "up", TARGET | SOURCE, []),
    ],
    ids=_id,
)
def test_actions_per_party(
    status: Status, care: CareType, direction: str, parties: frozenset[Party], expected: list[str]
) -> None:
    assert actions(status, care, parties, direction=direction) == expected


@pytest.mark.parametrize(("status", "care", "direction"), REACHABLE, ids=_id)
def test_all_parties_together_get_every_endpoint_action(
    status: Status, care: CareType, direction: str
) -> None:
    everyone = actions(status, care, direction=direction)
    assert set(everyone) == _endpoint_actions(status, care, direction)
    assert sorted(everyone) == sorted(
        actions(status, care, TARGET, direction=direction)
        + actions(status, care, SOURCE, direction=direction)
        + actions(status, care, frozenset({P.COUNCIL}), direction=direction)
    )


# -- what the reason of a rejection changes ---------------------------------------------------


@pytest.mark.parametrize(
    ("action", "reason", "taken"),
    [
        (A.REJECT, "incomplete_information", A.REQUEST_INFORMATION),
        (A.REJECT, "no_bed", A.REJECT),
        (A.REJECT, "patient_declined", A.REJECT),
        (A.REJECT, None, A.REJECT),
        (A.CANCEL, "incomplete_information", A.CANCEL),  # only a rejection is turned
    ],
)
def test_a_rejection_for_incomplete_information_asks_instead(
    action: Action, reason: str | None, taken: Action
) -> None:
    assert effective(action, reason) is taken


@pytest.mark.parametrize(
    ("source", "action", "reason", "sent_on", "closed"),
    [
        (S.PENDING, A.REJECT, "no_bed", True, False),
        (S.PENDING, A.REJECT, "beyond_capability", True, False),
        (S.PENDING, A.REJECT, "patient_declined", False, True),  # ends, never sent elsewhere
        (S.PENDING, A.EXPIRE, None, True, False),
        (S.NEEDS_INFORMATION, A.EXPIRE, None, True, False),
        (S.PENDING, A.CANCEL, None, False, True),
        (S.PENDING, A.REQUEST_INFORMATION, None, False, False),
        (S.NEEDS_INFORMATION, A.AMEND, None, False, False),
        (S.ACCEPTED, A.NO_SHOW, None, False, True),
    ],
)
def test_who_is_sent_on_and_who_is_closed(
    source: Status, action: Action, reason: str | None, sent_on: bool, closed: bool
) -> None:
    step = find(source, action, INPATIENT, "up")
    assert (reroutes(step, reason), closes(step, reason)) == (sent_on, closed)


# -- consults and remote reads: their own rows, the shared ones, nothing of a transfer's ------


@pytest.mark.parametrize("kind", ["consult", "remote_read"])
@pytest.mark.parametrize("care", [OUTPATIENT, EXAMINATION])
def test_remote_requests_take_the_shared_rows_and_the_report(kind: str, care: CareType) -> None:
    rows = {(r.source, r.action): r for r in EXPECTED if kind in r.kinds}
    for status in Status:
        for action in Action:
            row = rows.get((status, action))
            if row is not None:
                t = find(status, action, care, "up", kind)
                assert (t.to, t.party, t.hold) == (row.to, row.party, row.hold)
                continue
            with pytest.raises(TransitionNotAllowed) as refused:
                find(status, action, care, "up", kind)
            expected = {
                str(r.action)
                for (s, _a), r in rows.items()
                if s is status and r.party is not P.SYSTEM
            }
            assert set(refused.value.allowed) == expected, (kind, status, action)
    assert find(S.PENDING, A.REPORT, care, "up", kind).to is S.REPORTED
    assert closes(find(S.ACCEPTED, A.REPORT, care, "up", kind), None)  # reported is final


def test_a_transfer_is_never_reported() -> None:
    with pytest.raises(TransitionNotAllowed):
        find(S.PENDING, A.REPORT, OUTPATIENT, "up")
