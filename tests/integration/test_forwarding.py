"""Referred onward (daily workflows #7): the target forwards the referral to a member or
partner it knows is better placed, with a reason; the named institution is routed and held
like any other (it must be eligible), the forwarding hospital is not asked again, and the
events show who forwarded it."""

from __future__ import annotations

from sqlalchemy import select

from app.db.models import BedCapacity

CLINIC = "demo clinic ZH-THC-TS"
HOSPITAL = "demo hospital ZH-CH"


async def _held(app, ids: dict[str, str]) -> dict[str, int]:
    async with app.state.database.unit_of_work(read_only=True) as session:
        rows = (await session.execute(select(BedCapacity))).scalars().all()
    by_id = {v: k for k, v in ids.items()}
    return {
        by_id[r.institution_id]: r.held
        for r in rows
        if r.specialty_code == "03" and by_id.get(r.institution_id) in ("ZH-CH", "ZH-TCM")
    }


async def test_the_target_forwards_to_a_better_placed_member(api, client, auth, app) -> None:
    ids = await api.ids()
    await api.set_beds("ZH-CH", {"03": (40, 1)})
    await api.set_beds("ZH-TCM", {"03": (40, 1)})
    ref = (await api.create(CLINIC)).json()
    assert ref["target_institution_id"] == ids["ZH-CH"]
    # the source cannot forward; an ineligible institution is refused and nothing changes
    await api.act(
        CLINIC,
        ref,
        "forward",
        {"target_institution_id": ids["ZH-TCM"], "reason_code": "other"},
        expect=403,
    )
    refused = await api.act(
        HOSPITAL,
        ref,
        "forward",
        {"target_institution_id": ids["ZH-THC-LY"], "reason_code": "better_capability"},
        expect=422,
    )
    assert refused.json()["errors"][0]["loc"] == ["body", "target_institution_id"]
    assert (await api.get(CLINIC, ref)).json()["target_institution_id"] == ids["ZH-CH"]
    assert await _held(app, ids) == {"ZH-CH": 1, "ZH-TCM": 0}
    forwarded = (
        await api.act(
            "demo hospital ZH-CH",
            ref,
            "forward",
            {"target_institution_id": ids["ZH-TCM"], "reason_code": "specialist_available"},
        )
    ).json()
    now = (await api.get(CLINIC, ref)).json()
    assert now["status"] == "pending" and now["target_institution_id"] == ids["ZH-TCM"]
    assert now["routing"]["target"]["rule"] == "forwarded_by_target"
    assert "forwarded" in now["routing"]["target"]["why"]
    assert await _held(app, ids) == {"ZH-CH": 0, "ZH-TCM": 1}
    events = (await client.get(f"/v1/referrals/{ref['id']}/events", headers=auth(CLINIC))).json()
    fwd = next(e for e in events if e["type"] == "forwarded")
    assert fwd["actor_institution_id"] == ids["ZH-CH"]
    assert fwd["reason_code"] == "specialist_available"
    rerouted = next(e for e in events if e["type"] == "rerouted")
    assert rerouted["reason_code"] == "specialist_available"
    assert rerouted["target_institution_id"] == ids["ZH-TCM"]
    # the forwarding hospital has handed the patient on: it no longer reads the referral
    assert forwarded["status"] == "pending"
    assert (
        await client.get(f"/v1/referrals/{ref['id']}", headers=auth(HOSPITAL))
    ).status_code == 404
    # and the new target accepts as usual
    await api.act("demo hospital ZH-TCM", now, "accept")
