"""Each consortium's IANA time zone: its days, months and referral-number dates.

Revision ID: 0012
Revises: 0009
Create Date: 2026-12-02 14:30:00.000000

Existing consortia get Asia/Shanghai, the zone every Chinese consortium keeps.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # a plain ADD COLUMN on both back ends: a batch copy of consortium on SQLite would have to
    # drop the table its members and referrals point to
    op.add_column(
        "consortium",
        sa.Column(
            "time_zone",
            sa.String(length=64),
            server_default=sa.text("'Asia/Shanghai'"),
            nullable=False,
        ),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # in place: a batch copy of consortium would have to drop the table its members and
        # referrals point to (SQLite 3.35 or newer drops a column in place)
        op.execute("ALTER TABLE consortium DROP COLUMN time_zone")
    else:
        op.drop_column("consortium", "time_zone")
