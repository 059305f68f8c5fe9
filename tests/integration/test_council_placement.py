"""Council-directed placement (daily workflows #10, 003's "unified deployment of the bed
resources"): the council places a waitlisted or pending referral at a named member: held when
it has a free place, there all the same when full (flagged council_directed); recorded with who
and why; a member that does not offer the care is refused, naming the field."""

from __future__ import annotations

from sqlalchemy import select

from app.db.models import BedCapacity

CLINIC = "demo clinic ZH-THC-TS"
COUNCIL = "demo council ZHENGHE"


async def _held(app, ids: dict[str, str], code: str) -> int:
    async with app.state.database.unit_of_work(read_only=True) as session:
        held = await session.scalar(
            select(BedCapacity.held).where(
                BedCapacity.institution_id == ids[code], BedCapacity.specialty_code == "03"
            )
        )
    return int(held or 0)


async def test_the_council_places_where_it_decides(api, client, auth, app) -> None:
    ids = await api.ids()
    await api.set_beds("ZH-CH", {"03": (40, 1)})
    await api.set_beds("ZH-TCM", {"03": (10, 10)})  # full
    ref = (await api.create(CLINIC)).json()
    assert ref["target_institution_id"] == ids["ZH-CH"] and await _held(app, ids, "ZH-CH") == 1
    body = {"institution_id": ids["ZH-TCM"], "reason_code": "bed_deployment"}
    # only the council of the consortium (or an admin) places
    await api.act(CLINIC, ref, "place", body, expect=403)
    await api.act("demo hospital ZH-CH", ref, "place", body, expect=403)
    # a member that does not offer the care is refused, naming the field; nothing changes
    refused = await api.act(
        COUNCIL, ref, "place", {**body, "institution_id": ids["ZH-THC-LY"]}, expect=422
    )
    assert refused.json()["errors"][0]["loc"] == ["body", "institution_id"]
    placed = (await api.act(COUNCIL, ref, "place", body)).json()
    now = (await api.get(CLINIC, ref)).json()
    assert now["status"] == "pending" and now["target_institution_id"] == ids["ZH-TCM"]
    assert now["council_directed"] is True and now["hold"] is None  # full: there all the same
    assert now["overflow"] is False  # overflow is the green channel's
    assert now["routing"]["target"]["rule"] == "council_directed"
    assert await _held(app, ids, "ZH-CH") == 0  # the former place was given back
    assert placed["version"] > ref["version"]
    events = (await client.get(f"/v1/referrals/{ref['id']}/events", headers=auth(CLINIC))).json()
    council = next(e for e in events if e["type"] == "council_placed")
    assert council["reason_code"] == "bed_deployment"
    # the new target answers as usual
    await api.act("demo hospital ZH-TCM", now, "accept")


async def test_a_waitlisted_referral_is_placed_and_held(api, app) -> None:
    ids = await api.ids()
    for code in ("ZH-CH", "ZH-TCM", "ZH-MCH", "NP-FH"):  # every member and the partner full
        await api.set_beds(code, {"03": (10, 10)}, expect=None)
    ref = (await api.create(CLINIC)).json()
    assert ref["status"] == "waitlisted", ref["routing"]["explanation"]
    await api.set_beds("ZH-TCM", {"03": (10, 9)})
    placed = await api.act(
        "demo admin",
        (await api.get(CLINIC, ref)).json(),
        "place",
        {"institution_id": ids["ZH-TCM"], "reason_code": "waiting_too_long"},
    )
    body = placed.json()
    assert body["status"] == "pending" and body["council_directed"] is True
    assert await _held(app, ids, "ZH-TCM") == 1
