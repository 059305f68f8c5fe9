"""Patient satisfaction per referral (003 names it in the appraisal).

``referral_satisfaction``: one row per up-referral, recorded once by the referring primary
institution: a score from 1 to 5 and reason codes (no free text), the member rated and when.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03 07:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "referral_satisfaction",
        sa.Column("referral_id", sa.String(length=36), nullable=False),
        sa.Column("consortium_id", sa.String(length=36), nullable=False),
        sa.Column("target_institution_id", sa.String(length=36), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("reason_codes", sa.JSON(), nullable=False),
        sa.Column("recorded_by_institution_id", sa.String(length=36), nullable=False),
        sa.Column("recorded_by_user", sa.String(length=100), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "score BETWEEN 1 AND 5", name=op.f("ck_referral_satisfaction_score_range")
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referral.id"],
            name=op.f("fk_referral_satisfaction_referral_id_referral"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("referral_id", name=op.f("pk_referral_satisfaction")),
    )
    op.create_index(
        "ix_referral_satisfaction_consortium_recorded",
        "referral_satisfaction",
        ["consortium_id", "recorded_at"],
    )


def downgrade() -> None:
    op.drop_index(
        "ix_referral_satisfaction_consortium_recorded", table_name="referral_satisfaction"
    )
    op.drop_table("referral_satisfaction")
