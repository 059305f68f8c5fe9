"""The consortium's local day (Asia/Shanghai, UTC+8) across its boundaries, on both back ends.

16:00 UTC is midnight in Beijing: a referral, a visit or a slot day on either side of it
belongs to a different local day; the clock is fixed per request with ``clock_at``.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from app.db.base import clock_at
from app.db.models import BedCapacity, SlotCapacity
from tests.driver import ApiDriver
from tests.factories import STROKE, down_body, referral_body


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture(autouse=True)
async def old_demo_census(app) -> None:
    """The demo census is dated when the test database was built; these tests run at fixed
    instants before that, so date it far back (stale, and never newer than a test's census)."""
    async with app.state.database.unit_of_work() as session:
        for model in (BedCapacity, SlotCapacity):
            await session.execute(update(model).values(as_of=datetime(2000, 1, 1, tzinfo=UTC)))


async def _consortia(client: httpx.AsyncClient, auth: Any) -> dict[str, dict[str, Any]]:
    r = await client.get("/v1/consortia", params={"limit": 200}, headers=auth("demo admin"))
    return {c["code"]: c for c in r.json()["items"]}


async def _refer(api: ApiDriver, when: str, clinic: str = "ZH-THC-TS", **kw: Any) -> httpx.Response:
    with clock_at(at(when)):
        return await api.create(f"demo clinic {clinic}", expect=None, **kw)


async def test_consortia_carry_their_time_zone(client, auth) -> None:
    consortia = await _consortia(client, auth)
    assert {c["time_zone"] for c in consortia.values()} == {"Asia/Shanghai"}
    admin = auth("demo admin")
    base = {"code": "TZ-TEST", "name": "测试医联体", "kind": "urban_medical_group"}
    r = await client.post("/v1/consortia", json={**base, "referral_prefix": "TZ"}, headers=admin)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["time_zone"] == "Asia/Shanghai"  # REFERRAL_DEFAULT_TIME_ZONE
    for bad in ("Mars/Olympus_Mons", "+08:00", "../etc/passwd", "", "Asia/Shanghai\u0000"):
        body = {**base, "code": "TZ-BAD", "referral_prefix": "TZB", "time_zone": bad}
        r = await client.post("/v1/consortia", json=body, headers=admin)
        assert r.status_code == 422, (bad, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert [e["loc"] for e in r.json()["errors"]] == [["body", "time_zone"]]
        assert bad not in r.text or not bad
    path = f"/v1/consortia/{created['id']}"
    r = await client.patch(path, json={"time_zone": "Europe/Berlin"}, headers=admin)
    assert r.status_code == 200 and r.json()["time_zone"] == "Europe/Berlin"
    r = await client.patch(path, json={"time_zone": None}, headers=admin)
    assert r.status_code == 422
    r = await client.patch(path, json={"time_zone": "Nowhere/City"}, headers=admin)
    assert r.status_code == 422
    assert (await client.get(path, headers=admin)).json()["time_zone"] == "Europe/Berlin"


class TestDefaultTimeZoneSetting:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"default_time_zone": "Asia/Urumqi"}

    async def test_consortium_created_without_a_zone_gets_it(self, client, auth) -> None:
        body = {
            "code": "TZ-URUMQI",
            "name": "测试医联体",
            "kind": "urban_medical_group",
            "referral_prefix": "TZU",
        }
        r = await client.post("/v1/consortia", json=body, headers=auth("demo admin"))
        assert r.status_code == 201, r.text
        assert r.json()["time_zone"] == "Asia/Urumqi"
        # an explicit zone wins
        body = {**body, "code": "TZ-SH", "referral_prefix": "TZS", "time_zone": "Asia/Shanghai"}
        r = await client.post("/v1/consortia", json=body, headers=auth("demo admin"))
        assert r.json()["time_zone"] == "Asia/Shanghai"


@pytest.mark.parametrize(
    ("when", "number_day", "local_day"),
    [
        ("2026-11-21T15:59:59+00:00", "20261121", "2026-11-21"),
        ("2026-11-21T16:00:00+00:00", "20261122", "2026-11-22"),
        ("2026-11-21T23:30:00+00:00", "20261122", "2026-11-22"),  # 07:30 in Beijing
        ("2026-12-31T15:59:59+00:00", "20261231", "2026-12-31"),
        ("2026-12-31T16:00:00+00:00", "20270101", "2027-01-01"),
    ],
)
async def test_number_takes_the_local_day(api, client, auth, when, number_day, local_day) -> None:
    r = await _refer(api, when)
    assert r.status_code == 201, r.text
    ref = r.json()
    assert ref["number"] == f"ZH-{number_day}-0001"
    assert ref["created_local_date"] == local_day
    assert datetime.fromisoformat(ref["created_at"]) == at(when)  # the instant stays UTC
    read = await client.get(f"/v1/referrals/{ref['id']}", headers=auth("demo admin"))
    assert read.json()["created_local_date"] == local_day


async def test_a_zone_change_moves_the_day_of_new_numbers(api, client, auth) -> None:
    zh = (await _consortia(client, auth))["ZHENGHE"]
    first = (await _refer(api, "2026-11-21T16:00:00+00:00")).json()
    assert first["number"] == "ZH-20261122-0001"
    r = await client.patch(
        f"/v1/consortia/{zh['id']}", json={"time_zone": "UTC"}, headers=auth("demo admin")
    )
    assert r.status_code == 200, r.text
    second = (await _refer(api, "2026-11-21T16:00:01+00:00")).json()
    assert second["number"] == "ZH-20261121-0001"
    assert second["created_local_date"] == "2026-11-21"


async def _slots_census(client, auth, ids, when: str, days: list[str]) -> None:
    with clock_at(at(when)):
        r = await client.put(
            f"/v1/institutions/{ids['ZH-CH']}/capacity",
            json={
                "as_of": when,
                "slots": [
                    {"specialty_code": "04", "day": d, "total": 5, "occupied": 0} for d in days
                ],
            },
            headers=auth("demo admin"),
        )
    assert r.status_code == 200, r.text


async def _slot_days(client, auth, ids, when: str) -> list[str]:
    with clock_at(at(when)):
        r = await client.get(
            f"/v1/institutions/{ids['ZH-CH']}/capacity", headers=auth("demo admin")
        )
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    # the demo's own slot days (from the day the test database was built) left aside
    days = {i["day"] for i in items if i["kind"] == "slots" and i["specialty_code"] == "04"}
    return sorted(days & {"2026-11-21", "2026-11-22"})


async def test_slot_days_and_wanted_day_are_local_days(api, client, auth) -> None:
    ids = await api.ids()
    await _slots_census(client, auth, ids, "2026-11-21T15:00:00Z", ["2026-11-21", "2026-11-22"])
    # today's slots: the Beijing day, which starts at 16:00 UTC
    assert await _slot_days(client, auth, ids, "2026-11-21T15:59:59Z") == [
        "2026-11-21",
        "2026-11-22",
    ]
    assert await _slot_days(client, auth, ids, "2026-11-21T16:00:00Z") == ["2026-11-22"]
    outpatient = {"care_type": "outpatient", "specialty_code": "04"}
    # before midnight in Beijing, today is still the 21st
    r = await _refer(api, "2026-11-21T15:59:59Z", wanted_day="2026-11-21", **outpatient)
    assert r.status_code == 201, r.text
    assert r.json()["hold"] == {"kind": "slot", "specialty_code": "04", "day": "2026-11-21"}
    # at 16:30 UTC it is the 22nd in Beijing: the 21st is past, the 22nd is today
    r = await _refer(api, "2026-11-21T16:30:00Z", wanted_day="2026-11-21", **outpatient)
    assert r.status_code == 422, r.text
    assert [e["loc"] for e in r.json()["errors"]] == [["body", "wanted_day"]]
    r = await _refer(api, "2026-11-21T16:30:00Z", wanted_day="2026-11-22", **outpatient)
    assert r.status_code == 201, r.text
    ref = r.json()
    assert ref["target_institution_id"] == ids["ZH-CH"]
    assert ref["hold"] == {"kind": "slot", "specialty_code": "04", "day": "2026-11-22"}
    # the refused create took the 22nd's first number (a gap, as documented)
    assert ref["number"] == "ZH-20261122-0002"


async def _in_follow_up(api, ids, when: str) -> dict[str, Any]:
    """An up-referral to HZ-FPH admitted, then sent down to the clinic and followed up."""
    with clock_at(at(when)):
        await api.set_beds("HZ-FPH", {"03": (40, 1), "03.04": (40, 1)}, as_of=at(when))
        body = referral_body(specialty_code="03.04")
        clinic, hospital = "demo clinic HZ-THC-SXZ", "demo hospital HZ-FPH"
        up = (await api.create(clinic, body)).json()
        assert up["target_institution_id"] == ids["HZ-FPH"]
        for action in ("accept", "arrive", "admit"):
            up = (await api.act(hospital, up, action)).json()
        plan = [{"due_date": "2026-12-06", "purpose": "BP and lipids"}]
        down = down_body(up, body["patient"], follow_up_plan=plan)
        del down["medications"]
        down = (await api.create(hospital, down)).json()
        for action in ("accept", "arrive", "start-follow-up"):
            down = (await api.act(clinic, down, action)).json()
    return down


async def test_follow_up_visit_today_is_the_local_day(api, client, auth) -> None:
    ids = await api.ids()
    down = await _in_follow_up(api, ids, "2026-11-21T16:10:00Z")
    clinic = auth("demo clinic HZ-THC-SXZ")

    async def visit(when: str, day: str) -> httpx.Response:
        with clock_at(at(when)):
            return await client.post(
                f"/v1/referrals/{down['id']}/follow-ups",
                json={"kind": "visit", "visit_date": day, "findings": "BP 130/80"},
                headers=clinic,
            )

    # 16:30 UTC on the 21st is 00:30 on the 22nd in Beijing: a visit today is not the future
    r = await visit("2026-11-21T16:30:00Z", "2026-11-22")
    assert r.status_code == 201, r.text
    r = await visit("2026-11-21T16:30:00Z", "2026-11-23")
    assert r.status_code == 422, r.text
    assert [e["loc"] for e in r.json()["errors"]] == [["body", "visit_date"]]
    # the last evening of the year: 2027-01-01 begins at 16:00 UTC on 31 December
    assert (await visit("2026-12-31T15:59:59Z", "2027-01-01")).status_code == 422
    assert (await visit("2026-12-31T16:00:00Z", "2027-01-01")).status_code == 201


async def _month_rows(client, auth, first: str, end: str, **params: str) -> list[dict[str, Any]]:
    r = await client.get(
        "/v1/reports/referrals",
        params={"from": first, "to": end, "group_by": "month", **params},
        headers=auth("demo council ZHENGHE"),
    )
    assert r.status_code == 200, r.text
    return list(r.json())


async def test_monthly_figures_count_in_the_local_month(api, client, auth) -> None:
    for when in (
        "2026-11-30T15:59:59Z",  # 23:59:59 on 30 November in Beijing
        "2026-11-30T17:00:00Z",  # 01:00 on 1 December
        "2026-12-31T15:59:59Z",  # the last second of 2026
        "2026-12-31T16:00:00Z",  # the first of 2027
    ):
        assert (await _refer(api, when)).status_code == 201
    rows = await _month_rows(client, auth, "2026-11-01", "2027-02-01")
    assert {r["month"]: r["up_sent"] for r in rows} == {
        "2026-11": 1,
        "2026-12": 2,
        "2027-01": 1,
    }
    # from/to are local days: December alone holds the referral sent at 17:00 UTC on 30 Nov
    december = await _month_rows(client, auth, "2026-12-01", "2027-01-01")
    assert [(r["month"], r["up_sent"]) for r in december] == [("2026-12", 2)]
    one_day = await _month_rows(client, auth, "2026-12-01", "2026-12-02")
    assert [(r["month"], r["up_sent"]) for r in one_day] == [("2026-12", 1)]
    r = await client.get(
        "/v1/reports/referrals",
        params={"from": "2026-12-01", "to": "2027-01-01", "group_by": "month"},
        headers={**auth("demo council ZHENGHE"), "Accept": "text/csv"},
    )
    table = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [(x["month"], x["up_sent"]) for x in table] == [("2026-12", "2")]


async def test_tier_listing_and_green_channel_report_use_local_days(api, client, auth) -> None:
    when = "2026-11-30T17:00:00Z"
    with clock_at(at(when)):
        await api.set_beds("HZ-FPH", {"03.03": (9, 1)}, as_of=at(when))
    r = await _refer(api, when, clinic="HZ-THC-XB", **STROKE)
    assert r.status_code == 201, r.text
    ref = r.json()
    insurer = auth("demo insurer")

    async def tiers(first: str, end: str) -> list[str]:
        params = {"from": first, "to": end}
        listing = await client.get("/v1/reports/tiers", params=params, headers=insurer)
        assert listing.status_code == 200, listing.text
        return [x["referral_id"] for x in listing.json()]

    assert ref["id"] in await tiers("2026-12-01", "2026-12-02")
    assert ref["id"] not in await tiers("2026-11-30", "2026-12-01")
    consortium = ref["consortium_id"]
    r = await client.get(
        "/v1/reports/green-channel",
        params={"from": "2026-12-01", "to": "2027-01-01", "consortium": consortium},
        headers=auth("demo admin"),
    )
    assert r.status_code == 200, r.text
    assert [(x["month"], x["referrals"]) for x in r.json()] == [("2026-12", 1)]
    r = await client.get(
        "/v1/reports/green-channel",
        params={"from": "2026-11-01", "to": "2026-12-01", "consortium": consortium},
        headers=auth("demo admin"),
    )
    assert r.json() == []


NAIVE = "2026-11-23T09:15:00"  # not the example the message gives, so an echo would show
DATE_ONLY = "2026-11-23"
OUT_OF_RANGE = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:00:00-05:00")
BAD_INSTANTS = (NAIVE, DATE_ONLY, "2026-11-23T09:15", *OUT_OF_RANGE)


def _refused(r: httpx.Response, loc: list[str], value: str) -> None:
    assert r.status_code == 422, (loc, value, r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert [e["loc"] for e in body["errors"]] == [loc], body
    assert value not in r.text


async def test_every_timestamp_input_needs_an_offset(api, client, auth) -> None:
    ids = await api.ids()
    admin = auth("demo admin")
    before = (await client.get(f"/v1/institutions/{ids['ZH-CH']}/capacity", headers=admin)).json()
    stroke = (
        await _refer(
            api,
            "2026-11-21T10:00:00Z",
            clinic="HZ-THC-XB",
            **STROKE,
        )
    ).json()
    plain = (await _refer(api, "2026-11-21T10:00:00Z")).json()
    hospital = auth("demo hospital HZ-FPH")
    for value in BAD_INSTANTS:
        census = {"as_of": value, "beds": [{"specialty_code": "03", "total": 9, "occupied": 0}]}
        r = await client.put(
            f"/v1/institutions/{ids['ZH-CH']}/capacity", json=census, headers=admin
        )
        _refused(r, ["body", "as_of"], value)
        r = await client.post(
            f"/v1/referrals/{stroke['id']}/milestones",
            json={"milestone": "door", "at": value},
            headers=hospital,
        )
        _refused(r, ["body", "at"], value)
        r = await api.act(admin, plain, "accept", {"appointment_at": value}, expect=None)
        _refused(r, ["body", "appointment_at"], value)
        for name in ("created_from", "created_to"):
            r = await client.get("/v1/referrals", params={name: value}, headers=admin)
            _refused(r, ["query", name], value)
    r = await client.get("/v1/referrals", params={"created_from": NAIVE}, headers=admin)
    assert "needs a UTC offset, e.g. 2026-11-22T07:30:00+08:00" in r.json()["errors"][0]["msg"]
    after = (await client.get(f"/v1/institutions/{ids['ZH-CH']}/capacity", headers=admin)).json()
    assert after == before  # nothing was stored
    # with an offset, any offset: the same instant
    listed = await client.get(
        "/v1/referrals",
        params={"created_from": "2026-11-21T18:00:00+08:00", "created_to": "2026-11-21T10:00:01Z"},
        headers=admin,
    )
    assert listed.status_code == 200, listed.text
    assert {x["id"] for x in listed.json()["items"]} == {stroke["id"], plain["id"]}
