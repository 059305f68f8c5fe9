"""One action on one referral, as its endpoint received it: what ``lifecycle.transition``
takes (no request body dicts past the route)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from app.api.schemas.lifecycle import OutcomeIn
from app.domain.lifecycle import Action


@dataclass(frozen=True, slots=True)
class TransitionCommand:
    """One action on one referral, as its endpoint received it."""

    referral_id: str
    action: Action
    if_match: str | None
    actor_user: str | None = None
    note: str | None = None
    reason_code: str | None = None  # a rejection's RejectReason
    reason_text: str | None = None
    #: an acceptance's ward, bed and appointment time (and note), as given
    acceptance: dict[str, str] | None = None
    question: str | None = None  # a request for information
    answer: str | None = None  # an amendment: the answer, and the clinical text replaced
    clinical_summary: str | None = None
    tests_done: list[dict[str, Any]] | None = None
    outcome: OutcomeIn | None = None  # completing an up-referral: the outcome back
    coordinator: dict[str, Any] | None = None  # accepting: who to call at the target
    forward_to: str | None = None  # forwarding: the member or partner the target names
    report: Any = None  # a remote request's answer (``ReportIn``)
    session_id: str | None = None  # accepting: the outpatient session to book (default: first)

    @classmethod
    def of(
        cls,
        referral_id: str,
        action: Action,
        if_match: str | None,
        actor_user: str | None,
        body: BaseModel | None,
    ) -> TransitionCommand:
        given = body.model_dump(mode="json", exclude_none=True) if body is not None else {}
        return cls(
            referral_id,
            action,
            if_match,
            actor_user,
            note=given.get("note"),
            reason_code=given.get("reason_code"),
            reason_text=given.get("reason_text"),
            acceptance=(
                ({k: v for k, v in given.items() if k not in ("coordinator", "session_id")} or None)
                if action is Action.ACCEPT
                else None
            ),
            coordinator=given.get("coordinator"),
            forward_to=given.get("target_institution_id") or given.get("institution_id"),
            question=given.get("question"),
            answer=given.get("answer"),
            clinical_summary=given.get("clinical_summary"),
            tests_done=given.get("tests_done"),
            outcome=getattr(body, "outcome", None),
            report=body if action is Action.REPORT else None,
            session_id=given.get("session_id") if action is Action.ACCEPT else None,
        )
