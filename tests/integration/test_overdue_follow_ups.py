"""The overdue follow-up lists follow the down-referral: its target, its state, visits done.

Each follow-up carries copies of its referral's consortium, source, current target and whether
it is live (accepted, arrived, in follow-up), so that each list is read from an index
(tests/integration/test_worklist_plans.py). Here, through the API: a re-route after a
rejection, an expiry and a waitlist placement move the copies with the referral; acceptance
puts the visits on the lists, a visit done takes its planned visit off, completion takes them
all off; after every step every copy equals its referral.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import text, update

from app.db.base import utcnow
from app.db.models import FollowUp, Referral
from app.db.repositories.episodes import LIVE_STATES
from app.services import lifecycle
from tests.driver import ApiDriver
from tests.factories import referral_body

HOSPITAL = "demo hospital HZ-FPH"
COUNCIL = "demo council HUANGZHONG-1"


async def _admitted_up(api: ApiDriver) -> tuple[dict[str, Any], dict[str, Any]]:
    await api.set_beds("HZ-FPH", {"03": (40, 10)})
    body = referral_body(specialty_code="03.04")
    up = (await api.create("demo clinic HZ-THC-SXZ", body=body)).json()
    for action in ("accept", "arrive", "admit"):
        up = (await api.act(HOSPITAL, up, action)).json()
    return up, body["patient"]


async def _copies_match(app: Any) -> None:
    """Every follow-up's copies are its referral's."""
    async with app.state.database.unit_of_work(read_only=True) as session:
        rows = (
            await session.execute(
                text(
                    "SELECT f.consortium_id, f.source_institution_id, f.target_institution_id,"
                    " f.live, r.consortium_id, r.source_institution_id, r.target_institution_id,"
                    " r.status FROM follow_up f JOIN referral r ON r.id = f.referral_id"
                )
            )
        ).all()
    assert rows
    for row in rows:
        copied = (row[0], row[1], row[2], bool(row[3]))
        assert copied == (row[4], row[5], row[6], row[7] in LIVE_STATES)


async def _make_due(app: Any, referral_id: str, *days_ago: int) -> None:
    """The referral's open planned visits (earliest first) fall due ``days_ago`` days ago."""
    async with app.state.database.unit_of_work() as session:
        planned = (
            (
                await session.execute(
                    text(
                        "SELECT id FROM follow_up WHERE referral_id = :r AND kind = 'planned'"
                        " AND done_at IS NULL ORDER BY due_date, id"
                    ),
                    {"r": referral_id},
                )
            )
            .scalars()
            .all()
        )
        for follow_up_id, days in zip(planned, days_ago, strict=True):
            await session.execute(
                update(FollowUp)
                .where(FollowUp.id == follow_up_id)
                .values(due_date=date.today() - timedelta(days=days))
            )


async def _overdue(api: ApiDriver, who: str, role: str = "receiving") -> list[tuple[str, str]]:
    r = await api.client.get(
        "/v1/follow-ups/overdue", params={"role": role}, headers=api.headers(who)
    )
    assert r.status_code == 200, r.text
    return [(o["referral_id"], o["due_date"]) for o in r.json()]


def _code(ids: dict[str, str], institution_id: str) -> str:
    return next(code for code, i in ids.items() if i == institution_id)


async def test_the_lists_follow_reroute_acceptance_visits_and_completion(
    api: ApiDriver, app: Any
) -> None:
    ids = await api.ids()
    up, patient = await _admitted_up(api)
    down = (await api.create_down(HOSPITAL, up, patient)).json()
    await _make_due(app, down["id"], 10, 5)
    first = f"demo clinic {_code(ids, down['target_institution_id'])}"
    assert await _overdue(api, first) == []  # pending: not followed up yet
    assert await _overdue(api, HOSPITAL, "referring") == []
    await _copies_match(app)

    down = (await api.act(first, down, "reject", {"reason_code": "no_specialist_on_duty"})).json()
    assert down["status"] == "pending"
    second = f"demo clinic {_code(ids, down['target_institution_id'])}"
    assert second != first
    await _copies_match(app)

    down = (await api.act(second, down, "accept")).json()
    await _copies_match(app)
    ten, five = (str(date.today() - timedelta(days=d)) for d in (10, 5))
    both = [(down["id"], ten), (down["id"], five)]
    assert await _overdue(api, second) == both
    assert await _overdue(api, first) == []
    assert await _overdue(api, HOSPITAL, "referring") == both
    assert await _overdue(api, second, "referring") == []
    assert await _overdue(api, COUNCIL) == both
    assert await _overdue(api, "demo admin") == both
    assert await _overdue(api, "demo council ZHENGHE") == []

    visit = {"kind": "visit", "visit_date": str(date.today()), "findings": "BP 128/80"}
    r = await api.client.post(
        f"/v1/referrals/{down['id']}/follow-ups", json=visit, headers=api.headers(second)
    )
    assert r.status_code == 201, r.text
    assert await _overdue(api, second) == [(down["id"], five)]
    await _copies_match(app)

    down = (await api.get(second, down)).json()
    for action in ("arrive", "start-follow-up"):
        down = (await api.act(second, down, action)).json()
        assert await _overdue(api, second) == [(down["id"], five)]
    down = (await api.act(second, down, "complete")).json()
    assert down["status"] == "completed"
    assert await _overdue(api, second) == []
    assert await _overdue(api, HOSPITAL, "referring") == []
    assert await _overdue(api, "demo admin") == []
    await _copies_match(app)


async def test_an_expired_down_referral_moves_its_follow_ups(api: ApiDriver, app: Any) -> None:
    ids = await api.ids()
    up, patient = await _admitted_up(api)
    down = (await api.create_down(HOSPITAL, up, patient)).json()
    first = down["target_institution_id"]
    async with app.state.database.unit_of_work() as session:
        await session.execute(
            update(Referral).where(Referral.id == down["id"]).values(respond_by=utcnow())
        )
    async with app.state.database.unit_of_work() as session:
        assert await lifecycle.expire_due(session, app.state.settings) == 1
    down = (await api.get(HOSPITAL, down)).json()
    assert down["status"] == "pending" and down["target_institution_id"] != first
    await _copies_match(app)
    await _make_due(app, down["id"], 3, 2)
    clinic = f"demo clinic {_code(ids, down['target_institution_id'])}"
    down = (await api.act(clinic, down, "accept")).json()
    assert [r for r, _ in await _overdue(api, clinic)] == [down["id"], down["id"]]
    assert await _overdue(api, f"demo clinic {_code(ids, first)}") == []


async def test_a_waitlisted_down_referral_placed_later_moves_its_follow_ups(
    api: ApiDriver, app: Any
) -> None:
    ids = await api.ids()
    up, patient = await _admitted_up(api)
    # a rehabilitation bed no primary institution has yet: waitlisted, no target
    down = (
        await api.create_down(HOSPITAL, up, patient, service_code="21", care_type="inpatient")
    ).json()
    assert down["status"] == "waitlisted" and down["target_institution_id"] is None
    await _copies_match(app)
    await api.set_beds("HZ-THC-SXZ", {"21": (4, 0)})
    down = (await api.get(HOSPITAL, down)).json()
    assert down["status"] == "pending"
    assert down["target_institution_id"] == ids["HZ-THC-SXZ"]
    await _copies_match(app)
    await _make_due(app, down["id"], 7, 1)
    down = (await api.act("demo clinic HZ-THC-SXZ", down, "accept")).json()
    listed = await _overdue(api, "demo clinic HZ-THC-SXZ")
    assert [r for r, _ in listed] == [down["id"], down["id"]]
