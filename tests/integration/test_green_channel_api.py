from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from app.db.models import Referral
from app.domain.localtime import local_date
from app.services.sweeper import sweep_once
from tests.factories import STROKE


async def _milestone(client, h, ref_id: str, code: str, at: datetime):
    return await client.post(
        f"/v1/referrals/{ref_id}/milestones",
        json={"milestone": code, "at": at.isoformat()},
        headers=h,
    )


async def test_stroke_goes_to_nearest_centre_even_when_full(api, client, auth) -> None:
    ids = await api.ids()
    await api.set_beds("HZ-FPH", {"03": (40, 40), "03.03": (10, 10)})
    ref = (await api.create("demo clinic HZ-THC-XB", **STROKE)).json()
    assert ref["status"] == "pending" and ref["target_institution_id"] == ids["HZ-FPH"]
    assert ref["overflow"] is True and ref["hold"] is None
    assert ref["routing"]["overflow"] is True
    assert "overflow" in ref["routing"]["explanation"]
    assert ref["specialty_code"] == "03.03" and ref["pathway_code"] == "stroke"
    events = await client.get(f"/v1/referrals/{ref['id']}/events", headers=auth("demo admin"))
    assert [e["type"] for e in events.json()] == ["created", "target_notified", "tier_decided"]
    # with a free bed, the bed is still held
    await api.set_beds("HZ-FPH", {"03.03": (10, 9)}, expect=None)
    second = (await api.create("demo clinic HZ-THC-XB", **STROKE)).json()
    assert second["overflow"] is False and second["hold"]["specialty_code"] == "03.03"


async def test_milestones_met_and_missed(api, client, auth) -> None:
    hospital = auth("demo hospital HZ-FPH")
    door = datetime.now(UTC) - timedelta(hours=2)
    results = {}
    for minutes in (40, 75):
        ref = (await api.create("demo clinic HZ-THC-XB", **STROKE)).json()
        assert (await _milestone(client, hospital, ref["id"], "door", door)).status_code == 201
        r = await _milestone(
            client, hospital, ref["id"], "treatment_start", door + timedelta(minutes=minutes)
        )
        assert r.status_code == 201, r.text
        dnt = next(t for t in r.json()["targets"] if t["code"] == "door_to_needle")
        results[minutes] = (dnt["status"], dnt["actual_minutes"])
    assert results == {40: ("met", 40.0), 75: ("missed", 75.0)}
    # rules: no future time, no double recording, the source records departure only
    ref = (await api.create("demo clinic HZ-THC-XB", **STROKE)).json()
    future = datetime.now(UTC) + timedelta(hours=1)
    assert (await _milestone(client, hospital, ref["id"], "door", future)).status_code == 422
    assert (await _milestone(client, hospital, ref["id"], "door", door)).status_code == 201
    assert (await _milestone(client, hospital, ref["id"], "door", door)).status_code == 409
    clinic = auth("demo clinic HZ-THC-XB")
    assert (await _milestone(client, clinic, ref["id"], "imaging", door)).status_code == 403
    assert (await _milestone(client, clinic, ref["id"], "departed", door)).status_code == 201
    view = await client.get(f"/v1/referrals/{ref['id']}/milestones", headers=clinic)
    assert set(view.json()["milestones"]) == {
        "referral_sent",
        "target_notified",
        "door",
        "departed",
    }


async def test_past_referrals_keep_their_targets(api, client, auth) -> None:
    ref = (await api.create("demo clinic HZ-THC-XB", **STROKE)).json()
    new_targets = [
        {
            "code": "door_to_needle",
            "name": "DNT",
            "from": "door",
            "to": "treatment_start",
            "minutes": 45,
        }
    ]
    r = await client.patch(
        "/v1/pathways/stroke",
        json={"targets": new_targets},
        headers=auth("demo council HUANGZHONG-1"),
    )
    assert r.status_code == 200 and r.json()["version"] == 2
    denied = await client.patch(
        "/v1/pathways/stroke", json={"targets": new_targets}, headers=auth("demo hospital HZ-FPH")
    )
    assert denied.status_code == 403
    hospital = auth("demo hospital HZ-FPH")
    door = datetime.now(UTC) - timedelta(hours=1)
    await _milestone(client, hospital, ref["id"], "door", door)
    r = await _milestone(
        client, hospital, ref["id"], "treatment_start", door + timedelta(minutes=50)
    )
    body = r.json()
    dnt = next(t for t in body["targets"] if t["code"] == "door_to_needle")
    assert body["pathway_version"] == 1 and dnt["target_minutes"] == 60
    assert dnt["status"] == "met"  # 50 min: met against 60, would miss against 45
    later = (await api.create("demo clinic HZ-THC-XB", **STROKE)).json()
    view = await client.get(f"/v1/referrals/{later['id']}/milestones", headers=hospital)
    assert view.json()["pathway_version"] == 2
    assert [t["target_minutes"] for t in view.json()["targets"]] == [45]


async def test_green_channel_heads_worklist_and_reroutes_quickly(api, client, auth, app) -> None:
    ids = await api.ids()
    await api.set_beds("HZ-FPH", {"03": (40, 0)}, expect=None)
    await api.create("demo clinic HZ-THC-XB", urgency="emergency")
    green = (await api.create("demo clinic HZ-THC-XB", **STROKE)).json()
    listed = await client.get(
        "/v1/referrals", params={"box": "incoming"}, headers=auth("demo hospital HZ-FPH")
    )
    first = listed.json()["items"][0]
    assert first["id"] == green["id"] and first["priority"] == 0
    answer_time = datetime.fromisoformat(green["respond_by"]) - datetime.fromisoformat(
        green["created_at"]
    )
    assert answer_time <= timedelta(minutes=10)
    database = app.state.database
    async with database.unit_of_work() as session:
        await session.execute(
            update(Referral)
            .where(Referral.id == green["id"])
            .values(respond_by=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert await sweep_once(database, app.state.settings) == 1
    after = (await client.get(f"/v1/referrals/{green['id']}", headers=auth("demo admin"))).json()
    # the only stroke centre in the consortium did not answer: on to the partner
    assert after["target_institution_id"] != ids["HZ-FPH"]
    assert after["status"] == "pending"


async def test_green_channel_figures(api, client, auth) -> None:
    hospital = auth("demo hospital HZ-FPH")
    door = datetime.now(UTC) - timedelta(hours=3)
    for minutes in (30, 50, 70, 90):
        ref = (await api.create("demo clinic HZ-THC-XB", **STROKE)).json()
        await _milestone(client, hospital, ref["id"], "door", door)
        await _milestone(
            client, hospital, ref["id"], "treatment_start", door + timedelta(minutes=minutes)
        )
    today = local_date(datetime.now(UTC), "Asia/Shanghai")  # report days are local days
    r = await client.get(
        "/v1/reports/green-channel",
        params={"from": str(today - timedelta(days=1)), "to": str(today + timedelta(days=1))},
        headers=auth("demo council HUANGZHONG-1"),
    )
    assert r.status_code == 200, r.text
    rows = [x for x in r.json() if x["pathway"] == "stroke"]
    assert len(rows) == 1 and rows[0]["referrals"] == 4
    dnt = next(i for i in rows[0]["intervals"] if i["target"] == "door_to_needle")
    assert dnt["measured"] == 4 and dnt["median_minutes"] == 60.0
    assert dnt["met_share"] == 0.5 and dnt["p90_minutes"] == 84.0
    other = await client.get(
        "/v1/reports/green-channel",
        params={"from": str(today), "to": str(today)},
        headers=auth("demo clinic HZ-THC-XB"),
    )
    assert other.status_code == 403
