from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import update

from app.db.models import FollowUp
from tests.factories import down_body, referral_body


async def _admitted_up(api, ids) -> tuple[dict[str, Any], dict[str, Any]]:
    await api.set_beds("HZ-FPH", {"03": (40, 10)}, expect=None)
    body = referral_body(specialty_code="03.04")
    body["patient"]["resident_id"] = body["patient"]["resident_id"]
    r = await api.create("demo clinic HZ-THC-SXZ", body, expect=None)
    assert r.status_code == 201, r.text
    up = r.json()
    assert up["target_institution_id"] == ids["HZ-FPH"]
    h = "demo hospital HZ-FPH"
    up = (await api.act(h, up, "accept")).json()
    up = (await api.act(h, up, "arrive")).json()
    up = (await api.act(h, up, "admit")).json()
    return up, body["patient"]


async def test_closed_loop_up_down_follow_up_escalate(api, client, auth, app) -> None:
    ids = await api.ids()
    up, patient = await _admitted_up(api, ids)
    hospital = auth("demo hospital HZ-FPH")
    r = await api.create_down(hospital, up, patient, expect=None)
    assert r.status_code == 201, r.text
    down = r.json()
    assert down["direction"] == "down" and down["status"] == "pending"
    assert down["target_institution_id"] == ids["HZ-THC-SXZ"]
    assert down["routing"]["target"]["rule"] in ("episode_origin", "only_candidate")
    assert down["episode_id"] == up["episode_id"]
    clinic = auth("demo clinic HZ-THC-SXZ")
    down = (await api.act(clinic, down, "accept")).json()
    down = (await api.act(clinic, down, "arrive")).json()
    down = (await api.act(clinic, down, "start-follow-up")).json()
    assert down["status"] == "in_follow_up"
    # two visits; the plan's first visit is done by the first one
    for day in (1, 0):
        r = await client.post(
            f"/v1/referrals/{down['id']}/follow-ups",
            json={
                "kind": "visit",
                "visit_date": str(date.today() - timedelta(days=day)),
                "findings": "BP 130/80",
                "adherence": "good",
                "next_visit": str(date.today() + timedelta(days=30)) if day == 0 else None,
            },
            headers=clinic,
        )
        assert r.status_code == 201, r.text
    guidance = await client.post(
        f"/v1/referrals/{down['id']}/follow-ups",
        json={"kind": "guidance", "guidance": "Repeat ECG if chest pain."},
        headers=hospital,
    )
    assert guidance.status_code == 201
    # make the remaining planned visit overdue
    async with app.state.database.unit_of_work() as session:
        await session.execute(
            update(FollowUp)
            .where(
                FollowUp.referral_id == down["id"],
                FollowUp.kind == "planned",
                FollowUp.done_at.is_(None),
            )
            .values(due_date=date.today() - timedelta(days=3))
        )
    todo = await client.get("/v1/follow-ups/overdue", headers=clinic)
    assert [o["referral_id"] for o in todo.json()] == [down["id"]]
    obligations = await client.get(
        "/v1/follow-ups/overdue", params={"role": "referring"}, headers=hospital
    )
    assert [o["referral_id"] for o in obligations.json()] == [down["id"]]
    listed = (await client.get(f"/v1/referrals/{down['id']}/follow-ups", headers=clinic)).json()
    assert [f["kind"] for f in listed].count("visit") == 2
    assert sum(f["overdue"] for f in listed) == 1
    # deterioration: a linked up-referral in the same episode, pre-filled
    r = await api.post(
        clinic,
        f"/v1/referrals/{down['id']}/escalate",
        {"urgency": "urgent", "clinical_summary": "chest pain again"},
        expect=None,
    )
    assert r.status_code == 201, r.text
    again = r.json()
    assert again["direction"] == "up" and again["episode_id"] == up["episode_id"]
    assert again["parent_referral_id"] == down["id"]
    assert again["patient"]["resident_id"] == patient["resident_id"]
    assert again["specialty_code"] == "03.04"
    episode = await client.get(f"/v1/episodes/{up['episode_id']}", headers=hospital)
    assert episode.status_code == 200
    chain = episode.json()["referrals"]
    assert [c["id"] for c in chain] == [up["id"], down["id"], again["id"]]
    assert [c["direction"] for c in chain] == ["up", "down", "up"]
    outsider = await client.get(
        f"/v1/episodes/{up['episode_id']}", headers=auth("demo clinic ZH-THC-TS")
    )
    assert outsider.status_code == 404


async def test_signed_family_doctor_institution_comes_first(api, client, auth) -> None:
    ids = await api.ids()
    up, patient = await _admitted_up(api, ids)
    patient = {**patient, "signed_institution_ids": [ids["HZ-THC-XB"]]}
    r = await api.create_down("demo hospital HZ-FPH", up, patient, expect=None)
    assert r.status_code == 201, r.text
    assert r.json()["target_institution_id"] == ids["HZ-THC-XB"]
    assert r.json()["routing"]["target"]["rule"] == "signed_institution"


async def test_refusals_name_what_is_wrong(api, client, auth) -> None:
    ids = await api.ids()
    up, patient = await _admitted_up(api, ids)
    h = auth("demo hospital HZ-FPH")
    missing = down_body(
        up,
        patient,
        stability={
            "diagnosis_confirmed": True,
            "condition_stable": False,
            "criteria": {"vital_signs_stable_48h": True},
        },
    )
    r = await api.create(h, missing, expect=None)
    assert r.status_code == 422
    locs = {tuple(e["loc"]) for e in r.json()["errors"]}
    assert ("body", "stability", "condition_stable") in locs
    assert ("body", "stability", "criteria", "no_angina_at_rest") in locs
    no_attestation = down_body(up, patient)
    del no_attestation["stability"]
    assert (await api.create(h, no_attestation, expect=None)).status_code == 422
    to_hospital = down_body(up, patient, target_institution_id=ids["HZ-VC-XB-01"])
    r = await api.create(h, to_hospital, expect=None)
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "target_institution_id"]
    assert "not_primary" in r.json()["errors"][0]["msg"]
    long_rx = down_body(
        up, patient, diagnosis={"icd10": "S72.0"}, medications=[{"name": "x", "days": 60}]
    )
    r = await api.create(h, long_rx, expect=None)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"][:2] == ["body", "medications"]
    # a clinic does not send down-referrals
    r = await api.create_down("demo clinic HZ-THC-SXZ", up, patient, expect=None)
    assert r.status_code == 403


async def test_down_reject_reroutes_to_next_primary(api, client, auth) -> None:
    ids = await api.ids()
    up, patient = await _admitted_up(api, ids)
    r = await api.create_down("demo hospital HZ-FPH", up, patient, expect=None)
    down = r.json()
    first = down["target_institution_id"]
    code = next(k for k, v in ids.items() if v == first)
    after = (
        await api.act(
            f"demo clinic {code}", down, "reject", {"reason_code": "no_specialist_on_duty"}
        )
    ).json()
    assert after["status"] == "pending" and after["target_institution_id"] != first
    assert after["routing"]["target"]["rule"] in ("travel_distance", "only_candidate", "tie_break")
    assert datetime.fromisoformat(after["updated_at"]) <= datetime.now(UTC)
