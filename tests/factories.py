"""Request bodies for tests: valid by default, with fresh resident ID numbers."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
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


def census(beds: dict[str, tuple[int, int]], as_of: datetime | None = None) -> dict[str, Any]:
    return {
        "as_of": (as_of or datetime.now(UTC)).isoformat(),
        "beds": [{"specialty_code": c, "total": t, "occupied": o} for c, (t, o) in beds.items()],
    }
