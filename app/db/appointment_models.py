"""Outpatient sessions (half-day clinics, with an optional doctor or room) pushed by the
hospital's HIS, and the appointments that accepting an outpatient or examination referral books
in them.

Every change here needs an Alembic revision in migrations/ (0039 created these tables).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UTCDateTime, new_id, utcnow


class OutpatientSession(Base):
    __tablename__ = "outpatient_session"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    institution_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("institution.id", ondelete="CASCADE")
    )
    his_session_id: Mapped[str] = mapped_column(String(64))  # the HIS's own id of the session
    specialty_code: Mapped[str] = mapped_column(String(8), ForeignKey("specialty.code"))
    day: Mapped[date] = mapped_column(Date)  # the consortium's local day
    period: Mapped[str] = mapped_column(String(12))  # morning | afternoon | evening
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    doctor: Mapped[str | None] = mapped_column(String(100))
    room: Mapped[str | None] = mapped_column(String(50))
    total: Mapped[int] = mapped_column(Integer)  # places offered to referrals
    occupied: Mapped[int] = mapped_column(Integer, default=0)  # used otherwise (the census)
    booked: Mapped[int] = mapped_column(Integer, default=0)  # appointments booked here
    next_number: Mapped[int] = mapped_column(Integer, default=0)  # the last number handed out
    as_of: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("institution_id", "his_session_id", name="uq_outpatient_session_his"),
        Index("ix_outpatient_session_day", "institution_id", "specialty_code", "day"),
        CheckConstraint("total >= 0 AND occupied >= 0 AND booked >= 0", name="non_negative"),
    )


class Appointment(Base):
    """A referral's appointment: its session, number and time; booked, then attended,
    cancelled (moved or released) or a no-show."""

    __tablename__ = "appointment"

    referral_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("referral.id", ondelete="CASCADE"), primary_key=True
    )
    session_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("outpatient_session.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    appointment_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(12))  # booked | attended | cancelled | no_show
    booked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
