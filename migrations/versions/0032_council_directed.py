"""Council-directed placement: ``referral.council_directed`` marks a referral the council placed
at a member of its choice. ADD COLUMN only (the referral table is never recreated).

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-03 08:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0032"
down_revision: str | None = "0031"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "referral",
        sa.Column("council_directed", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("referral", "council_directed")
