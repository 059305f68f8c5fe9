"""The outcome back to the referrer: on completing an up-referral the receiving hospital sends
its discharge or final diagnoses (coded, checked like any diagnosis), procedures, a summary,
recommendations, follow-up advice and the documents that go with them. Sealed with the
referral's data; a down-referral of the episode can take it as its discharge summary."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.schemas.lifecycle import OutcomeIn
from app.config import Settings
from app.db.document_models import ReferralDocument
from app.db.models import Referral
from app.domain.errors import InvalidInput
from app.domain.lifecycle import Direction
from app.services import diagnoses
from app.services.crypto import PatientDataProtector


def _moved(exc: InvalidInput, prefix: list[str | int]) -> InvalidInput:
    """The same error with its fields named under ``prefix`` (the outcome's diagnosis i)."""
    errors = [{**e, "loc": [*prefix, *list(e.get("loc", []))[2:]]} for e in exc.errors]
    return InvalidInput(exc.detail, errors)


async def record(
    session: AsyncSession,
    protector: PatientDataProtector,
    settings: Settings,
    row: Referral,
    outcome: OutcomeIn,
    now: datetime,
) -> None:
    if row.direction is not Direction.UP:
        raise InvalidInput(
            "An outcome is sent back on an up-referral.",
            [{"loc": ["body", "outcome"], "msg": "only for up-referrals"}],
        )
    coded: list[dict[str, Any]] = []
    for i, given in enumerate(outcome.discharge_diagnoses):
        try:
            found = diagnoses.validate(settings, given)
        except InvalidInput as exc:
            raise _moved(exc, ["body", "outcome", "discharge_diagnoses", i]) from exc
        coded.append(
            {
                "code": found.code.code,
                "code_system": str(found.code.system),
                "name": found.name,
                "text": given.text,
            }
        )
    if outcome.document_ids:
        attached = set(
            (
                await session.execute(
                    select(ReferralDocument.id).where(
                        ReferralDocument.referral_id == row.id,
                        ReferralDocument.id.in_(outcome.document_ids),
                        ReferralDocument.withdrawn_at.is_(None),
                    )
                )
            ).scalars()
        )
        missing = [i for i, d in enumerate(outcome.document_ids) if d not in attached]
        if missing:
            raise InvalidInput(
                "The outcome names documents this referral does not have.",
                [
                    {"loc": ["body", "outcome", "document_ids", i], "msg": "not on this referral"}
                    for i in missing
                ],
            )
    sealed = protector.open(row.sensitive, associated=row.id)
    sealed["outcome"] = {
        "sent_at": now.isoformat().replace("+00:00", "Z"),
        "discharge_diagnoses": coded,
        "procedures": [p.model_dump(mode="json") for p in outcome.procedures],
        "summary": outcome.summary,
        "recommendations": outcome.recommendations,
        "follow_up_advice": outcome.follow_up_advice,
        "document_ids": list(dict.fromkeys(outcome.document_ids)),
    }
    row.sensitive = protector.seal(sealed, associated=row.id)
    row.outcome_at = now


def of(protector: PatientDataProtector, row: Referral) -> dict[str, Any] | None:
    """The outcome sent back on ``row``, if any."""
    if row.outcome_at is None:
        return None
    found: dict[str, Any] | None = protector.open(row.sensitive, associated=row.id).get("outcome")
    return found
