"""Referral filings with the medical-insurance platform (转院备案, transactions 2501/2502).

``insurance_gateway``: one row per consortium that has a regional insurance gateway (its URL,
its bearer token sealed); ``insurance_filing``: one row per filing of a referral for a target
(state, operation, the sealed 2501 message, the filing number, attempts and the last failure
class). New tables only: the referral table is not touched.

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-04 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0035"
down_revision: str | None = "0034"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
STATES = ("pending", "filed", "cancel_pending", "cancelled", "superseded", "dead", "manual")


def upgrade() -> None:
    op.create_table(
        "insurance_gateway",
        sa.Column("consortium_id", sa.String(length=36), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("token_sealed", sa.Text(), nullable=True),
        sa.Column("updated_by_key_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["consortium_id"],
            ["consortium.id"],
            name=op.f("fk_insurance_gateway_consortium_id_consortium"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("consortium_id", name=op.f("pk_insurance_gateway")),
    )
    op.create_table(
        "insurance_filing",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("referral_id", sa.String(length=36), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("consortium_id", sa.String(length=36), nullable=False),
        sa.Column("target_institution_id", sa.String(length=36), nullable=False),
        sa.Column("tier", sa.String(length=48), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("operation", sa.String(length=8), nullable=False),
        sa.Column("payload_sealed", sa.Text(), nullable=False),
        sa.Column("filing_number", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TIMESTAMP, nullable=True),
        sa.Column("give_up_at", TIMESTAMP, nullable=True),
        sa.Column("last_attempt_at", TIMESTAMP, nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_infcode", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=64), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("filed_at", TIMESTAMP, nullable=True),
        sa.Column("cancel_requested_at", TIMESTAMP, nullable=True),
        sa.Column("cancelled_at", TIMESTAMP, nullable=True),
        sa.Column("superseded_at", TIMESTAMP, nullable=True),
        sa.Column("dead_at", TIMESTAMP, nullable=True),
        sa.CheckConstraint(
            "state IN (" + ", ".join(f"'{s}'" for s in STATES) + ")",
            name=op.f("ck_insurance_filing_state"),
        ),
        sa.CheckConstraint(
            "operation IN ('file', 'cancel')", name=op.f("ck_insurance_filing_operation")
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referral.id"],
            name=op.f("fk_insurance_filing_referral_id_referral"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insurance_filing")),
        sa.UniqueConstraint(
            "referral_id", "generation", name=op.f("uq_insurance_filing_referral_id")
        ),
    )
    op.create_index("ix_insurance_filing_due", "insurance_filing", ["state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_insurance_filing_due", table_name="insurance_filing")
    op.drop_table("insurance_filing")
    op.drop_table("insurance_gateway")
