from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from app.api.schemas.common import ResponseModel, StrictModel
from app.services.webhook_events import WebhookEventType


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class SubscriptionIn(StrictModel):
    url: Annotated[str, StringConstraints(min_length=8, max_length=2000)] = Field(
        description="The endpoint: https (http only in demo mode).",
        examples=["https://his.example.org/referral-webhooks"],
    )
    event_types: list[WebhookEventType] = Field(
        min_length=1, max_length=50, description="The event types to receive."
    )
    description: Annotated[str, StringConstraints(max_length=200)] | None = None
    institution_id: Annotated[str, StringConstraints(max_length=36)] | None = Field(
        None,
        description="For council and admin keys: the institution subscribing. "
        "Clinic and hospital keys subscribe for their own institution (omit it).",
    )


class RotateIn(StrictModel):
    overlap_seconds: int = Field(
        86_400,
        ge=0,
        le=7 * 86_400,
        description="How long the old secret keeps signing next to the new one (0 = not at all).",
    )


class SubscriptionOut(ResponseModel):
    id: str
    institution_id: str
    url: str
    event_types: list[str]
    description: str | None
    secret_rotated_at: datetime | None
    previous_secret_expires_at: datetime | None = Field(
        description="Until then deliveries carry a signature with the previous secret too."
    )
    created_at: datetime
    updated_at: datetime


class SubscriptionCreated(SubscriptionOut):
    secret: str = Field(
        description="`whsec_` + base64 of the signing key. Shown only now: store it.",
    )


class SecretOut(ResponseModel):
    id: str
    secret: str = Field(description="The new `whsec_…` secret. Shown only now: store it.")
    previous_secret_expires_at: datetime | None


class DeliveryOut(ResponseModel):
    id: str
    event_id: str = Field(description="The webhook-id header: the same on every attempt.")
    event_type: str
    referral_id: str
    state: DeliveryState
    attempts: int = Field(description="Attempts since the delivery was created or replayed.")
    last_attempt_at: datetime | None
    last_status_code: int | None = Field(description="HTTP status of the last answer, if any.")
    last_error: str | None = Field(
        description="A coarse class: http_status, timeout, refused, tls, dns, blocked, "
        "network or secret_unreadable (never addresses or exception text)."
    )
    next_attempt_at: datetime | None = Field(description="When it is tried next (pending only).")
    give_up_at: datetime = Field(description="A pending delivery still failing then is dead.")
    delivered_at: datetime | None
    dead_at: datetime | None
    created_at: datetime
    payload: dict[str, Any]


class ReplayedOut(ResponseModel):
    replayed: int = Field(description="How many dead-lettered deliveries were queued again.")
