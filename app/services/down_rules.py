"""Down-referral rules: the stability attestation a specialty needs, and the long
prescriptions the chronic-disease catalogue allows (both data in ``app/data``)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.api.schemas.referrals import Medication, Stability
from app.domain.errors import InvalidInput
from app.domain.icd10 import DiagnosisCode, matches_prefix

DATA = Path(__file__).resolve().parent.parent / "data"


@lru_cache
def stability_criteria() -> dict[str, list[str]]:
    data = json.loads((DATA / "stability_criteria.json").read_text(encoding="utf-8"))
    return {str(k): list(v) for k, v in data["criteria"].items()}


@lru_cache
def chronic_catalogue() -> tuple[int, tuple[str, ...]]:
    data = json.loads((DATA / "chronic_diseases.json").read_text(encoding="utf-8"))
    return int(data["max_days"]), tuple(d["icd10_prefix"] for d in data["diseases"])


def required_criteria(specialty: str) -> list[str]:
    table = stability_criteria()
    parts = specialty.split(".")
    for i in range(len(parts), 0, -1):
        code = ".".join(parts[:i])
        if code in table:
            return table[code]
    return table["default"]


def check_stability(specialty: str, stability: Stability | None) -> None:
    """A down-referral needs the attestation; the missing items are named."""
    errors = []
    for flag in ("diagnosis_confirmed", "condition_stable"):
        if stability is None or getattr(stability, flag) is not True:
            errors.append({"loc": ["body", "stability", flag], "msg": "must be attested (true)"})
    checked = stability.criteria if stability else {}
    for name in required_criteria(specialty):
        if checked.get(name) is not True:
            errors.append(
                {"loc": ["body", "stability", "criteria", name], "msg": "criterion not checked"}
            )
    if errors:
        raise InvalidInput("The stability attestation is incomplete.", errors)


def medication_list(code: DiagnosisCode, medications: list[Medication]) -> list[dict[str, Any]]:
    """Long prescriptions only for diseases in the consortium's chronic-disease catalogue
    (its prefixes matched on the dagger code's category part, case-sensitive)."""
    max_days, prefixes = chronic_catalogue()
    chronic = any(matches_prefix(code, p) for p in prefixes)
    out, errors = [], []
    for i, medication in enumerate(medications):
        med = medication.model_dump()
        days = int(med.get("days") or 0)
        long_rx = days > 30
        if long_rx and not chronic:
            errors.append(
                {
                    "loc": ["body", "medications", i, "days"],
                    "msg": "over 30 days needs a disease in the chronic-disease catalogue",
                }
            )
        if days > max_days:
            errors.append(
                {
                    "loc": ["body", "medications", i, "days"],
                    "msg": f"longer than the catalogue's {max_days} days",
                }
            )
        out.append({**med, "long_prescription": long_rx})
    if errors:
        raise InvalidInput("The medication list has prescriptions the rules do not allow.", errors)
    return out
