"""Request bodies for tests: valid by default, with fresh resident ID numbers."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from app.domain.identity import make_resident_id

_seq = itertools.count(1)


def resident_id() -> str:
    n = next(_seq)
    return make_resident_id("350725", date(1950 + n % 50, 1 + n % 12, 1 + n % 28), n % 1000)


def referral_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "patient": {
            "name": "测试患者甲",
            "resident_id": resident_id(),
            "insurance_scheme": "urban_rural_resident",
            "insurance_number": "INS-000123456",
        },
        "diagnosis": {"icd10": "I63.9", "text": "脑梗死（测试诊断文字）"},
        "specialty_code": "03",
        "care_type": "inpatient",
        "urgency": "urgent",
        "clinical_summary": "summary",
        "referring_doctor": {"name": "王医生", "id": "doc-1"},
    }
    body.update(overrides)
    return body


#: the fields of a stroke green-channel referral: referral_body(**STROKE), api.create(who, **STROKE)
STROKE: dict[str, Any] = {"pathway": "stroke", "urgency": "emergency", "specialty_code": None}


def census(beds: dict[str, tuple[int, int]], as_of: datetime | None = None) -> dict[str, Any]:
    return {
        "as_of": (as_of or datetime.now(UTC)).isoformat(),
        "beds": [{"specialty_code": c, "total": t, "occupied": o} for c, (t, o) in beds.items()],
    }


#: the stability criteria of cardiology (03.04), all met (app/data/stability_criteria.json)
CRITERIA_0304 = {
    "vital_signs_stable_48h": True,
    "no_angina_at_rest": True,
    "heart_failure_compensated": True,
    "secondary_prevention_started": True,
}


def down_body(up: Mapping[str, Any], patient: Mapping[str, Any], **kw: Any) -> dict[str, Any]:
    """A down-referral of the cardiology patient of ``up`` (admitted), stable, to follow up."""
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
