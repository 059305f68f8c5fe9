"""Referral filings (转院备案) with the medical-insurance platform, and each consortium's
insurance gateway.

Every change here needs an Alembic revision in migrations/ (0035 created these tables).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UTCDateTime, new_id, utcnow

FILING_STATES = (
    "pending",  # 2501 to be sent (or being retried)
    "filed",  # the platform answered with a filing number
    "cancel_pending",  # 2502 to be sent (or being retried)
    "cancelled",  # the platform confirmed the cancellation
    "superseded",  # no longer wanted before it was ever filed: nothing to cancel
    "dead",  # the gateway kept failing until the give-up time (operation says which)
    "manual",  # no gateway configured: the payload is for manual entry
)


class InsuranceGateway(Base):
    """Where a consortium's filings go: the regional insurance gateway's endpoint; its bearer
    token is sealed like webhook secrets (AES-GCM, the consortium id bound to it)."""

    __tablename__ = "insurance_gateway"

    consortium_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("consortium.id", ondelete="CASCADE"), primary_key=True
    )
    url: Mapped[str] = mapped_column(String(2000))
    token_sealed: Mapped[str | None] = mapped_column(Text)
    updated_by_key_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class InsuranceFiling(Base):
    """One filing of a referral for one target: 2501 out, the filing number back, and 2502
    when the referral no longer goes there. ``generation`` orders a referral's filings (its
    row lock is held when one is added); ``operation`` is what the relay sends next (or sent
    last): ``file`` (2501) or ``cancel`` (2502). The message is sealed (``payload_sealed``)."""

    __tablename__ = "insurance_filing"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    referral_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("referral.id", ondelete="CASCADE")
    )
    generation: Mapped[int] = mapped_column(Integer)
    consortium_id: Mapped[str] = mapped_column(String(36))
    target_institution_id: Mapped[str] = mapped_column(String(36))
    tier: Mapped[str] = mapped_column(String(48))
    state: Mapped[str] = mapped_column(String(16))
    operation: Mapped[str] = mapped_column(String(8))
    payload_sealed: Mapped[str] = mapped_column(Text)
    filing_number: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    give_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_infcode: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    filed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("referral_id", "generation"),
        CheckConstraint(
            "state IN (" + ", ".join(f"'{s}'" for s in FILING_STATES) + ")", name="state"
        ),
        CheckConstraint("operation IN ('file', 'cancel')", name="operation"),
        Index("ix_insurance_filing_due", "state", "next_attempt_at"),
    )
