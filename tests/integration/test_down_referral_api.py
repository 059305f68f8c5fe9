from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import update

from app.db.models import FollowUp
from tests.factories import census, referral_body

CRITERIA_0304 = {
    "vital_signs_stable_48h": True,
    "no_angina_at_rest": True,
    "heart_failure_compensated": True,
    "secondary_prevention_started": True,
}


async def _ids(client, auth) -> dict[str, str]:
    r = await client.get("/v1/institutions", params={"limit": 200}, headers=auth("demo admin"))
    return {i["code"]: i["id"] for i in r.json()["items"]}


async def _post(client, h, path, body) -> httpx.Response:
    return await client.post(path, json=body, headers={**h, "Idempotency-Key": uuid.uuid4().hex})


async def _act(client, h, ref: dict[str, Any], action: str, body=None) -> dict[str, Any]:
    r = await client.post(
        f"/v1/referrals/{ref['id']}/{action}",
        json=body,
        headers={**h, "If-Match": f'"{ref["id"]}.{ref["version"]}"'},
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def down_body(up: dict[str, Any], patient: dict[str, Any], **kw: Any) -> dict[str, Any]:
    today = date.today()
    body = {
        "direction": "down",
        "up_referral_id": up["id"],
        "patient": patient,
        "diagnosis": {"icd10": "I25.1", "text": "冠心病（测试）"},
        "condition_specialty_code": "03.04",
        "service_code": "02",
        "care_type": "outpatient",
        "stability": {
            "diagnosis_confirmed": True,
            "condition_stable": True,
            "criteria": CRITERIA_0304,
        },
        "discharge_summary": "PCI done, stable.",
        "follow_up_plan": [
            {"due_date": str(today + timedelta(days=14)), "purpose": "BP and lipids"},
            {"due_date": str(today + timedelta(days=28)), "purpose": "ECG"},
        ],
        "medications": [{"name": "阿司匹林", "dose": "100 mg", "frequency": "qd", "days": 84}],
    }
    body.update(kw)
    return body


async def _admitted_up(client, auth, ids) -> tuple[dict[str, Any], dict[str, Any]]:
    await client.put(
        f"/v1/institutions/{ids['HZ-FPH']}/capacity",
        json=census({"03": (40, 10)}),
        headers=auth("demo admin"),
    )
    body = referral_body(specialty_code="03.04")
    body["patient"]["resident_id"] = body["patient"]["resident_id"]
    r = await _post(client, auth("demo clinic HZ-THC-SXZ"), "/v1/referrals", body)
    assert r.status_code == 201, r.text
    up = r.json()
    assert up["target_institution_id"] == ids["HZ-FPH"]
    h = auth("demo hospital HZ-FPH")
    up = await _act(client, h, up, "accept")
    up = await _act(client, h, up, "arrive")
    up = await _act(client, h, up, "admit")
    return up, body["patient"]


async def test_closed_loop_up_down_follow_up_escalate(client, auth, app) -> None:
    ids = await _ids(client, auth)
    up, patient = await _admitted_up(client, auth, ids)
    hospital = auth("demo hospital HZ-FPH")
    r = await _post(client, hospital, "/v1/referrals", down_body(up, patient))
    assert r.status_code == 201, r.text
    down = r.json()
    assert down["direction"] == "down" and down["status"] == "pending"
    assert down["target_institution_id"] == ids["HZ-THC-SXZ"]
    assert down["routing"]["target"]["rule"] in ("episode_origin", "only_candidate")
    assert down["episode_id"] == up["episode_id"]
    clinic = auth("demo clinic HZ-THC-SXZ")
    down = await _act(client, clinic, down, "accept")
    down = await _act(client, clinic, down, "arrive")
    down = await _act(client, clinic, down, "start-follow-up")
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
    r = await _post(
        client,
        clinic,
        f"/v1/referrals/{down['id']}/escalate",
        {"urgency": "urgent", "clinical_summary": "chest pain again"},
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


async def test_signed_family_doctor_institution_comes_first(client, auth) -> None:
    ids = await _ids(client, auth)
    up, patient = await _admitted_up(client, auth, ids)
    patient = {**patient, "signed_institution_ids": [ids["HZ-THC-XB"]]}
    r = await _post(client, auth("demo hospital HZ-FPH"), "/v1/referrals", down_body(up, patient))
    assert r.status_code == 201, r.text
    assert r.json()["target_institution_id"] == ids["HZ-THC-XB"]
    assert r.json()["routing"]["target"]["rule"] == "signed_institution"


async def test_refusals_name_what_is_wrong(client, auth) -> None:
    ids = await _ids(client, auth)
    up, patient = await _admitted_up(client, auth, ids)
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
    r = await _post(client, h, "/v1/referrals", missing)
    assert r.status_code == 422
    locs = {tuple(e["loc"]) for e in r.json()["errors"]}
    assert ("body", "stability", "condition_stable") in locs
    assert ("body", "stability", "criteria", "no_angina_at_rest") in locs
    no_attestation = down_body(up, patient)
    del no_attestation["stability"]
    assert (await _post(client, h, "/v1/referrals", no_attestation)).status_code == 422
    to_hospital = down_body(up, patient, target_institution_id=ids["HZ-VC-XB-01"])
    r = await _post(client, h, "/v1/referrals", to_hospital)
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "target_institution_id"]
    assert "not_primary" in r.json()["errors"][0]["msg"]
    long_rx = down_body(
        up, patient, diagnosis={"icd10": "S72.0"}, medications=[{"name": "x", "days": 60}]
    )
    r = await _post(client, h, "/v1/referrals", long_rx)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"][:2] == ["body", "medications"]
    # a clinic does not send down-referrals
    r = await _post(client, auth("demo clinic HZ-THC-SXZ"), "/v1/referrals", down_body(up, patient))
    assert r.status_code == 403


async def test_down_reject_reroutes_to_next_primary(client, auth) -> None:
    ids = await _ids(client, auth)
    up, patient = await _admitted_up(client, auth, ids)
    r = await _post(client, auth("demo hospital HZ-FPH"), "/v1/referrals", down_body(up, patient))
    down = r.json()
    first = down["target_institution_id"]
    code = next(k for k, v in ids.items() if v == first)
    after = await _act(
        client,
        auth(f"demo clinic {code}"),
        down,
        "reject",
        {"reason_code": "no_specialist_on_duty"},
    )
    assert after["status"] == "pending" and after["target_institution_id"] != first
    assert after["routing"]["target"]["rule"] in ("travel_distance", "only_candidate", "tie_break")
    assert datetime.fromisoformat(after["updated_at"]) <= datetime.now(UTC)
