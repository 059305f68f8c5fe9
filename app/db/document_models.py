"""Documents attached to referrals: what each is (its sealed file name and title included) and,
in the database store, its sealed content.

Every change here needs an Alembic revision in migrations/ (0024 created these tables).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UTCDateTime, new_id


class ReferralDocument(Base):
    __tablename__ = "referral_document"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    referral_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("referral.id", ondelete="CASCADE")
    )
    document_type: Mapped[str] = mapped_column(String(32))
    media_type: Mapped[str] = mapped_column(String(48))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))  # of the plain content, for integrity
    # AES-GCM sealed JSON: the file name and the title (they may name the patient)
    sealed_meta: Mapped[str] = mapped_column(Text)
    uploaded_by_institution_id: Mapped[str] = mapped_column(String(36))
    uploaded_by_user: Mapped[str | None] = mapped_column(String(100))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_referral_document_referral", "referral_id", "uploaded_at"),)


class DocumentContent(Base):
    """The sealed bytes of a document, when the database is the document store."""

    __tablename__ = "document_content"

    document_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("referral_document.id", ondelete="CASCADE"), primary_key=True
    )
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
