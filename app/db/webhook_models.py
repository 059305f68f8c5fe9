"""Webhook subscriptions, the transactional outbox and its deliveries.

Every change here needs an Alembic revision in migrations/ (0005 created these tables).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UTCDateTime, new_id, utcnow

# BIGINT identity on PostgreSQL, the rowid alias (INTEGER PRIMARY KEY) on SQLite
Sequence64 = BigInteger().with_variant(Integer(), "sqlite")


class WebhookSubscription(Base):
    """An institution's endpoint and the event types it wants; the secret is stored sealed."""

    __tablename__ = "webhook_subscription"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    institution_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("institution.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(2000))
    event_types: Mapped[list[str]] = mapped_column(JSON)
    description: Mapped[str | None] = mapped_column(String(200))
    secret_sealed: Mapped[str] = mapped_column(Text)
    previous_secret_sealed: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    secret_rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by_key_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookEvent(Base):
    """The outbox: one row per referral event, written in the transaction of the change.

    ``seq`` orders the events (per referral they are written under the referral's row lock,
    so a later event always has a larger ``seq``); ``recipients`` are the institutions
    concerned; the relay fans each row out to the matching subscriptions (``fanned_out_at``).
    """

    __tablename__ = "webhook_event"

    seq: Mapped[int] = mapped_column(Sequence64, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)  # the webhook-id
    referral_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("referral.id", ondelete="CASCADE"), index=True
    )
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    recipients: Mapped[list[str]] = mapped_column(JSON)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    fanned_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index(
            "ix_webhook_event_unfanned",
            "seq",
            sqlite_where=text("fanned_out_at IS NULL"),
            postgresql_where=text("fanned_out_at IS NULL"),
        ),
    )


class WebhookDelivery(Base):
    """One event to one subscription: pending → delivered, or dead after the give-up time."""

    __tablename__ = "webhook_delivery"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    subscription_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("webhook_subscription.id", ondelete="CASCADE")
    )
    event_seq: Mapped[int] = mapped_column(
        Sequence64, ForeignKey("webhook_event.seq", ondelete="CASCADE"), index=True
    )
    referral_id: Mapped[str] = mapped_column(String(36))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    give_up_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(64))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("subscription_id", "event_seq"),
        CheckConstraint("state IN ('pending', 'delivered', 'dead')", name="state"),
        Index("ix_webhook_delivery_due", "state", "next_attempt_at"),
        Index("ix_webhook_delivery_order", "subscription_id", "referral_id", "event_seq"),
        Index("ix_webhook_delivery_log", "subscription_id", "id"),
        Index("ix_webhook_delivery_state_log", "subscription_id", "state", "id"),
    )
