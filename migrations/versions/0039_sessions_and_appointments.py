"""Outpatient sessions and appointments: ``outpatient_session`` (a half-day clinic of a
specialty, with optional doctor and room, its places and bookings) and ``appointment`` (a
referral's session, number and time). New tables only.

Revision ID: 0039
Revises: 0038
Create Date: 2026-12-03 14:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0039"
down_revision: str | None = "0038"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outpatient_session",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("institution_id", sa.String(length=36), nullable=False),
        sa.Column("his_session_id", sa.String(length=64), nullable=False),
        sa.Column("specialty_code", sa.String(length=8), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("period", sa.String(length=12), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("doctor", sa.String(length=100), nullable=True),
        sa.Column("room", sa.String(length=50), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("occupied", sa.Integer(), nullable=False),
        sa.Column("booked", sa.Integer(), nullable=False),
        sa.Column("next_number", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "total >= 0 AND occupied >= 0 AND booked >= 0",
            name=op.f("ck_outpatient_session_non_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institution.id"],
            name=op.f("fk_outpatient_session_institution_id_institution"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["specialty_code"],
            ["specialty.code"],
            name=op.f("fk_outpatient_session_specialty_code_specialty"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outpatient_session")),
        sa.UniqueConstraint("institution_id", "his_session_id", name="uq_outpatient_session_his"),
    )
    op.create_index(
        "ix_outpatient_session_day",
        "outpatient_session",
        ["institution_id", "specialty_code", "day"],
    )
    op.create_table(
        "appointment",
        sa.Column("referral_id", sa.String(length=36), nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("appointment_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("booked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referral.id"],
            name=op.f("fk_appointment_referral_id_referral"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["outpatient_session.id"],
            name=op.f("fk_appointment_session_id_outpatient_session"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("referral_id", name=op.f("pk_appointment")),
    )
    op.create_index("ix_appointment_session_id", "appointment", ["session_id"])


def downgrade() -> None:
    op.drop_index("ix_appointment_session_id", table_name="appointment")
    op.drop_table("appointment")
    op.drop_index("ix_outpatient_session_day", table_name="outpatient_session")
    op.drop_table("outpatient_session")
