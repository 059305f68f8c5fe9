"""Sent back for information (issue: daily workflows #1).

The target asks the source a question: the referral waits in `needs_information` at the same
target with its place still held, for the source's service-level time; the source amends it
(If-Match) and it is pending again at the same target. A rejection for incomplete information
is such a question, never a re-route; a patient who declines ends the referral; unanswered, the
referral expires and is routed on as usual. Question and answer are sealed clinical text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app.db.models import BedCapacity, Referral
from app.db.session import Database

CLINIC = "demo clinic ZH-THC-TS"
HOSPITAL = "demo hospital ZH-CH"
QUESTION = "请补充最近一次心电图结果（测试问题）"
ANSWER = "心电图：窦性心律（测试回答）"


async def _held(app, ids: dict[str, str], code: str) -> int:
    async with app.state.database.unit_of_work(read_only=True) as session:
        held = await session.scalar(
            select(BedCapacity.held).where(
                BedCapacity.institution_id == ids[code], BedCapacity.specialty_code == "03"
            )
        )
    return int(held or 0)


async def _setup(api) -> tuple[dict[str, str], dict]:
    ids = await api.ids()
    await api.set_beds("ZH-CH", {"03": (10, 5)})
    await api.set_beds("ZH-TCM", {"03": (10, 5)})
    ref = (await api.create(CLINIC)).json()
    assert ref["target_institution_id"] == ids["ZH-CH"]
    return ids, ref


async def test_ask_then_amend_returns_to_the_same_target(api, app) -> None:
    ids, ref = await _setup(api)
    asked = (await api.act(HOSPITAL, ref, "request-information", {"question": QUESTION})).json()
    assert asked["status"] == "needs_information"
    assert asked["target_institution_id"] == ids["ZH-CH"]
    assert asked["hold"] is not None and await _held(app, ids, "ZH-CH") == 1  # still held
    # the source's answer time: the shipped example gives urgent referrals 240 minutes
    respond_by = datetime.fromisoformat(asked["respond_by"].replace("Z", "+00:00"))
    left = respond_by - datetime.now(UTC)
    assert timedelta(minutes=235) < left <= timedelta(minutes=240)
    seen = (await api.get(CLINIC, ref)).json()
    assert [q["question"] for q in seen["information_requests"]] == [QUESTION]
    assert (
        "amend"
        in (
            await api.client.get(
                "/v1/referrals", params={"box": "outgoing"}, headers=api.auth(CLINIC)
            )
        ).json()["items"][0]["allowed_actions"]
    )
    # only the source amends, with the current ETag
    await api.act(HOSPITAL, asked, "amend", {"answer": ANSWER}, expect=403)
    await api.act(CLINIC, asked, "amend", {"answer": ANSWER}, etag="", expect=428)
    await api.act(CLINIC, ref, "amend", {"answer": ANSWER}, expect=412)  # a stale ETag
    amended = (
        await api.act(
            CLINIC, asked, "amend", {"answer": ANSWER, "clinical_summary": "补充后的摘要"}
        )
    ).json()
    assert amended["status"] == "pending"
    assert amended["target_institution_id"] == ids["ZH-CH"]
    assert amended["clinical_summary"] == "补充后的摘要"
    assert amended["information_requests"][0]["answer"] == ANSWER
    assert await _held(app, ids, "ZH-CH") == 1
    accepted = (await api.act(HOSPITAL, amended, "accept")).json()
    assert accepted["status"] == "accepted"
    events = (
        await api.client.get(f"/v1/referrals/{ref['id']}/events", headers=api.auth(CLINIC))
    ).json()
    types = [e["type"] for e in events]
    assert types.index("needs_information") < types.index("amended") < types.index("accepted")
    assert "rerouted" not in types
    # the question and the answer are clinical text: never in the plain event rows
    assert QUESTION not in str(events) and ANSWER not in str(events)
    async with app.state.database.unit_of_work(read_only=True) as session:
        row = await session.get(Referral, ref["id"])
        assert row is not None and QUESTION not in row.sensitive and ANSWER not in row.sensitive


async def test_rejecting_for_incomplete_information_asks_instead(api, app) -> None:
    ids, ref = await _setup(api)
    r = await api.act(
        HOSPITAL,
        ref,
        "reject",
        {"reason_code": "incomplete_information", "reason_text": "缺少检验结果"},
    )
    body = r.json()
    assert body["status"] == "needs_information"
    assert body["target_institution_id"] == ids["ZH-CH"]  # not sent on as it is
    assert await _held(app, ids, "ZH-CH") == 1 and await _held(app, ids, "ZH-TCM") == 0
    assert [q["question"] for q in body["information_requests"]] == ["缺少检验结果"]


async def test_a_patient_who_declines_ends_the_referral(api, app) -> None:
    ids, ref = await _setup(api)
    body = (await api.act(HOSPITAL, ref, "reject", {"reason_code": "patient_declined"})).json()
    assert body["status"] == "rejected"
    assert await _held(app, ids, "ZH-CH") == 0 and await _held(app, ids, "ZH-TCM") == 0
    seen = (await api.get(CLINIC, ref)).json()
    assert seen["status"] == "rejected" and seen["respond_by"] is None
    events = (
        await api.client.get(f"/v1/referrals/{ref['id']}/events", headers=api.auth(CLINIC))
    ).json()
    assert "rerouted" not in [e["type"] for e in events]
    # nothing more can be done with it
    await api.act(CLINIC, seen, "cancel", expect=409)


async def test_an_unanswered_question_expires_and_is_routed_on(api, app) -> None:
    from sqlalchemy import update

    from app.services.sweeper import sweep_once

    ids, ref = await _setup(api)
    await api.act(HOSPITAL, ref, "request-information", {"question": QUESTION})
    database: Database = app.state.database
    async with database.unit_of_work() as session:  # the source's answer time has passed
        await session.execute(
            update(Referral)
            .where(Referral.id == ref["id"])
            .values(respond_by=datetime.now(UTC) - timedelta(minutes=1))
        )
    assert await sweep_once(database, app.state.settings) == 1
    now = (await api.get(CLINIC, ref)).json()
    assert now["status"] == "pending" and now["target_institution_id"] == ids["ZH-TCM"]
    assert await _held(app, ids, "ZH-CH") == 0 and await _held(app, ids, "ZH-TCM") == 1
