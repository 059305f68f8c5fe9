"""Reserved referral slots: on ``slot_capacity`` the places kept for signed patients
(``reserved_signed``), the holds and uses taken from them (``held_signed``, ``used_signed``),
when the unused reserve goes to the general pool (``release_at``, NULL: never) and the day's
specialist outpatient sources as the HIS reported them (``sources``); on ``referral`` the pool
its slot hold came from (``hold_pool``: signed or consortium; NULL for stored holds, which
are consortium places). Stored rows keep their figures with no reserve. ADD COLUMN only.

Revision ID: 0038
Revises: 0037
Create Date: 2026-12-03 14:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0038"
down_revision: str | None = "0037"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for name in ("reserved_signed", "held_signed", "used_signed"):
        op.add_column(
            "slot_capacity",
            sa.Column(name, sa.Integer(), nullable=False, server_default=sa.text("0")),
        )
    op.add_column("slot_capacity", sa.Column("release_at", sa.DateTime(timezone=True)))
    op.add_column("slot_capacity", sa.Column("sources", sa.Integer(), nullable=True))
    op.add_column("referral", sa.Column("hold_pool", sa.String(length=16), nullable=True))


def downgrade() -> None:
    op.drop_column("referral", "hold_pool")
    for name in ("sources", "release_at", "used_signed", "held_signed", "reserved_signed"):
        op.drop_column("slot_capacity", name)
