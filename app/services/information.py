"""Sent back for information: the target's question and the source's answer, kept in the
referral's sealed data (they are clinical text), with the answer time from the service levels."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.config import Settings
from app.db.models import Referral
from app.services import service_levels
from app.services.crypto import PatientDataProtector


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def ask(
    protector: PatientDataProtector,
    settings: Settings,
    row: Referral,
    question: str,
    now: datetime,
) -> None:
    """Record the question; the source has until ``respond_by`` to answer (the place held)."""
    sealed = protector.open(row.sensitive, associated=row.id)
    asked: list[dict[str, Any]] = list(sealed.get("information_requests") or [])
    asked.append({"asked_at": _iso(now), "question": question})
    sealed["information_requests"] = asked
    row.sensitive = protector.seal(sealed, associated=row.id)
    row.respond_by = now + service_levels.information_within(
        row.urgency, settings, green_channel=row.pathway_code is not None
    )


def amend(
    protector: PatientDataProtector,
    settings: Settings,
    row: Referral,
    *,
    answer: str,
    clinical_summary: str | None,
    tests_done: list[dict[str, Any]] | None,
    now: datetime,
) -> None:
    """Record the answer (and the amended clinical text); the target answers again within its
    service-level time."""
    sealed = protector.open(row.sensitive, associated=row.id)
    asked: list[dict[str, Any]] = list(sealed.get("information_requests") or [])
    if asked and asked[-1].get("answer") is None:
        asked[-1] = {**asked[-1], "answered_at": _iso(now), "answer": answer}
    sealed["information_requests"] = asked
    if clinical_summary is not None:
        sealed["clinical_summary"] = clinical_summary
    if tests_done is not None:
        sealed["tests_done"] = tests_done
    row.sensitive = protector.seal(sealed, associated=row.id)
    row.respond_by = now + service_levels.respond_within(
        row.urgency, settings, green_channel=row.pathway_code is not None
    )
