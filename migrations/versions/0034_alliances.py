"""Membership of several alliances: ``consortium_membership`` lists the consortia an
institution belongs to beside its own (``institution.consortium_id``), each with its lead flag;
a specialty alliance names its scope (``consortium.alliance_centres``,
``consortium.alliance_specialties``); ``referral.consortium_basis`` says why a referral runs in
its consortium. New table and ADD COLUMN only (the referral table is never recreated); stored
referrals keep their consortium (basis NULL: before this revision).

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-03 09:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0034"
down_revision: str | None = "0033"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "consortium_membership",
        sa.Column("consortium_id", sa.String(length=36), nullable=False),
        sa.Column("institution_id", sa.String(length=36), nullable=False),
        sa.Column("is_lead", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["consortium_id"],
            ["consortium.id"],
            name=op.f("fk_consortium_membership_consortium_id_consortium"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institution.id"],
            name=op.f("fk_consortium_membership_institution_id_institution"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "consortium_id", "institution_id", name=op.f("pk_consortium_membership")
        ),
    )
    op.create_index(
        "ix_consortium_membership_institution_id", "consortium_membership", ["institution_id"]
    )
    op.add_column(
        "consortium",
        sa.Column("alliance_centres", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
    )
    op.add_column(
        "consortium",
        sa.Column(
            "alliance_specialties", sa.JSON(), nullable=False, server_default=sa.text("'[]'")
        ),
    )
    op.add_column("referral", sa.Column("consortium_basis", sa.String(16), nullable=True))


def downgrade() -> None:
    op.drop_column("referral", "consortium_basis")
    # DROP COLUMN in place: recreating the consortium table would break its foreign keys
    op.drop_column("consortium", "alliance_specialties")
    op.drop_column("consortium", "alliance_centres")
    op.drop_index("ix_consortium_membership_institution_id", table_name="consortium_membership")
    op.drop_table("consortium_membership")
