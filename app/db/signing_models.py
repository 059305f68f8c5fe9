"""Family-doctor signings (家庭医生签约, 001's "1+1+1"): pushed by the community HIS, the
resident matched by the keyed HMAC of the identity document as referrals are, the identity
sealed.

Every change here needs an Alembic revision in migrations/ (0037 created this table).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UTCDateTime, new_id, utcnow


class FamilySigning(Base):
    __tablename__ = "family_signing"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    #: the signing clinic (the family doctor's): it pushes the contract
    institution_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("institution.id", ondelete="CASCADE")
    )
    contract_id: Mapped[str] = mapped_column(String(64))  # the clinic's own contract number
    resident_id_hmac: Mapped[str] = mapped_column(String(64))
    #: the signed institutions, at most one primary, one secondary and one tertiary
    institution_ids: Mapped[list[str]] = mapped_column(JSON)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date] = mapped_column(Date)
    sealed: Mapped[str] = mapped_column(Text)  # AES-GCM: the resident and the family doctor
    body_hash: Mapped[str] = mapped_column(String(64))  # an identical PUT changes nothing
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__: Any = (
        UniqueConstraint("institution_id", "contract_id", name="uq_family_signing_contract"),
        Index("ix_family_signing_resident", "resident_id_hmac", "valid_from"),
    )
