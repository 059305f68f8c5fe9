"""Capacity (beds, slots, census history), referrals, routing attempts, events, idempotency.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 19:53:23.563363
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_record",
        sa.Column("institution_id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_headers", sa.JSON(), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("institution_id", "key", name=op.f("pk_idempotency_record")),
    )
    with op.batch_alter_table("idempotency_record", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idempotency_record_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "referral_counter",
        sa.Column("consortium_id", sa.String(length=36), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("consortium_id", "day", name=op.f("pk_referral_counter")),
    )
    op.create_table(
        "bed_capacity",
        sa.Column("institution_id", sa.String(length=36), nullable=False),
        sa.Column("specialty_code", sa.String(length=8), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("occupied", sa.Integer(), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("overflow", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "total - occupied - held >= 0", name=op.f("ck_bed_capacity_free_non_negative")
        ),
        sa.CheckConstraint(
            "total >= 0 AND occupied >= 0 AND held >= 0", name=op.f("ck_bed_capacity_non_negative")
        ),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institution.id"],
            name=op.f("fk_bed_capacity_institution_id_institution"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["specialty_code"],
            ["specialty.code"],
            name=op.f("fk_bed_capacity_specialty_code_specialty"),
        ),
        sa.PrimaryKeyConstraint("institution_id", "specialty_code", name=op.f("pk_bed_capacity")),
    )
    op.create_table(
        "capacity_change",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("institution_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("specialty_code", sa.String(length=8), nullable=False),
        sa.Column("day", sa.Date(), nullable=True),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_key_id", sa.String(length=36), nullable=True),
        sa.Column("actor_institution_id", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institution.id"],
            name=op.f("fk_capacity_change_institution_id_institution"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_capacity_change")),
    )
    with op.batch_alter_table("capacity_change", schema=None) as batch_op:
        batch_op.create_index(
            "ix_capacity_change_institution_changed", ["institution_id", "changed_at"], unique=False
        )

    op.create_table(
        "referral",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("consortium_id", sa.String(length=36), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source_institution_id", sa.String(length=36), nullable=False),
        sa.Column("target_institution_id", sa.String(length=36), nullable=True),
        sa.Column("out_of_consortium", sa.Boolean(), nullable=False),
        sa.Column("specialty_code", sa.String(length=8), nullable=False),
        sa.Column(
            "care_type",
            sa.Enum(
                "inpatient",
                "outpatient",
                "examination",
                name="care_type",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("wanted_day", sa.Date(), nullable=True),
        sa.Column(
            "urgency",
            sa.Enum(
                "routine",
                "urgent",
                "emergency",
                name="urgency",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "insurance_scheme",
            sa.Enum(
                "employee_basic",
                "urban_rural_resident",
                "urban_resident_legacy",
                "new_rural_cooperative_legacy",
                "self_pay",
                name="insurance_scheme",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("diagnosis_code", sa.String(length=16), nullable=False),
        sa.Column(
            "patient_sex",
            sa.Enum(
                "male",
                "female",
                "unknown",
                name="sex",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("patient_birth_date", sa.Date(), nullable=False),
        sa.Column("resident_id_hmac", sa.String(length=64), nullable=False),
        sa.Column("sensitive", sa.Text(), nullable=False),
        sa.Column("hold_kind", sa.String(length=8), nullable=True),
        sa.Column("hold_specialty_code", sa.String(length=8), nullable=True),
        sa.Column("hold_day", sa.Date(), nullable=True),
        sa.Column("referring_doctor", sa.String(length=100), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["consortium_id"], ["consortium.id"], name=op.f("fk_referral_consortium_id_consortium")
        ),
        sa.ForeignKeyConstraint(
            ["source_institution_id"],
            ["institution.id"],
            name=op.f("fk_referral_source_institution_id_institution"),
        ),
        sa.ForeignKeyConstraint(
            ["specialty_code"],
            ["specialty.code"],
            name=op.f("fk_referral_specialty_code_specialty"),
        ),
        sa.ForeignKeyConstraint(
            ["target_institution_id"],
            ["institution.id"],
            name=op.f("fk_referral_target_institution_id_institution"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral")),
        sa.UniqueConstraint("number", name=op.f("uq_referral_number")),
    )
    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.create_index(
            "ix_referral_consortium_created", ["consortium_id", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_referral_resident_id_hmac"), ["resident_id_hmac"], unique=False
        )
        batch_op.create_index(
            "ix_referral_source_created", ["source_institution_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_referral_target_status", ["target_institution_id", "status"], unique=False
        )

    op.create_table(
        "slot_capacity",
        sa.Column("institution_id", sa.String(length=36), nullable=False),
        sa.Column("specialty_code", sa.String(length=8), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("occupied", sa.Integer(), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("overflow", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "total - occupied - held >= 0", name=op.f("ck_slot_capacity_free_non_negative")
        ),
        sa.CheckConstraint(
            "total >= 0 AND occupied >= 0 AND held >= 0", name=op.f("ck_slot_capacity_non_negative")
        ),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institution.id"],
            name=op.f("fk_slot_capacity_institution_id_institution"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["specialty_code"],
            ["specialty.code"],
            name=op.f("fk_slot_capacity_specialty_code_specialty"),
        ),
        sa.PrimaryKeyConstraint(
            "institution_id", "specialty_code", "day", name=op.f("pk_slot_capacity")
        ),
    )
    op.create_table(
        "referral_event",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("referral_id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=True),
        sa.Column("actor_institution_id", sa.String(length=36), nullable=True),
        sa.Column("actor_user", sa.String(length=100), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referral.id"],
            name=op.f("fk_referral_event_referral_id_referral"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_event")),
    )
    with op.batch_alter_table("referral_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_referral_event_referral_id"), ["referral_id"], unique=False
        )

    op.create_table(
        "routing_attempt",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("referral_id", sa.String(length=36), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=24), nullable=False),
        sa.Column("target_institution_id", sa.String(length=36), nullable=True),
        sa.Column("decision", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referral.id"],
            name=op.f("fk_routing_attempt_referral_id_referral"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_attempt")),
    )
    with op.batch_alter_table("routing_attempt", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_routing_attempt_referral_id"), ["referral_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("routing_attempt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_routing_attempt_referral_id"))

    op.drop_table("routing_attempt")
    with op.batch_alter_table("referral_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_referral_event_referral_id"))

    op.drop_table("referral_event")
    op.drop_table("slot_capacity")
    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.drop_index("ix_referral_target_status")
        batch_op.drop_index("ix_referral_source_created")
        batch_op.drop_index(batch_op.f("ix_referral_resident_id_hmac"))
        batch_op.drop_index("ix_referral_consortium_created")

    op.drop_table("referral")
    with op.batch_alter_table("capacity_change", schema=None) as batch_op:
        batch_op.drop_index("ix_capacity_change_institution_changed")

    op.drop_table("capacity_change")
    op.drop_table("bed_capacity")
    op.drop_table("referral_counter")
    with op.batch_alter_table("idempotency_record", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_record_expires_at"))

    op.drop_table("idempotency_record")
