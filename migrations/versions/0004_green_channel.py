"""Green channel: pathways (versioned targets), milestones, overflow and pathway on referrals.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 20:26:57.799086
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pathway",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "centre",
            sa.Enum(
                "chest_pain",
                "stroke",
                "trauma",
                "critical_maternal",
                "critical_neonatal",
                name="pathway_centre",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("specialties", sa.JSON(), nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_pathway")),
    )
    op.create_table(
        "milestone",
        sa.Column("referral_id", sa.String(length=36), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=36), nullable=True),
        sa.Column("recorded_user", sa.String(length=100), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referral.id"],
            name=op.f("fk_milestone_referral_id_referral"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("referral_id", "code", name=op.f("pk_milestone")),
    )
    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pathway_code", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("pathway_version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("pathway_targets", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("overflow", sa.Boolean(), server_default=sa.text("(false)"), nullable=False)
        )
        batch_op.create_index(
            batch_op.f("ix_referral_pathway_code"), ["pathway_code"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_referral_pathway_code"))
        batch_op.drop_column("overflow")
        batch_op.drop_column("pathway_targets")
        batch_op.drop_column("pathway_version")
        batch_op.drop_column("pathway_code")

    op.drop_table("milestone")
    op.drop_table("pathway")
