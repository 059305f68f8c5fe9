"""ORM models. Every change here needs an Alembic revision in migrations/."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship

from app.db.base import Base, StrEnumText, UTCDateTime, enum_values, new_id, utcnow
from app.domain.enums import (
    CareType,
    Centre,
    ConsortiumKind,
    InstitutionGrade,
    InstitutionLevel,
    InstitutionType,
    InsuranceScheme,
    Role,
    SexCode,
    Urgency,
)
from app.domain.icd10 import CodeSystem
from app.domain.lifecycle import Direction, Status
from app.domain.localtime import DEFAULT_TIME_ZONE


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
    # IANA name: the consortium's days and months (numbers, slot days, reports)
    time_zone: Mapped[str] = mapped_column(
        String(64), default=DEFAULT_TIME_ZONE, server_default=text("'Asia/Shanghai'")
    )
    #: a specialty alliance's scope: the green-channel pathways (centres) and the specialty
    #: codes whose referrals run in it by default (migration 0034)
    alliance_centres: Mapped[list[str]] = mapped_column(
        JSON, default=list, server_default=text("'[]'")
    )
    alliance_specialties: Mapped[list[str]] = mapped_column(
        JSON, default=list, server_default=text("'[]'")
    )
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
    uscc: Mapped[str | None] = mapped_column(String(18))
    licence_number: Mapped[str | None] = mapped_column(String(22))
    insurance_code: Mapped[str | None] = mapped_column(String(12))
    grade: Mapped[InstitutionGrade | None] = mapped_column(
        Enum(
            InstitutionGrade,
            name="institution_grade",
            native_enum=False,
            create_constraint=False,
            length=16,
            values_callable=enum_values,
            validate_strings=True,
        )
    )
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
        # the consortium's lead unit: one hospital or several (migration 0033)
        Index(
            "ix_institution_lead_unit",
            "consortium_id",
            sqlite_where=text("is_lead"),
            postgresql_where=text("is_lead"),
        ),
        Index("ix_institution_level_name", "level", "name"),
        # routing's pre-filter: a consortium's members per level and active flag (migration 0019)
        Index("ix_institution_consortium_level_active", "consortium_id", "level", "active"),
        Index("uq_institution_uscc", "uscc", unique=True),
        Index("uq_institution_licence_number", "licence_number", unique=True),
        Index("uq_institution_insurance_code", "insurance_code", unique=True),
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


class ConsortiumMembership(TimestampMixin, Base):
    """Membership of a consortium other than the institution's own (``institution.consortium_id``,
    its county community or urban group): a provincial or municipal specialty alliance, say.
    ``is_lead``: in that consortium's lead unit."""

    __tablename__ = "consortium_membership"

    consortium_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("consortium.id", ondelete="CASCADE"), primary_key=True
    )
    institution_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("institution.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    is_lead: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


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


# --- capacity ----------------------------------------------------------------------------


class CapacityFigures:
    """Columns shared by beds and slots: free = total - occupied - held, never negative."""

    total: Mapped[int] = mapped_column(Integer, default=0)
    occupied: Mapped[int] = mapped_column(Integer, default=0)
    held: Mapped[int] = mapped_column(Integer, default=0)
    overflow: Mapped[int] = mapped_column(Integer, default=0)
    as_of: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[CheckConstraint, ...]:
        return (
            CheckConstraint("total >= 0 AND occupied >= 0 AND held >= 0", name="non_negative"),
            CheckConstraint("total - occupied - held >= 0", name="free_non_negative"),
        )


class BedCapacity(CapacityFigures, Base):
    """Inpatient beds of one institution and specialty."""

    __tablename__ = "bed_capacity"

    institution_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("institution.id", ondelete="CASCADE"), primary_key=True
    )
    specialty_code: Mapped[str] = mapped_column(
        String(8), ForeignKey("specialty.code"), primary_key=True
    )


class SlotCapacity(CapacityFigures, Base):
    """Outpatient referral slots of one institution, specialty and day."""

    __tablename__ = "slot_capacity"

    institution_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("institution.id", ondelete="CASCADE"), primary_key=True
    )
    specialty_code: Mapped[str] = mapped_column(
        String(8), ForeignKey("specialty.code"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    #: of ``total`` (the places offered to consortium referrals), those kept for patients
    #: signed with this institution until ``release_at``
    reserved_signed: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    #: of ``held``, the holds taken from the signed reserve
    held_signed: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    #: signed-reserve holds that became visits
    used_signed: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    #: when the unused signed reserve goes to the general pool (None: kept all day)
    release_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: all specialist outpatient places of the day, as the HIS reported them (if it did)
    sources: Mapped[int | None] = mapped_column(Integer)


class CapacityChange(Base):
    """History of every census change: who, when, before and after."""

    __tablename__ = "capacity_change"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    institution_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("institution.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(16))  # beds | slots
    specialty_code: Mapped[str] = mapped_column(String(8))
    day: Mapped[date | None] = mapped_column(Date)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any]] = mapped_column(JSON)
    as_of: Mapped[datetime] = mapped_column(UTCDateTime())
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor_key_id: Mapped[str | None] = mapped_column(String(36))
    actor_institution_id: Mapped[str | None] = mapped_column(String(36))

    __table_args__ = (
        Index("ix_capacity_change_institution_changed", "institution_id", "changed_at"),
    )


# --- referrals ---------------------------------------------------------------------------


#: the rows the one-live-referral rule covers: up-referrals not closed, not sent as deliberate
#: duplicates (closed: the lifecycle's FINAL states, and a rejection or expiry that stayed one,
#: as a patient's refusal does; otherwise those states pass on to the next target at once)
LIVE_NEED = text(
    "direction = 'up' AND status NOT IN ('completed', 'cancelled', 'no_show', 'rejected', "
    "'expired') AND duplicate_reason IS NULL AND kind = 'transfer'"
)


class Referral(Base):
    __tablename__ = "referral"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    consortium_id: Mapped[str] = mapped_column(String(36), ForeignKey("consortium.id"))
    direction: Mapped[Direction] = mapped_column(StrEnumText(Direction, 8))
    status: Mapped[Status] = mapped_column(StrEnumText(Status, 24))
    source_institution_id: Mapped[str] = mapped_column(String(36), ForeignKey("institution.id"))
    target_institution_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("institution.id")
    )
    out_of_consortium: Mapped[bool] = mapped_column(Boolean, default=False)
    specialty_code: Mapped[str] = mapped_column(String(8), ForeignKey("specialty.code"))
    care_type: Mapped[CareType] = mapped_column(_enum(CareType, "care_type"))
    wanted_day: Mapped[date | None] = mapped_column(Date)
    urgency: Mapped[Urgency] = mapped_column(_enum(Urgency, "urgency"))
    insurance_scheme: Mapped[InsuranceScheme] = mapped_column(
        _enum(InsuranceScheme, "insurance_scheme")
    )
    diagnosis_code: Mapped[str] = mapped_column(String(32))  # exactly as sent
    # unspecified: the edition was not recorded (referrals from before it was)
    diagnosis_code_system: Mapped[CodeSystem] = mapped_column(
        _enum(CodeSystem, "diagnosis_code_system"), server_default=text("'unspecified'")
    )
    diagnosis_name: Mapped[str | None] = mapped_column(String(200))  # from the catalogue
    diagnosis_morphology: Mapped[str | None] = mapped_column(String(16))
    # GB/T 2261.1 code (0 unknown, 1 male, 2 female, 9 unstated); words before revision 0015
    patient_sex: Mapped[SexCode] = mapped_column(_enum(SexCode, "sex_code"))
    patient_birth_date: Mapped[date] = mapped_column(Date)
    resident_id_hmac: Mapped[str] = mapped_column(String(64), index=True)
    sensitive: Mapped[str] = mapped_column(Text)  # AES-GCM sealed JSON: identity, diagnosis text
    hold_kind: Mapped[str | None] = mapped_column(String(8))  # bed | slot
    hold_specialty_code: Mapped[str | None] = mapped_column(String(8))
    hold_day: Mapped[date | None] = mapped_column(Date)
    #: the pool a slot hold came from: signed (the target's reserve for its signed patients)
    #: or consortium; None: no slot hold, or one from before reserves existed (consortium)
    hold_pool: Mapped[str | None] = mapped_column(String(16))
    referring_doctor: Mapped[str | None] = mapped_column(String(100))
    signed_institution_ids: Mapped[list[str]] = mapped_column(
        JSON, default=list, server_default=text("'[]'")
    )
    patient_choice_id: Mapped[str | None] = mapped_column(String(36))
    declined_institution_ids: Mapped[list[str]] = mapped_column(
        JSON, default=list, server_default=text("'[]'")
    )
    priority: Mapped[int] = mapped_column(Integer, default=3, server_default=text("3"))
    respond_by: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acceptance: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    pathway_code: Mapped[str | None] = mapped_column(String(32), index=True)
    pathway_version: Mapped[int | None] = mapped_column(Integer)
    pathway_targets: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    overflow: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # the council placed it at a member of its choice (held, or there even when full)
    council_directed: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    # why the referral runs in its consortium: named by the caller, the specialty alliance of
    # its pathway or specialty, or the source's own consortium (NULL: before migration 0034)
    consortium_basis: Mapped[str | None] = mapped_column(String(16))
    #: transfer (the patient moves), consult or remote_read (app/domain/remote.py)
    kind: Mapped[str] = mapped_column(
        String(16), default="transfer", server_default=text("'transfer'")
    )
    modality: Mapped[str | None] = mapped_column(String(8))  # DICOM code, as sent
    consult_mode: Mapped[str | None] = mapped_column(String(8))
    report_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: where its family-doctor signing came from: the referral body ("referral") or the signing
    #: registry ("registry"); None without one
    signed_from: Mapped[str | None] = mapped_column(String(16))
    #: its target is one of the signed institutions (001's share of visits in the signing)
    to_signed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    episode_id: Mapped[str | None] = mapped_column(String(36), index=True)
    parent_referral_id: Mapped[str | None] = mapped_column(String(36))
    reason: Mapped[str | None] = mapped_column(String(32))
    # set when the source sent this up-referral although the patient had a live one for the
    # same specialty (why, as a code); NULL for the one live referral per patient and need
    duplicate_reason: Mapped[str | None] = mapped_column(String(32))
    routed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # mutual recognition: prior results recognised at creation, and those the target repeated
    # anyway (with what a repeat costs, from the recognition catalogue's prices)
    # (amounts in fen, 分: exact integers on every back end)
    recognised_tests: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    recognised_fen: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    repeated_tests: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    repeated_fen: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # the source's and the target's referral coordinators: name, phone, HIS user (staff)
    contacts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # when the receiving hospital sent the outcome back (its content is sealed in `sensitive`)
    outcome_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        Index("ix_referral_source_created", "source_institution_id", "created_at"),
        # one live up-referral per patient and specialty in a consortium (issue: duplicates)
        Index(
            "uq_referral_live_need",
            "consortium_id",
            "resident_id_hmac",
            "specialty_code",
            unique=True,
            postgresql_where=LIVE_NEED,
            sqlite_where=LIVE_NEED,
        ),
        # worklist pages (app/db/repositories/referrals.py worklist_statement)
        Index(
            "ix_referral_source_worklist", "source_institution_id", "priority", "created_at", "id"
        ),
        Index(
            "ix_referral_target_status_worklist",
            "target_institution_id",
            "status",
            "priority",
            "created_at",
            "id",
        ),
        Index(
            "ix_referral_source_status_worklist",
            "source_institution_id",
            "status",
            "priority",
            "created_at",
            "id",
        ),
        Index("ix_referral_consortium_worklist", "consortium_id", "priority", "created_at", "id"),
        Index("ix_referral_all_worklist", "priority", "created_at", "id"),
        Index("ix_referral_consortium_created", "consortium_id", "created_at"),
        Index("ix_referral_worklist", "target_institution_id", "priority", "created_at", "id"),
        Index("ix_referral_status_respond_by", "status", "respond_by"),
        Index(
            "ix_referral_consortium_status_worklist",
            "consortium_id",
            "status",
            "priority",
            "created_at",
            "id",
        ),
        Index("ix_referral_consortium_accepted", "consortium_id", "accepted_at"),
        Index("ix_referral_consortium_closed", "consortium_id", "closed_at"),
        Index("ix_referral_consortium_kind_created", "consortium_id", "kind", "created_at"),
    )


class RoutingAttempt(Base):
    __tablename__ = "routing_attempt"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    referral_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("referral.id", ondelete="CASCADE"), index=True
    )
    attempt: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(24))
    target_institution_id: Mapped[str | None] = mapped_column(String(36), index=True)
    decision: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_routing_attempt_created", "created_at"),)


class ReferralEvent(Base):
    """Append-only audit trail of a referral."""

    __tablename__ = "referral_event"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    referral_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("referral.id", ondelete="CASCADE"), index=True
    )
    type: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str | None] = mapped_column(String(24))
    actor_institution_id: Mapped[str | None] = mapped_column(String(36))
    actor_user: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(Text)
    reason_code: Mapped[str | None] = mapped_column(String(48))
    target_institution_id: Mapped[str | None] = mapped_column(String(36))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_referral_event_type_at", "type", "at"),)


class ReferralCounter(Base):
    """Per consortium and day, the last referral sequence number handed out."""

    __tablename__ = "referral_counter"

    consortium_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


class IdempotencyRecord(Base):
    """A create's Idempotency-Key: no patient data, only where the answer is (the referral)."""

    __tablename__ = "idempotency_record"

    scope_id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the API key
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # in_flight | done
    claim_token: Mapped[str] = mapped_column(String(32))  # fences a taken-over claim
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_headers: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # Location, ETag
    referral_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


# --- green channel -----------------------------------------------------------------------


class Pathway(Base):
    """A green-channel pathway; ``targets`` are the shared defaults (changed by an admin),
    a consortium's council keeps its own in ``pathway_target``."""

    __tablename__ = "pathway"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    centre: Mapped[Centre] = mapped_column(_enum(Centre, "pathway_centre"))
    specialties: Mapped[list[str]] = mapped_column(JSON)
    targets: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PathwayTarget(Base):
    """A consortium's own targets for a pathway (versioned); without one, the defaults apply."""

    __tablename__ = "pathway_target"

    pathway_code: Mapped[str] = mapped_column(
        String(32), ForeignKey("pathway.code", ondelete="CASCADE"), primary_key=True
    )
    consortium_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("consortium.id", ondelete="CASCADE"), primary_key=True
    )
    targets: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Milestone(Base):
    __tablename__ = "milestone"

    referral_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("referral.id", ondelete="CASCADE"), primary_key=True
    )
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_by: Mapped[str | None] = mapped_column(String(36))
    recorded_user: Mapped[str | None] = mapped_column(String(100))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# --- episodes, down-referral follow-up ---------------------------------------------------


class Episode(Base):
    """One patient's course of care across referrals (up, down, up again)."""

    __tablename__ = "episode"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    consortium_id: Mapped[str] = mapped_column(String(36), ForeignKey("consortium.id"))
    resident_id_hmac: Mapped[str] = mapped_column(String(64), index=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


def _overdue_index(name: str, *columns: str) -> Index:
    """Open planned visits of live referrals in overdue-list order (due date, id)."""
    return Index(
        f"ix_follow_up_overdue_{name}",
        *columns,
        "due_date",
        "id",
        postgresql_where=text("live AND done_at IS NULL"),
        sqlite_where=text("live = 1 AND done_at IS NULL"),
    )


class FollowUp(Base):
    """A planned visit, a recorded visit, or the hospital doctor's guidance on a down-referral."""

    __tablename__ = "follow_up"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    referral_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("referral.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # planned | visit | guidance
    due_date: Mapped[date | None] = mapped_column(Date)
    done_at: Mapped[date | None] = mapped_column(Date)
    visit_date: Mapped[date | None] = mapped_column(Date)
    adherence: Mapped[str | None] = mapped_column(String(16))
    content: Mapped[str | None] = mapped_column(Text)  # sealed: findings, guidance, purpose
    author_institution_id: Mapped[str | None] = mapped_column(String(36))
    author_user: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The down-referral's facts the overdue lists filter on, copied so that each list is one
    # index range (revision 0020): kept in the transaction of every change of the referral's
    # target or state (app/db/repositories/episodes.py add_follow_up, sync_follow_ups).
    consortium_id: Mapped[str | None] = mapped_column(String(36))
    source_institution_id: Mapped[str | None] = mapped_column(String(36))  # the hospital
    #: the primary institution following the patient: the referral's current target
    target_institution_id: Mapped[str | None] = mapped_column(String(36))
    #: the referral is accepted, arrived or in follow-up (its visits are owed)
    live: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))

    __table_args__ = (
        Index("ix_follow_up_open_due", "kind", "done_at", "due_date"),
        # overdue lists (app/db/repositories/episodes.py overdue): one per caller's list
        _overdue_index("target", "target_institution_id"),
        _overdue_index("source", "source_institution_id"),
        _overdue_index("consortium", "consortium_id"),
        _overdue_index("all"),
    )


class ReferralSatisfaction(Base):
    """The patient's satisfaction with an up-referral, recorded once by the primary institution
    that referred the patient (a score and reason codes: no free text, no patient data)."""

    __tablename__ = "referral_satisfaction"

    referral_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("referral.id", ondelete="CASCADE"), primary_key=True
    )
    consortium_id: Mapped[str] = mapped_column(String(36))
    # the member rated: the referral's target when the score was recorded
    target_institution_id: Mapped[str] = mapped_column(String(36))
    score: Mapped[int] = mapped_column(Integer)
    reason_codes: Mapped[list[str]] = mapped_column(JSON)
    recorded_by_institution_id: Mapped[str] = mapped_column(String(36))
    recorded_by_user: Mapped[str | None] = mapped_column(String(100))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint("score BETWEEN 1 AND 5", name="score_range"),
        Index("ix_referral_satisfaction_consortium_recorded", "consortium_id", "recorded_at"),
    )


# --- differential reimbursement ----------------------------------------------------------


class ReimbursementPolicy(Base):
    """A version of a reimbursement policy (the document is app.domain.reimbursement's)."""

    __tablename__ = "reimbursement_policy"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    consortium_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("consortium.id"))
    effective_from: Mapped[date] = mapped_column(Date)
    is_example: Mapped[bool] = mapped_column(Boolean, default=False)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(36))

    __table_args__ = (
        UniqueConstraint("code", "version", name="uq_reimbursement_policy_code_version"),
    )


class TierRecord(Base):
    """The reimbursement tier decided for a referral; a new row whenever the target changes."""

    __tablename__ = "tier_record"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    referral_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("referral.id", ondelete="CASCADE"), index=True
    )
    target_institution_id: Mapped[str | None] = mapped_column(String(36))
    tier: Mapped[str] = mapped_column(String(48))
    deductible: Mapped[str] = mapped_column(String(24))
    ratio: Mapped[str] = mapped_column(String(12))
    annual_cap: Mapped[str] = mapped_column(String(24))
    policy_code: Mapped[str] = mapped_column(String(64))
    policy_version: Mapped[int] = mapped_column(Integer)
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    # TCM care: the terms of its TCM items (decoctions, non-drug therapies), each as a tier
    item_terms: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


from app.db import (  # noqa: E402,F401
    appointment_models,
    document_models,
    filing_models,
    remote_models,
    signing_models,
    webhook_models,
)
