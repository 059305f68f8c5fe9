"""Waitlist placement by what was freed (review item 11): a freed bed goes to the waitlisted
referral it fits, however many older referrals of other specialties wait, and a new referral
never takes a place that a waitlisted one fits."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import text

from tests.factories import census, referral_body

HOSPITALS = ("ZH-CH", "ZH-TCM", "ZH-MCH", "NP-FH")  # every member and the partner with beds


async def _ids(client: httpx.AsyncClient, auth: Any) -> dict[str, str]:
    r = await client.get("/v1/institutions", params={"limit": 200}, headers=auth("demo admin"))
    return {i["code"]: i["id"] for i in r.json()["items"]}


async def _census(client, auth, institution_id: str, beds: dict[str, tuple[int, int]]) -> None:
    r = await client.put(
        f"/v1/institutions/{institution_id}/capacity",
        json=census(beds),
        headers=auth("demo admin"),
    )
    assert r.status_code == 200, r.text


async def _create(client, auth, specialty: str) -> dict[str, Any]:
    r = await client.post(
        "/v1/referrals",
        json=referral_body(specialty_code=specialty, urgency="urgent"),
        headers={**auth("demo clinic ZH-THC-TS"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _status(client, auth, referral: dict[str, Any]) -> tuple[str, str | None]:
    r = await client.get(f"/v1/referrals/{referral['id']}", headers=auth("demo admin"))
    body = r.json()
    return body["status"], body["target_institution_id"]


async def test_item11_freed_beds_go_to_the_waitlisted_referrals_they_fit(client, auth, app) -> None:
    ids = await _ids(client, auth)
    for code in HOSPITALS:
        await _census(client, auth, ids[code], {"03": (2, 2), "05": (2, 2)})
    others = [await _create(client, auth, "03") for _ in range(21)]  # older, other specialty
    wanted = [await _create(client, auth, "05") for _ in range(2)]
    assert {(await _status(client, auth, r))[0] for r in others + wanted} == {"waitlisted"}

    # two beds of 05 become free at the county hospital: both 05 referrals are placed there
    await _census(client, auth, ids["ZH-CH"], {"03": (2, 2), "05": (4, 2)})
    for referral in wanted:
        assert await _status(client, auth, referral) == ("pending", ids["ZH-CH"])
    assert {(await _status(client, auth, r))[0] for r in others} == {"waitlisted"}

    # a third 05 referral waits; a bed appears without the waitlist being retried (as when
    # a census's retry skipped the referral row another transaction had locked): the next
    # new 05 referral does not take it, the waitlisted one does
    waiting = await _create(client, auth, "05")
    assert (await _status(client, auth, waiting))[0] == "waitlisted"
    async with app.state.database.unit_of_work() as session:
        await session.execute(
            text(
                "UPDATE bed_capacity SET total = total + 1 "
                "WHERE institution_id = :i AND specialty_code = '05'"
            ),
            {"i": ids["ZH-CH"]},
        )
    newer = await _create(client, auth, "05")
    assert newer["status"] == "waitlisted", newer["status"]
    assert await _status(client, auth, waiting) == ("pending", ids["ZH-CH"])
    cap = await client.get(f"/v1/institutions/{ids['ZH-CH']}/capacity", headers=auth("demo admin"))
    beds = next(i for i in cap.json()["items"] if i["specialty_code"] == "05")
    assert (beds["total"], beds["held"], beds["free"]) == (5, 3, 0), beds


async def test_item11_a_more_urgent_new_referral_is_not_held_behind_the_waitlist(
    client, auth, app
) -> None:
    """The waitlist goes most urgent first; a new emergency is not behind urgent ones."""
    ids = await _ids(client, auth)
    for code in HOSPITALS:
        await _census(client, auth, ids[code], {"05": (1, 1)})
    waiting = await _create(client, auth, "05")
    async with app.state.database.unit_of_work() as session:
        await session.execute(
            text(
                "UPDATE bed_capacity SET total = total + 1 "
                "WHERE institution_id = :i AND specialty_code = '05'"
            ),
            {"i": ids["ZH-CH"]},
        )
    r = await client.post(
        "/v1/referrals",
        json=referral_body(specialty_code="05", urgency="emergency"),
        headers={**auth("demo clinic ZH-THC-TS"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201 and r.json()["status"] == "pending", r.text
    assert (await _status(client, auth, waiting))[0] == "waitlisted"
