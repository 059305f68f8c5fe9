"""The outcome back to the referrer (the record that travels with the patient, #3): completing
an up-referral, the receiving hospital sends coded discharge diagnoses, procedures, a summary,
recommendations, follow-up advice and documents; the referrer reads it on the referral and sees
it in its outgoing list and as an event; a down-referral of the episode takes it as its
discharge summary. A wrong code changes nothing."""

from __future__ import annotations

from typing import Any

from tests.factories import down_body, referral_body

CLINIC = "demo clinic HZ-THC-SXZ"
HOSPITAL = "demo hospital HZ-FPH"
PDF = b"%PDF-1.4\n% discharge letter\n%%EOF\n"
OUTCOME = {
    "discharge_diagnoses": [{"icd10": "I25.1", "text": "冠心病（测试）"}],
    "procedures": [{"code": "36.0601", "name": "冠状动脉药物洗脱支架置入术"}],
    "summary": "PCI 术后恢复良好（测试）",
    "recommendations": "双抗治疗 12 个月",
    "follow_up_advice": "两周后社区复查血压血脂",
}


async def _admitted(api: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    await api.set_beds("HZ-FPH", {"03": (40, 10)})
    body = referral_body(specialty_code="03.04")
    up = (await api.create(CLINIC, body)).json()
    for action in ("accept", "arrive", "admit"):
        up = (await api.act(HOSPITAL, up, action)).json()
    return up, body["patient"]


async def test_the_outcome_goes_back_and_becomes_the_discharge_summary(api, client, auth) -> None:
    up, patient = await _admitted(api)
    doc = await client.post(
        f"/v1/referrals/{up['id']}/documents",
        params={"document_type": "discharge_summary"},
        content=PDF,
        headers={**auth(HOSPITAL), "Content-Type": "application/pdf"},
    )
    assert doc.status_code == 201, doc.text
    done = (
        await api.act(
            HOSPITAL, up, "complete", {"outcome": {**OUTCOME, "document_ids": [doc.json()["id"]]}}
        )
    ).json()
    assert done["status"] == "completed"
    seen = (await api.get(CLINIC, up)).json()
    outcome = seen["outcome"]
    assert outcome["summary"] == OUTCOME["summary"]
    assert outcome["discharge_diagnoses"][0]["code"] == "I25.1"
    assert outcome["procedures"] == OUTCOME["procedures"]
    assert outcome["document_ids"] == [doc.json()["id"]]
    outgoing = await client.get("/v1/referrals", params={"box": "outgoing"}, headers=auth(CLINIC))
    item = next(i for i in outgoing.json()["items"] if i["id"] == up["id"])
    assert item["outcome_at"] is not None
    events = await client.get(f"/v1/referrals/{up['id']}/events", headers=auth(CLINIC))
    assert "outcome_sent" in [e["type"] for e in events.json()]
    assert OUTCOME["summary"] not in events.text  # clinical text stays sealed
    # the down-referral of the episode takes it as its discharge summary
    body = down_body(up, patient)
    del body["discharge_summary"]
    down = (await api.create(HOSPITAL, body)).json()
    assert down["clinical_summary"] == OUTCOME["summary"] + "\n\n" + OUTCOME["recommendations"]
    assert down["episode_id"] == up["episode_id"]


async def test_a_wrong_outcome_changes_nothing(api, client, auth) -> None:
    up, patient = await _admitted(api)
    bad_code = {**OUTCOME, "discharge_diagnoses": [{"icd10": "XX"}]}
    r = await api.act(HOSPITAL, up, "complete", {"outcome": bad_code}, expect=422)
    assert r.json()["errors"][0]["loc"][:4] == ["body", "outcome", "discharge_diagnoses", 0]
    r = await api.act(
        HOSPITAL, up, "complete", {"outcome": {**OUTCOME, "document_ids": ["nope"]}}, expect=422
    )
    assert r.json()["errors"][0]["loc"] == ["body", "outcome", "document_ids", 0]
    now = (await api.get(CLINIC, up)).json()
    assert now["status"] == "admitted" and now["outcome"] is None
    # without an outcome sent, a down-referral still needs its discharge summary
    body = down_body(up, patient)
    del body["discharge_summary"]
    r = await api.create(HOSPITAL, body, expect=422)
    assert ["body", "discharge_summary"] in [e["loc"] for e in r.json()["errors"]]
