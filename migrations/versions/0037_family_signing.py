"""Family-doctor signings: ``family_signing`` (the resident's 1+1+1 institutions pushed by the
signing clinic, the identity sealed, matched by HMAC); ``referral.signed_from`` (where a
referral's signing came from: the referral body or the registry; NULL before this revision or
without one) and ``referral.to_signed`` (its target is one of the signed institutions; stored
referrals get it from their signed list). New table and ADD COLUMN only.

Revision ID: 0037
Revises: 0036
Create Date: 2026-12-03 14:05:00.000000
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0037"
down_revision: str | None = "0036"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "family_signing",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("institution_id", sa.String(length=36), nullable=False),
        sa.Column("contract_id", sa.String(length=64), nullable=False),
        sa.Column("resident_id_hmac", sa.String(length=64), nullable=False),
        sa.Column("institution_ids", sa.JSON(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institution.id"],
            name=op.f("fk_family_signing_institution_id_institution"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_family_signing")),
        sa.UniqueConstraint("institution_id", "contract_id", name="uq_family_signing_contract"),
    )
    op.create_index(
        "ix_family_signing_resident", "family_signing", ["resident_id_hmac", "valid_from"]
    )
    op.add_column("referral", sa.Column("signed_from", sa.String(length=16), nullable=True))
    op.add_column(
        "referral",
        sa.Column("to_signed", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    # stored referrals: their target among the institutions the body named as signed
    conn = op.get_bind()
    rows = conn.execute(
        sa.text(
            "SELECT id, target_institution_id, signed_institution_ids FROM referral "
            "WHERE target_institution_id IS NOT NULL"
        )
    ).all()
    hits = []
    for rid, target, signed in rows:
        listed = json.loads(signed) if isinstance(signed, str) else (signed or [])
        if listed:
            hits.append({"id": rid, "target": target in listed})
    if hits:
        conn.execute(
            sa.text(
                "UPDATE referral SET to_signed = :target, signed_from = 'referral' WHERE id = :id"
            ),
            hits,
        )


def downgrade() -> None:
    op.drop_column("referral", "to_signed")
    op.drop_column("referral", "signed_from")
    op.drop_index("ix_family_signing_resident", table_name="family_signing")
    op.drop_table("family_signing")
