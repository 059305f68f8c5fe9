from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update

from app.db.models import BedCapacity, Referral, ReferralEvent
from app.db.session import Database
from app.services import placement
from tests.factories import census, referral_body

PROBLEM = "application/problem+json"


async def _walk(api, client, auth, clinic: str, lead: str, others: list[str], partner: str) -> None:
    """Lead while it has beds, then the next member, then the partner, then waitlisted."""
    h = auth(f"demo clinic {clinic}")
    ids = await api.ids()
    await api.set_beds(lead, {"03": (10, 8)})  # 2 free
    for other in others:
        await api.set_beds(other, {"03": (10, 9)})  # 1 free each
    await api.set_beds(partner, {"03": (10, 9)})

    preview = await client.post(
        "/v1/routing/preview",
        json={"specialty_code": "03", "care_type": "inpatient"},
        headers=h,
    )
    assert preview.status_code == 200, preview.text
    assert preview.json()["target"]["code"] == lead
    assert preview.json()["target"]["rule"] in {"lead_hospital", "consortium_member"}

    targets = []
    for _ in range(2 + len(others) + 2):
        r = await api.create(h, expect=None)
        assert r.status_code == 201, r.text
        body = r.json()
        targets.append(
            (
                body["status"],
                body["routing"]["target"]["code"] if body["routing"]["target"] else None,
                body["out_of_consortium"],
            )
        )
        assert r.headers["location"] == f"/v1/referrals/{body['id']}"
        assert r.headers["etag"]
        assert body["routing"]["explanation"]
    expected = [("pending", lead, False)] * 2
    expected += [("pending", o, False) for o in others]
    expected += [("pending", partner, True), ("waitlisted", None, False)]
    assert sorted(targets[2 : 2 + len(others)]) == sorted(expected[2 : 2 + len(others)])
    assert targets[:2] == expected[:2]
    assert targets[-2:] == expected[-2:]

    # the waitlisted decision says why each member was left out
    last = r.json()["routing"]
    reasons = {x["code"]: x["reason"] for x in last["excluded"]}
    assert reasons[lead] == "no_free_capacity"
    assert reasons[clinic] == "is_source"
    cap = (await client.get(f"/v1/institutions/{ids[lead]}/capacity", headers=h)).json()
    beds = next(i for i in cap["items"] if i["specialty_code"] == "03")
    assert (beds["held"], beds["free"]) == (2, 0)


async def test_zhenghe_township_walks_lead_member_partner_waitlist(api, client, auth) -> None:
    await _walk(api, client, auth, "ZH-THC-TS", "ZH-CH", ["ZH-TCM"], "NP-FH")


async def test_huangzhong_first_consortium_walk(api, client, auth) -> None:
    await _walk(api, client, auth, "HZ-THC-XB", "HZ-FPH", [], "QH-PPH")


async def test_preview_changes_nothing(api, client, auth) -> None:
    h = auth("demo clinic ZH-THC-TS")
    ids = await api.ids()
    before = (await client.get(f"/v1/institutions/{ids['ZH-CH']}/capacity", headers=h)).json()
    for _ in range(3):
        r = await client.post(
            "/v1/routing/preview",
            json={"specialty_code": "03", "care_type": "inpatient"},
            headers=h,
        )
        assert r.status_code == 200
    after = (await client.get(f"/v1/institutions/{ids['ZH-CH']}/capacity", headers=h)).json()
    assert before == after


async def test_idempotent_replay_and_conflicts(api, client, auth) -> None:
    h = auth("demo clinic ZH-THC-TS")
    body = referral_body()
    first = await api.create(h, body, key="k-1", expect=None)
    assert first.status_code == 201
    again = await api.create(h, body, key="k-1", expect=None)
    assert again.status_code == 201
    assert again.content == first.content
    assert again.headers["etag"] == first.headers["etag"]
    other = await api.create(h, referral_body(), key="k-1", expect=None)
    assert other.status_code == 422
    assert other.json()["type"].endswith("/idempotency-key-reused")
    # the same key from another clinic is another key (its referral of the same patient for the
    # same specialty, beside the live first one: sent on purpose)
    elsewhere = await api.create(
        "demo clinic ZH-THC-LY",
        {**body, "duplicate_reason": "second_opinion"},
        key="k-1",
        expect=None,
    )
    assert elsewhere.status_code == 201
    assert elsewhere.json()["id"] != first.json()["id"]


async def test_bad_inputs_write_nothing(api, client, auth) -> None:
    h = auth("demo clinic ZH-THC-TS")
    ids = await api.ids()
    cap_before = (await client.get(f"/v1/institutions/{ids['ZH-CH']}/capacity", headers=h)).json()
    good = referral_body()
    bad_id = {**good, "patient": {**good["patient"], "resident_id": "11010519491231002Y"}}
    cases: list[tuple[dict[str, Any], list[str]]] = [
        (bad_id, ["body", "patient", "resident_id"]),
        ({**good, "specialty_code": "99"}, ["body", "specialty_code"]),
        ({**good, "diagnosis": {"icd10": "not-a-code"}}, ["body", "diagnosis", "icd10"]),
        ({**good, "status": "accepted"}, ["body", "status"]),
        ({**good, "care_type": "outpatient"}, ["body", "wanted_day"]),
    ]
    for payload, loc in cases:
        r = await api.create(h, payload, expect=None)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == PROBLEM
        assert any(e["loc"][: len(loc)] == loc for e in r.json()["errors"]), r.json()
        assert "11010519491231002Y" not in r.text
    r = await client.post("/v1/referrals", json=good, headers=h)  # no Idempotency-Key
    assert r.status_code == 422
    assert any("idempotency-key" in [str(p).lower() for p in e["loc"]] for e in r.json()["errors"])
    cap_after = (await client.get(f"/v1/institutions/{ids['ZH-CH']}/capacity", headers=h)).json()
    assert cap_before == cap_after
    # a rejected attempt does not burn the key: the same key works with a good body
    r = await api.create(h, good, key="retry-after-422", expect=None)
    r2 = await api.create(h, {**good, "specialty_code": "99"}, key="retry-after-422b", expect=None)
    assert r.status_code == 201 and r2.status_code == 422


async def test_visibility_and_masking(api, client, auth) -> None:
    h = auth("demo clinic ZH-THC-TS")
    created = (await api.create(h, expect=None)).json()
    rid = created["patient"]["resident_id"]
    assert len(rid) == 18 and "*" not in rid  # the source sees it in full
    path = f"/v1/referrals/{created['id']}"
    target = next(k for k in ("demo hospital ZH-CH", "demo hospital ZH-TCM"))
    assert (await client.get(path, headers=auth(target))).status_code == 200
    council = await client.get(path, headers=auth("demo council ZHENGHE"))
    assert council.status_code == 200
    assert "*" in council.json()["patient"]["resident_id"]
    for outsider in ("demo clinic ZH-THC-LY", "demo council HUANGZHONG-1", "demo insurer"):
        r = await client.get(path, headers=auth(outsider))
        assert r.status_code == 404
        missing = await client.get("/v1/referrals/does-not-exist", headers=auth(outsider))
        assert r.json()["detail"] == missing.json()["detail"]


async def test_census_keeps_holds_and_reports_overflow(api, client, auth) -> None:
    h = auth("demo clinic ZH-THC-TS")
    ids = await api.ids()
    await api.set_beds("ZH-CH", {"03": (5, 3)})
    for _ in range(2):
        assert (await api.create(h, expect=None)).status_code == 201
    hospital = auth("demo hospital ZH-CH")
    r = await client.put(
        f"/v1/institutions/{ids['ZH-CH']}/capacity", json=census({"03": (5, 5)}), headers=hospital
    )
    assert r.status_code == 200, r.text
    item = next(i for i in r.json()["items"] if i["specialty_code"] == "03")
    assert (item["held"], item["free"], item["overflow"]) == (2, 0, 2)
    # another hospital may not report this one's census
    r = await client.put(
        f"/v1/institutions/{ids['ZH-CH']}/capacity",
        json=census({"03": (5, 1)}),
        headers=auth("demo hospital ZH-TCM"),
    )
    assert r.status_code == 403
    # an older census than the stored one is refused
    from datetime import UTC, datetime, timedelta

    old = census({"03": (5, 1)}, as_of=datetime.now(UTC) - timedelta(hours=1))
    r = await client.put(f"/v1/institutions/{ids['ZH-CH']}/capacity", json=old, headers=hospital)
    assert r.status_code == 409


async def test_a_hold_lost_to_another_request_routes_again(
    api, backend, client, auth, app, monkeypatch
) -> None:
    """The hold runs last, just before COMMIT. When another transaction takes the last bed
    between the routing read and the hold, the create rolls back to its savepoint and routes
    again: one referral, held at the next member, nothing left over from the lost attempt."""
    if backend != "postgresql":
        pytest.skip("needs a second writer during the request; SQLite has one writer at a time")
    ids = await api.ids()
    await api.set_beds("ZH-CH", {"03": (4, 3)})  # the last bed
    await api.set_beds("ZH-TCM", {"03": (4, 0)})
    database: Database = app.state.database
    original = placement.plan
    raced = []

    def route_then_lose_the_bed(*args: Any, **kwargs: Any) -> Any:
        placed, hold = original(*args, **kwargs)
        if raced or hold is None:
            return placed, hold
        raced.append(placed.target.code if placed.target else None)

        async def lose_the_bed_then_hold() -> bool:
            # another transaction takes ZH-CH's last bed and commits before the hold
            async with database.unit_of_work() as other:
                await other.execute(
                    update(BedCapacity)
                    .where(
                        BedCapacity.institution_id == ids["ZH-CH"],
                        BedCapacity.specialty_code == "03",
                    )
                    .values(occupied=BedCapacity.total)
                )
            return await hold()

        return placed, lose_the_bed_then_hold

    monkeypatch.setattr(placement, "plan", route_then_lose_the_bed)
    r = await api.create("demo clinic ZH-THC-TS", expect=None)
    assert r.status_code == 201, r.text
    body = r.json()
    assert raced == ["ZH-CH"]  # the first routing chose the bed that was then taken
    assert body["target_institution_id"] == ids["ZH-TCM"]
    async with database.unit_of_work(read_only=True) as session:
        beds = {
            b.institution_id: b.held
            for b in (await session.execute(select(BedCapacity))).scalars()
            if b.specialty_code == "03"
        }
        referrals_made = (await session.execute(select(Referral))).scalars().all()
        events = (await session.execute(select(ReferralEvent))).scalars().all()
    assert (beds[ids["ZH-CH"]], beds[ids["ZH-TCM"]]) == (0, 1)
    assert [x.id for x in referrals_made] == [body["id"]]
    assert referrals_made[0].number == body["number"]
    assert [e.type for e in events].count("created") == 1
    again = await client.get(f"/v1/referrals/{body['id']}", headers=auth("demo clinic ZH-THC-TS"))
    assert again.json()["target_institution_id"] == ids["ZH-TCM"]
