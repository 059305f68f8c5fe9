"""Outpatient sessions and appointments (on both back ends): a hospital pushes its half-day
sessions, accepting an outpatient referral books one and answers its time and number,
rescheduling moves it, cancelling or a no-show releases it, seeing the patient marks it
attended, and each booking is the `booked` event (webhook `referral.booked`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.db.webhook_models import WebhookEvent

CLINIC = "demo clinic ZH-THC-TS"
COUNTY = "demo hospital ZH-CH"
ZONE = ZoneInfo("Asia/Shanghai")


def _day(offset: int = 1) -> str:
    return (datetime.now(ZONE).date() + timedelta(days=offset)).isoformat()


def _sessions(day: str, **totals: int) -> dict[str, Any]:
    shapes = {
        "am": ("morning", "08:00", "11:30", "王主任", "门诊 3 诊室"),
        "pm": ("afternoon", "14:00", "17:00", None, None),
    }
    return {
        "as_of": datetime.now(UTC).isoformat(),
        "sessions": [
            {
                "session_id": f"CH-03-{day}-{key}",
                "specialty_code": "03",
                "day": day,
                "period": shapes[key][0],
                "start": shapes[key][1],
                "end": shapes[key][2],
                **({"doctor": shapes[key][3]} if shapes[key][3] else {}),
                **({"room": shapes[key][4]} if shapes[key][4] else {}),
                "total": total,
                "occupied": 0,
            }
            for key, total in totals.items()
        ],
    }


async def _push(client, auth, ids, body, expect: int = 200):
    r = await client.put(
        f"/v1/institutions/{ids['ZH-CH']}/sessions", json=body, headers=auth("demo admin")
    )
    assert r.status_code == expect, r.text
    return r.json()


async def _listed(client, auth, ids, day: str) -> dict[str, dict[str, Any]]:
    r = await client.get(
        f"/v1/institutions/{ids['ZH-CH']}/sessions", params={"day": day}, headers=auth(CLINIC)
    )
    assert r.status_code == 200, r.text
    return {s["session_id"].rsplit("-", 1)[1]: s for s in r.json()["items"]}


async def _outpatient(api, day: str) -> dict[str, Any]:
    return (await api.create(CLINIC, care_type="outpatient", wanted_day=day)).json()


async def test_accepting_books_the_earliest_session_with_room(api, client, auth, app) -> None:
    ids = await api.ids()
    day = _day()
    pushed = await _push(client, auth, ids, _sessions(day, am=2, pm=3))
    assert [s["free"] for s in pushed["items"]] == [2, 3]
    cap = await client.get(f"/v1/institutions/{ids['ZH-CH']}/capacity", headers=auth(CLINIC))
    slot = next(
        i
        for i in cap.json()["items"]
        if i["kind"] == "slots" and i["day"] == day and i["specialty_code"] == "03"
    )
    assert slot["total"] == 5  # the day's slots: the sum of its sessions
    refs = [await _outpatient(api, day) for _ in range(3)]
    assert all(r["target_institution_id"] == ids["ZH-CH"] for r in refs)
    booked = [(await api.act(COUNTY, r, "accept")).json() for r in refs]
    got = [(b["appointment"]["period"], b["appointment"]["number"]) for b in booked]
    assert got == [("morning", 1), ("morning", 2), ("afternoon", 1)]
    first = booked[0]["appointment"]
    assert first["doctor"] == "王主任" and first["room"] == "门诊 3 诊室"
    start = datetime.fromisoformat(f"{day}T08:00:00+08:00")
    assert datetime.fromisoformat(first["appointment_at"]) == start
    second = datetime.fromisoformat(booked[1]["appointment"]["appointment_at"])
    assert second == start + timedelta(minutes=105)  # 3.5 hours over 2 places
    listed = await _listed(client, auth, ids, day)
    assert (listed["am"]["booked"], listed["am"]["free"]) == (2, 0)
    assert (listed["pm"]["booked"], listed["pm"]["free"]) == (1, 2)
    async with app.state.database.unit_of_work(read_only=True) as session:
        types = (
            (
                await session.execute(
                    select(WebhookEvent.type).where(WebhookEvent.referral_id == refs[0]["id"])
                )
            )
            .scalars()
            .all()
        )
    assert "referral.booked" in types


async def test_reschedule_cancel_no_show_and_attend(api, client, auth) -> None:
    ids = await api.ids()
    day = _day(2)
    await _push(client, auth, ids, _sessions(day, am=2, pm=2))
    listed = await _listed(client, auth, ids, day)
    a, b, c = [await _outpatient(api, day) for _ in range(3)]
    a = (await api.act(COUNTY, a, "accept")).json()
    assert a["appointment"]["period"] == "morning"
    # moved to the afternoon: the morning place given back
    moved = (await api.act(COUNTY, a, "reschedule", {"session_id": listed["pm"]["id"]})).json()
    assert (moved["appointment"]["period"], moved["appointment"]["number"]) == ("afternoon", 1)
    now = await _listed(client, auth, ids, day)
    assert (now["am"]["booked"], now["pm"]["booked"]) == (0, 1)
    # the source cancels the appointment: the place back, the referral still accepted
    r = await client.delete(
        f"/v1/referrals/{moved['id']}/appointment",
        headers={**auth(CLINIC), "If-Match": f'"{moved["id"]}.{moved["version"]}"'},
    )
    assert r.status_code == 200, r.text
    cancelled = r.json()
    assert cancelled["status"] == "accepted" and cancelled["appointment"]["state"] == "cancelled"
    assert (await _listed(client, auth, ids, day))["pm"]["booked"] == 0
    # a no-show releases the place; seeing the patient marks it attended
    b = (await api.act(COUNTY, b, "accept")).json()
    c = (await api.act(COUNTY, c, "accept")).json()
    assert (await _listed(client, auth, ids, day))["am"]["booked"] == 2
    gone = (await api.act(COUNTY, b, "no-show")).json()
    assert gone["appointment"]["state"] == "no_show"
    arrived = (await api.act(COUNTY, c, "arrive")).json()
    seen = (await api.act(COUNTY, arrived, "see")).json()
    assert seen["appointment"]["state"] == "attended"
    final = await _listed(client, auth, ids, day)
    assert final["am"]["booked"] == 1  # the no-show's place given back, the seen one used
    events = [
        e["type"]
        for e in (await client.get(f"/v1/referrals/{a['id']}/events", headers=auth(CLINIC))).json()
    ]
    assert events.count("booked") == 2 and "appointment_cancelled" in events


async def test_sessions_and_bookings_refuse_what_does_not_fit(api, client, auth) -> None:
    ids = await api.ids()
    day = _day(3)
    bad = _sessions(day, am=2)
    bad["sessions"][0]["end"] = "07:00"
    r = await client.put(
        f"/v1/institutions/{ids['ZH-CH']}/sessions", json=bad, headers=auth("demo admin")
    )
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "sessions", 0, "end"]
    bad["sessions"][0].update(end="11:30", start="8 am")
    r = await client.put(
        f"/v1/institutions/{ids['ZH-CH']}/sessions", json=bad, headers=auth("demo admin")
    )
    assert r.status_code == 422 and "8 am" not in r.text
    r = await client.put(
        f"/v1/institutions/{ids['ZH-CH']}/sessions",
        json=_sessions(day, am=2),
        headers=auth("demo hospital ZH-TCM"),
    )
    assert r.status_code == 403
    await _push(client, auth, ids, _sessions(day, am=1))
    other = await _push(client, auth, ids, _sessions(_day(4), am=1))
    ref = await _outpatient(api, day)
    # a session of another day is not this referral's
    r = await api.act(COUNTY, ref, "accept", {"session_id": other["items"][0]["id"]}, expect=422)
    assert r.json()["errors"][0]["loc"] == ["body", "session_id"]
    booked = (await api.act(COUNTY, ref, "accept")).json()
    assert booked["appointment"]["number"] == 1
    # a session with appointments keeps its day
    moved = _sessions(day, am=1)
    moved["sessions"][0]["day"] = _day(5)
    r = await client.put(
        f"/v1/institutions/{ids['ZH-CH']}/sessions", json=moved, headers=auth("demo admin")
    )
    assert r.status_code == 409, r.text
    # an inpatient referral is not booked into sessions
    inpatient = (await api.create(CLINIC)).json()
    accepted = (await api.act(COUNTY, inpatient, "accept")).json()
    assert accepted["appointment"] is None
