"""ORM models. Every change here needs an Alembic revision in migrations/."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db.base import Base, UTCDateTime, enum_values, new_id, utcnow
from app.domain.enums import (
    Centre,
    ConsortiumKind,
    InstitutionLevel,
    InstitutionType,
    Role,
)


def _enum(cls: type[StrEnum], name: str) -> Enum:
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=enum_values,
        validate_strings=True,
    )


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Specialty(Base):
    __tablename__ = "specialty"

    code: Mapped[str] = mapped_column(String(8), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))
    parent_code: Mapped[str | None] = mapped_column(
        String(8), ForeignKey("specialty.code"), index=True
    )


class Consortium(TimestampMixin, Base):
    __tablename__ = "consortium"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[ConsortiumKind] = mapped_column(_enum(ConsortiumKind, "consortium_kind"))
    close_knit: Mapped[bool] = mapped_column(Boolean, default=True)
    region_code: Mapped[str | None] = mapped_column(String(12))
    referral_prefix: Mapped[str] = mapped_column(String(8), unique=True)
    notes: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class Institution(TimestampMixin, Base):
    __tablename__ = "institution"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    level: Mapped[InstitutionLevel] = mapped_column(_enum(InstitutionLevel, "institution_level"))
    type: Mapped[InstitutionType] = mapped_column(_enum(InstitutionType, "institution_type"))
    region_code: Mapped[str | None] = mapped_column(String(12))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    location_approximate: Mapped[bool] = mapped_column(Boolean, default=False)
    consortium_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("consortium.id"), index=True
    )
    is_lead: Mapped[bool] = mapped_column(Boolean, default=False)
    contact_name: Mapped[str | None] = mapped_column(String(100))
    contact_phone: Mapped[str | None] = mapped_column(String(40))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    generated_name: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)

    specialty_links: Mapped[list[InstitutionSpecialty]] = relationship(
        cascade="all, delete-orphan", lazy="raise"
    )
    centre_links: Mapped[list[InstitutionCentre]] = relationship(
        cascade="all, delete-orphan", lazy="raise"
    )

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012
    __table_args__ = (
        Index(
            "uq_institution_one_lead_per_consortium",
            "consortium_id",
            unique=True,
            sqlite_where=text("is_lead"),
            postgresql_where=text("is_lead"),
        ),
        Index("ix_institution_level_name", "level", "name"),
    )


class ConsortiumPartner(Base):
    """An out-of-consortium upstream partner (e.g. a municipal tertiary hospital)."""

    __tablename__ = "consortium_partner"

    consortium_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("consortium.id", ondelete="CASCADE"), primary_key=True
    )
    institution_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("institution.id", ondelete="CASCADE"), primary_key=True
    )


class InstitutionSpecialty(Base):
    __tablename__ = "institution_specialty"

    institution_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("institution.id", ondelete="CASCADE"), primary_key=True
    )
    specialty_code: Mapped[str] = mapped_column(
        String(8), ForeignKey("specialty.code"), primary_key=True, index=True
    )


class InstitutionCentre(Base):
    __tablename__ = "institution_centre"

    institution_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("institution.id", ondelete="CASCADE"), primary_key=True
    )
    centre: Mapped[Centre] = mapped_column(_enum(Centre, "centre"), primary_key=True)


class ApiKey(Base):
    __tablename__ = "api_key"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    institution_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("institution.id"), index=True
    )
    consortium_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("consortium.id"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
