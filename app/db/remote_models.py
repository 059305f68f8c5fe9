"""Remote consultation and reading: what a member offers, its readers' capacity and the
sealed answers. The requests themselves are referrals of their kind (``referral.kind``).

Every change here needs an Alembic revision in migrations/ (0036 created these tables).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UTCDateTime, utcnow
from app.db.models import CapacityFigures


class RemoteService(Base):
    """A member reads (``remote_read``) or advises (``consult``) remotely for a specialty."""

    __tablename__ = "remote_service"

    institution_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("institution.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    specialty_code: Mapped[str] = mapped_column(
        String(8), ForeignKey("specialty.code"), primary_key=True
    )


class RemoteCapacity(CapacityFigures, Base):
    """Read slots (``read``) or consult slots (``consult``) of one member, specialty and day."""

    __tablename__ = "remote_capacity"

    institution_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("institution.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    specialty_code: Mapped[str] = mapped_column(
        String(8), ForeignKey("specialty.code"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)


class RemoteReport(Base):
    """The answer to a remote request, sealed: the conclusion, findings and advice, and the
    study by reference (accession number, DICOM study instance UID), never its images."""

    __tablename__ = "remote_report"

    referral_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("referral.id", ondelete="CASCADE"), primary_key=True
    )
    reader_institution_id: Mapped[str] = mapped_column(String(36))
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime())
    within_target: Mapped[bool] = mapped_column(Boolean)
    #: AES-GCM sealed: conclusion, findings, advice, the reader, the study's references
    sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
