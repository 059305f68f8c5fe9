"""Green-channel targets per consortium: a council changes its own, not everyone's.

The targets and versions already in ``pathway`` stay where they are and become the shared
defaults every consortium without targets of its own uses. Downgrade drops the consortia's
own targets (referrals keep the targets they were created with either way).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 14:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pathway_target",
        sa.Column("pathway_code", sa.String(length=32), nullable=False),
        sa.Column("consortium_id", sa.String(length=36), nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["consortium_id"],
            ["consortium.id"],
            name=op.f("fk_pathway_target_consortium_id_consortium"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["pathway_code"],
            ["pathway.code"],
            name=op.f("fk_pathway_target_pathway_code_pathway"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pathway_code", "consortium_id", name=op.f("pk_pathway_target")),
    )


def downgrade() -> None:
    op.drop_table("pathway_target")
