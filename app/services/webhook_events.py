"""The outbox: every referral change adds one webhook event row in its own transaction
(through ``app.services.events.record``); the relay (``app.services.relay``) fans the rows out
to the matching subscriptions and delivers them."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import new_id
from app.db.models import Referral
from app.db.repositories import webhooks as repo
from app.db.webhook_models import WebhookEvent


class WebhookEventType(StrEnum):
    """The event types a subscription can ask for."""

    CREATED = "referral.created"
    ROUTED = "referral.routed"
    ACCEPTED = "referral.accepted"
    REJECTED = "referral.rejected"
    REROUTED = "referral.rerouted"
    EXPIRED = "referral.expired"
    WAITLISTED = "referral.waitlisted"
    ARRIVED = "referral.arrived"
    ADMITTED = "referral.admitted"
    SEEN = "referral.seen"
    COMPLETED = "referral.completed"
    CANCELLED = "referral.cancelled"
    NO_SHOW = "referral.no_show"
    MILESTONE = "referral.milestone"
    FOLLOW_UP_DUE = "referral.follow_up_due"
    NEEDS_INFORMATION = "referral.needs_information"
    AMENDED = "referral.amended"
    FORWARDED = "referral.forwarded"
    COUNCIL_PLACED = "referral.council_placed"
    OUTCOME_SENT = "referral.outcome_sent"
    PATIENT_NOTICE = "referral.patient_notice"
    DOCUMENT_ATTACHED = "referral.document_attached"
    DOCUMENT_WITHDRAWN = "referral.document_withdrawn"
    BOOKED = "referral.booked"  # an appointment booked in a session, or moved
    APPOINTMENT_CANCELLED = "referral.appointment_cancelled"
    REPORTED = "referral.reported"  # a consult or remote read answered
    CONVERTED = "referral.converted"  # ... and turned into a transfer


# internal event types (referral_event.type) whose public name is not "referral.<type>"
_PUBLIC_NAMES = {"target_notified": WebhookEventType.MILESTONE.value}


def public_type(internal: str) -> str:
    """The webhook type of an internal event type: ``accepted`` → ``referral.accepted``."""
    return _PUBLIC_NAMES.get(internal, f"referral.{internal}")


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def enqueue(
    session: AsyncSession,
    row: Referral,
    event_type: str,
    at: datetime,
    *,
    previous_target: str | None = None,
) -> None:
    """Queue the event for the institutions concerned, in the caller's transaction.

    Recipients: the source, the current target and, on a re-route, the previous target.
    The payload is thin on purpose (no patient data): receivers fetch details with their key.
    """
    candidates = (row.source_institution_id, row.target_institution_id, previous_target)
    recipients = list(dict.fromkeys(i for i in candidates if i))
    event_id = new_id()
    type_ = public_type(event_type)
    payload: dict[str, Any] = {
        "id": event_id,
        "type": type_,
        "timestamp": _iso(at),
        "data": {"referral_id": row.id, "number": row.number, "status": row.status},
    }
    repo.add_event(
        session,
        WebhookEvent(
            id=event_id,
            referral_id=row.id,
            type=type_,
            payload=payload,
            recipients=recipients,
            occurred_at=at,
        ),
    )


# --- secrets and signatures --------------------------------------------------------------
