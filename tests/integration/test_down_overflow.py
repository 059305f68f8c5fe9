"""Only a green-channel placement without a free place is overflow: a down-referral to a
primary institution that pushes no slot census holds nothing, and is not overflow."""

from __future__ import annotations

import uuid
from datetime import timedelta

from app.db.base import utcnow
from app.domain.localtime import local_date
from tests.factories import referral_body

CRITERIA = ("vital_signs_stable_48h", "treatment_plan_established", "no_acute_complication")
STABLE = {
    "diagnosis_confirmed": True,
    "condition_stable": True,
    "criteria": dict.fromkeys(CRITERIA, True),
}


async def test_a_down_referral_without_a_slot_census_is_not_overflow(client, auth) -> None:
    day = local_date(utcnow(), "Asia/Shanghai")
    body = {
        "direction": "down",
        "patient": referral_body()["patient"],
        "diagnosis": {"icd10": "I10"},
        "condition_specialty_code": "02",
        "service_code": "02",
        "care_type": "outpatient",
        "stability": STABLE,
        "discharge_summary": "Stable on treatment.",
        "follow_up_plan": [{"due_date": str(day + timedelta(days=14)), "purpose": "BP"}],
    }
    r = await client.post(
        "/v1/referrals",
        json=body,
        headers={**auth("demo hospital HZ-FPH"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["status"] == "pending" and made["target_institution_id"] is not None
    assert made["hold"] is None  # outpatient follow-up has no day, so nothing is held
    assert made["overflow"] is False
    assert made["routing"]["overflow"] is False
