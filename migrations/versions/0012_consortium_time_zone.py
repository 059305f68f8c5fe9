"""Each consortium's IANA time zone: its days, months and referral-number dates.

Revision ID: 0012
Revises: 0008
Create Date: 2026-12-02 14:30:00.000000

Existing consortia get Asia/Shanghai, the zone every Chinese consortium keeps.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("consortium", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "time_zone",
                sa.String(length=64),
                server_default=sa.text("'Asia/Shanghai'"),
                nullable=False,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("consortium", schema=None) as batch_op:
        batch_op.drop_column("time_zone")
