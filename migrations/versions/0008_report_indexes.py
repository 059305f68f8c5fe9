"""Report indexes and the time each referral was last routed (time to accept).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 21:19:08.900000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.add_column(sa.Column("routed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_referral_consortium_accepted", ["consortium_id", "accepted_at"], unique=False
        )
        batch_op.create_index(
            "ix_referral_consortium_closed", ["consortium_id", "closed_at"], unique=False
        )

    with op.batch_alter_table("referral_event", schema=None) as batch_op:
        batch_op.create_index("ix_referral_event_type_at", ["type", "at"], unique=False)

    with op.batch_alter_table("routing_attempt", schema=None) as batch_op:
        batch_op.create_index("ix_routing_attempt_created", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("routing_attempt", schema=None) as batch_op:
        batch_op.drop_index("ix_routing_attempt_created")

    with op.batch_alter_table("referral_event", schema=None) as batch_op:
        batch_op.drop_index("ix_referral_event_type_at")

    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.drop_index("ix_referral_consortium_closed")
        batch_op.drop_index("ix_referral_consortium_accepted")
        batch_op.drop_column("routed_at")
