"""Differential reimbursement: policy versions and the tier recorded on referrals.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 20:44:11.681550
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _widen_reason_code(old: int, new: int) -> None:
    """Tier codes are longer than 32. On SQLite the batch recreates referral_event, which
    drops its append-only triggers: they are created again right after."""
    with op.batch_alter_table("referral_event", schema=None) as batch_op:
        batch_op.alter_column(
            "reason_code", existing_type=sa.String(length=old), type_=sa.String(length=new)
        )
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"DROP TRIGGER IF EXISTS referral_event_no_{verb.lower()}")
            op.execute(
                f"CREATE TRIGGER referral_event_no_{verb.lower()} BEFORE {verb} ON referral_event "
                "BEGIN SELECT RAISE(ABORT, 'referral events are append-only'); END"
            )


def upgrade() -> None:
    _widen_reason_code(32, 48)
    op.create_table(
        "reimbursement_policy",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("consortium_id", sa.String(length=36), nullable=True),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("is_example", sa.Boolean(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(
            ["consortium_id"],
            ["consortium.id"],
            name=op.f("fk_reimbursement_policy_consortium_id_consortium"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reimbursement_policy")),
        sa.UniqueConstraint("code", "version", name="uq_reimbursement_policy_code_version"),
    )
    op.create_table(
        "tier_record",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("referral_id", sa.String(length=36), nullable=False),
        sa.Column("target_institution_id", sa.String(length=36), nullable=True),
        sa.Column("tier", sa.String(length=48), nullable=False),
        sa.Column("deductible", sa.String(length=24), nullable=False),
        sa.Column("ratio", sa.String(length=12), nullable=False),
        sa.Column("annual_cap", sa.String(length=24), nullable=False),
        sa.Column("policy_code", sa.String(length=64), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referral.id"],
            name=op.f("fk_tier_record_referral_id_referral"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tier_record")),
    )
    with op.batch_alter_table("tier_record", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tier_record_decided_at"), ["decided_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_tier_record_referral_id"), ["referral_id"], unique=False
        )

    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.drop_column("reason")

    with op.batch_alter_table("tier_record", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tier_record_referral_id"))
        batch_op.drop_index(batch_op.f("ix_tier_record_decided_at"))

    op.drop_table("tier_record")
    op.drop_table("reimbursement_policy")
    _widen_reason_code(48, 32)
