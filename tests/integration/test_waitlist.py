"""Waitlist placement by what was freed (review item 11): a freed bed goes to the waitlisted
referral it fits, however many older referrals of other specialties wait, and a new referral
never takes a place that a waitlisted one fits."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from tests.driver import ApiDriver

CLINIC = "demo clinic ZH-THC-TS"
HOSPITALS = ("ZH-CH", "ZH-TCM", "ZH-MCH", "NP-FH")  # every member and the partner with beds


async def _status(api: ApiDriver, referral: dict[str, Any]) -> tuple[str, str | None]:
    body = (await api.get("demo admin", referral, expect=None)).json()
    return body["status"], body["target_institution_id"]


async def test_item11_freed_beds_go_to_the_waitlisted_referrals_they_fit(
    api, client, auth, app
) -> None:
    ids = await api.ids()
    for code in HOSPITALS:
        await api.set_beds(code, {"03": (2, 2), "05": (2, 2)})
    # older, other specialty
    others = [(await api.create(CLINIC, specialty_code="03")).json() for _ in range(21)]
    wanted = [(await api.create(CLINIC, specialty_code="05")).json() for _ in range(2)]
    assert {(await _status(api, r))[0] for r in others + wanted} == {"waitlisted"}

    # two beds of 05 become free at the county hospital: both 05 referrals are placed there
    await api.set_beds("ZH-CH", {"03": (2, 2), "05": (4, 2)})
    for referral in wanted:
        assert await _status(api, referral) == ("pending", ids["ZH-CH"])
    assert {(await _status(api, r))[0] for r in others} == {"waitlisted"}

    # a third 05 referral waits; a bed appears without the waitlist being retried (as when
    # a census's retry skipped the referral row another transaction had locked): the next
    # new 05 referral does not take it, the waitlisted one does
    waiting = (await api.create(CLINIC, specialty_code="05")).json()
    assert (await _status(api, waiting))[0] == "waitlisted"
    async with app.state.database.unit_of_work() as session:
        await session.execute(
            text(
                "UPDATE bed_capacity SET total = total + 1 "
                "WHERE institution_id = :i AND specialty_code = '05'"
            ),
            {"i": ids["ZH-CH"]},
        )
    newer = (await api.create(CLINIC, specialty_code="05")).json()
    assert newer["status"] == "waitlisted", newer["status"]
    assert await _status(api, waiting) == ("pending", ids["ZH-CH"])
    cap = await client.get(f"/v1/institutions/{ids['ZH-CH']}/capacity", headers=auth("demo admin"))
    beds = next(i for i in cap.json()["items"] if i["specialty_code"] == "05")
    assert (beds["total"], beds["held"], beds["free"]) == (5, 3, 0), beds


async def test_item11_a_more_urgent_new_referral_is_not_held_behind_the_waitlist(
    api, client, auth, app
) -> None:
    """The waitlist goes most urgent first; a new emergency is not behind urgent ones."""
    ids = await api.ids()
    for code in HOSPITALS:
        await api.set_beds(code, {"05": (1, 1)})
    waiting = (await api.create(CLINIC, specialty_code="05")).json()
    async with app.state.database.unit_of_work() as session:
        await session.execute(
            text(
                "UPDATE bed_capacity SET total = total + 1 "
                "WHERE institution_id = :i AND specialty_code = '05'"
            ),
            {"i": ids["ZH-CH"]},
        )
    r = await api.create(CLINIC, specialty_code="05", urgency="emergency", expect=None)
    assert r.status_code == 201 and r.json()["status"] == "pending", r.text
    assert (await _status(api, waiting))[0] == "waitlisted"
