"""Worklist indexes: every worklist page an index range scan in worklist order.

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-02 14:40:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ORDER = ["priority", "created_at", "id"]
INDEXES = {
    "ix_referral_source_worklist": ["source_institution_id", *ORDER],
    "ix_referral_target_status_worklist": ["target_institution_id", "status", *ORDER],
    "ix_referral_source_status_worklist": ["source_institution_id", "status", *ORDER],
    "ix_referral_consortium_worklist": ["consortium_id", *ORDER],
    "ix_referral_all_worklist": ORDER,
}


def upgrade() -> None:
    with op.batch_alter_table("referral", schema=None) as batch_op:
        # (target, status) is the prefix of the new (target, status, priority, created_at, id)
        batch_op.drop_index("ix_referral_target_status")
        for name, columns in INDEXES.items():
            batch_op.create_index(name, columns, unique=False)
    with op.batch_alter_table("webhook_delivery", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_delivery_state_log", ["subscription_id", "state", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_delivery_state_log")
    with op.batch_alter_table("referral", schema=None) as batch_op:
        for name in reversed(INDEXES):
            batch_op.drop_index(name)
        batch_op.create_index(
            "ix_referral_target_status", ["target_institution_id", "status"], unique=False
        )
