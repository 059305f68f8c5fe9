from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text, update

from app.db.models import Referral
from app.db.session import Database

PROBLEM = "application/problem+json"


async def _figures(client, auth, ids, code: str) -> dict[str, int]:
    cap = await client.get(f"/v1/institutions/{ids[code]}/capacity", headers=auth("demo admin"))
    return next(i for i in cap.json()["items"] if i["specialty_code"] == "03")


async def test_happy_path_accept_arrive_admit_complete(api, client, auth) -> None:
    ids = await api.ids()
    await api.set_beds("ZH-CH", {"03": (10, 5)})
    created = await api.create("demo clinic ZH-THC-TS")
    assert created.json()["target_institution_id"] == ids["ZH-CH"]
    hospital = {**auth("demo hospital ZH-CH"), "X-User-ID": "his-user-7"}
    r = await api.act(hospital, created, "accept", {"ward": "内科三病区", "bed": "12"}, expect=None)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "accepted" and r.headers["etag"] != created.headers["etag"]
    assert (await _figures(client, auth, ids, "ZH-CH"))["held"] == 1
    r = await api.act(hospital, r, "arrive", expect=None)
    assert r.json()["status"] == "arrived"
    r = await api.act(hospital, r, "admit", expect=None)
    assert r.json()["status"] == "admitted"
    fig = await _figures(client, auth, ids, "ZH-CH")
    assert (fig["held"], fig["occupied"]) == (0, 6)
    r = await api.act(hospital, r, "complete", expect=None)
    assert r.json()["status"] == "completed"
    events = await client.get(
        f"/v1/referrals/{created.json()['id']}/events", headers=auth("demo clinic ZH-THC-TS")
    )
    assert [e["type"] for e in events.json()] == [
        "created",
        "tier_decided",
        "accepted",
        "arrived",
        "admitted",
        "completed",
    ]
    assert events.json()[2]["actor_user"] == "his-user-7"
    assert events.json()[2]["actor_institution_id"] == ids["ZH-CH"]


async def test_reject_reroutes_to_next_member_then_accept(api, client, auth) -> None:
    ids = await api.ids()
    await api.set_beds("ZH-CH", {"03": (10, 5)})
    await api.set_beds("ZH-TCM", {"03": (10, 5)})
    created = await api.create("demo clinic ZH-THC-TS")
    number = created.json()["number"]
    r = await api.act(
        "demo hospital ZH-CH",
        created,
        "reject",
        {"reason_code": "no_specialist_on_duty"},
        expect=None,
    )
    assert r.status_code == 200, r.text
    # the rejecting hospital may still read what it was sent; the referral moved on
    moved = await client.get(
        f"/v1/referrals/{created.json()['id']}", headers=auth("demo clinic ZH-THC-TS")
    )
    body = moved.json()
    assert body["status"] == "pending" and body["target_institution_id"] == ids["ZH-TCM"]
    assert body["number"] == number
    assert (await _figures(client, auth, ids, "ZH-CH"))["held"] == 0
    assert (await _figures(client, auth, ids, "ZH-TCM"))["held"] == 1
    excluded = {x["code"]: x["reason"] for x in body["routing"]["excluded"]}
    assert excluded["ZH-CH"] == "previously_declined"
    r = await api.act("demo hospital ZH-TCM", body, "accept", expect=None)
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    types = [
        e["type"]
        for e in (
            await client.get(
                f"/v1/referrals/{body['id']}/events", headers=auth("demo council ZHENGHE")
            )
        ).json()
    ]
    assert types == ["created", "tier_decided", "rejected", "rerouted", "tier_decided", "accepted"]


async def test_reject_needs_a_catalogued_reason(api, client, auth) -> None:
    created = await api.create("demo clinic ZH-THC-TS")
    h = auth("demo hospital ZH-CH")
    assert (
        await api.act(h, created, "reject", {"reason_code": "tired"}, expect=None)
    ).status_code == 422
    assert (await api.act(h, created, "reject", None, expect=None)).status_code == 422
    r = await api.act(h, created, "reject", {"reason_code": "other"}, expect=None)
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM


async def test_etag_required_and_checked(api, client, auth) -> None:
    created = await api.create("demo clinic ZH-THC-TS")
    h = auth("demo hospital ZH-CH")
    r = await api.act(h, created, "accept", etag="", expect=None)
    assert r.status_code == 428 and r.headers["content-type"] == PROBLEM
    first = await api.act(h, created, "accept", expect=None)
    assert first.status_code == 200
    stale = await api.act(h, created, "accept", expect=None)  # the old ETag again
    assert stale.status_code == 412 and stale.json()["type"].endswith("/precondition-failed")


async def test_wrong_state_is_409_naming_allowed_actions(api, client, auth) -> None:
    created = await api.create("demo clinic ZH-THC-TS")
    r = await api.act("demo hospital ZH-CH", created, "admit", expect=None)
    assert r.status_code == 409
    body = r.json()
    assert body["status"] == 409 and body["type"].endswith("/transition-not-allowed")
    assert set(body["allowed_actions"]) == {
        "accept",
        "reject",
        "cancel",
        "request-information",
        "forward",
        "place",
    }


async def test_roles_403_and_404(api, client, auth) -> None:
    created = await api.create("demo clinic ZH-THC-TS")
    # the source may not accept; the target may not cancel: 403 (they can see it)
    assert (
        await api.act("demo clinic ZH-THC-TS", created, "accept", expect=None)
    ).status_code == 403
    assert (await api.act("demo hospital ZH-CH", created, "cancel", expect=None)).status_code == 403
    # an unrelated institution gets the same 404 as a missing id
    r = await api.act("demo hospital ZH-TCM", created, "accept", expect=None)
    assert r.status_code == 404
    # the council may cancel for the clinic
    r = await api.act("demo council ZHENGHE", created, "cancel", expect=None)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    cancelled = r.json()
    again = await api.act("demo clinic ZH-THC-TS", cancelled, "cancel", expect=None)
    assert again.status_code == 409


async def test_cancel_and_no_show_release_and_retry_waitlist(api, client, auth) -> None:
    ids = await api.ids()
    await api.set_beds("ZH-CH", {"03": (4, 3)})  # one bed
    await api.set_beds("ZH-TCM", {"03": (4, 4)})
    await api.set_beds("NP-FH", {"03": (4, 4)})
    first = await api.create("demo clinic ZH-THC-TS")
    second = await api.create("demo clinic ZH-THC-LY", urgency="routine")
    third = await api.create("demo clinic ZH-THC-DP", urgency="emergency")
    assert first.json()["status"] == "pending"
    assert second.json()["status"] == third.json()["status"] == "waitlisted"
    r = await api.act("demo clinic ZH-THC-TS", first, "cancel", expect=None)
    assert r.status_code == 200
    # the freed bed goes to the most urgent waitlisted referral, not the oldest
    third_now = (
        await client.get(
            f"/v1/referrals/{third.json()['id']}", headers=auth("demo clinic ZH-THC-DP")
        )
    ).json()
    second_now = (
        await client.get(
            f"/v1/referrals/{second.json()['id']}", headers=auth("demo clinic ZH-THC-LY")
        )
    ).json()
    assert third_now["status"] == "pending" and second_now["status"] == "waitlisted"
    # accept, then no-show: the bed is released and the next waitlisted one gets it
    h = auth("demo hospital ZH-CH")
    accepted = await api.act(h, third_now, "accept", expect=None)
    r = await api.act(h, accepted.json(), "no-show", expect=None)
    assert r.status_code == 200 and r.json()["status"] == "no_show"
    second_now = (
        await client.get(
            f"/v1/referrals/{second.json()['id']}", headers=auth("demo clinic ZH-THC-LY")
        )
    ).json()
    assert second_now["status"] == "pending"
    # a census with room retries the waitlist too
    fourth = await api.create("demo clinic ZH-THC-TS")
    assert fourth.json()["status"] == "waitlisted"
    await api.set_beds("ZH-TCM", {"03": (4, 3)})
    fourth_now = (
        await client.get(
            f"/v1/referrals/{fourth.json()['id']}", headers=auth("demo clinic ZH-THC-TS")
        )
    ).json()
    assert fourth_now["status"] == "pending"
    assert fourth_now["target_institution_id"] == ids["ZH-TCM"]


async def test_expiry_sweep_reroutes(api, client, auth, app) -> None:
    from app.services.sweeper import sweep_once

    ids = await api.ids()
    await api.set_beds("ZH-CH", {"03": (10, 5)})
    await api.set_beds("ZH-TCM", {"03": (10, 5)})
    created = (await api.create("demo clinic ZH-THC-TS")).json()
    database: Database = app.state.database
    async with database.unit_of_work() as session:  # its answer time has passed
        await session.execute(
            update(Referral)
            .where(Referral.id == created["id"])
            .values(respond_by=datetime.now(UTC) - timedelta(hours=1))
        )
    assert await sweep_once(database, app.state.settings) == 1
    assert await sweep_once(database, app.state.settings) == 0
    now = (
        await client.get(f"/v1/referrals/{created['id']}", headers=auth("demo clinic ZH-THC-TS"))
    ).json()
    assert now["status"] == "pending" and now["target_institution_id"] == ids["ZH-TCM"]
    assert (await _figures(client, auth, ids, "ZH-CH"))["held"] == 0
    events = (
        await client.get(
            f"/v1/referrals/{created['id']}/events", headers=auth("demo clinic ZH-THC-TS")
        )
    ).json()
    assert [e["type"] for e in events] == [
        "created",
        "tier_decided",
        "expired",
        "rerouted",
        "tier_decided",
    ]


async def test_worklist_order_filters_and_actions(api, client, auth) -> None:
    await api.set_beds("ZH-CH", {"03": (50, 0)})
    made = []
    for urgency in ("routine", "emergency", "urgent", "routine"):
        made.append((await api.create("demo clinic ZH-THC-TS", urgency=urgency)).json())
    h = auth("demo hospital ZH-CH")
    r = await client.get("/v1/referrals", params={"box": "incoming", "limit": 2}, headers=h)
    assert r.status_code == 200, r.text
    page1 = r.json()
    r2 = await client.get(
        "/v1/referrals",
        params={"box": "incoming", "limit": 2, "cursor": page1["next_cursor"]},
        headers=h,
    )
    items = page1["items"] + r2.json()["items"]
    assert [i["urgency"] for i in items] == ["emergency", "urgent", "routine", "routine"]
    assert items[2]["created_at"] <= items[3]["created_at"]
    assert all(
        i["allowed_actions"] == ["accept", "reject", "request-information", "forward"]
        for i in items
    )
    assert items[0]["last_event"]["type"] == "created"  # not the bookkeeping tier_decided
    clinic = await client.get(
        "/v1/referrals", params={"box": "outgoing"}, headers=auth("demo clinic ZH-THC-TS")
    )
    assert {i["id"] for i in clinic.json()["items"]} == {m["id"] for m in made}
    assert all(i["allowed_actions"] == ["cancel"] for i in clinic.json()["items"])
    other = await client.get("/v1/referrals", headers=auth("demo clinic ZH-THC-LY"))
    assert other.json()["items"] == []
    filtered = await client.get(
        "/v1/referrals", params={"urgency": "emergency"}, headers=auth("demo council ZHENGHE")
    )
    assert [i["id"] for i in filtered.json()["items"]] == [made[1]["id"]]
    hz = await client.get("/v1/referrals", headers=auth("demo council HUANGZHONG-1"))
    assert hz.json()["items"] == []


async def test_events_are_append_only(api, client, auth, app) -> None:
    created = (await api.create("demo clinic ZH-THC-TS")).json()
    database: Database = app.state.database
    for sql in ("UPDATE referral_event SET reason = 'x'", "DELETE FROM referral_event"):
        with pytest.raises(Exception, match="append-only"):
            async with database.unit_of_work() as session:
                await session.execute(text(sql))
    events = await client.get(
        f"/v1/referrals/{created['id']}/events", headers=auth("demo clinic ZH-THC-TS")
    )
    assert [e["type"] for e in events.json()] == ["created", "tier_decided"]


async def test_invariant_after_random_transitions(api, client, auth) -> None:
    """held = referrals holding a bed; free never below 0; after random steps."""
    rng = random.Random(20261122)
    ids = await api.ids()
    for code in ("ZH-CH", "ZH-TCM"):
        await api.set_beds(code, {"03": (6, 2)})
    refs = [(await api.create("demo clinic ZH-THC-TS")).json() for _ in range(10)]
    hospital_key = {ids["ZH-CH"]: "demo hospital ZH-CH", ids["ZH-TCM"]: "demo hospital ZH-TCM"}
    for _ in range(40):
        ref = rng.choice(refs)
        current = (
            await client.get(f"/v1/referrals/{ref['id']}", headers=auth("demo admin"))
        ).json()
        target_key = hospital_key.get(current["target_institution_id"] or "")
        options = [("demo clinic ZH-THC-TS", "cancel")]
        if target_key:
            options += [
                (target_key, a)
                for a in ("accept", "reject", "arrive", "admit", "complete", "no-show")
            ]
        who, action = rng.choice(options)
        body = {"reason_code": "no_bed"} if action == "reject" else None
        r = await api.act(auth(who), current, action, body, expect=None)
        assert r.status_code in (200, 409), r.text
        await _check_invariant(client, auth, ids)


async def _check_invariant(client, auth, ids) -> None:
    holding: dict[str, int] = {}
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 200}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/referrals", params=params, headers=auth("demo admin"))).json()
        for item in page["items"]:
            if (
                item["status"] in ("pending", "accepted", "arrived")
                and item["target_institution_id"]
            ):
                holding[item["target_institution_id"]] = (
                    holding.get(item["target_institution_id"], 0) + 1
                )
        cursor = page["next_cursor"]
        if not cursor:
            break
    for code in ("ZH-CH", "ZH-TCM", "NP-FH"):
        fig = await _figures(client, auth, ids, code)
        assert fig["held"] == holding.get(ids[code], 0), (code, fig, holding)
        assert fig["total"] - fig["occupied"] - fig["held"] >= 0
