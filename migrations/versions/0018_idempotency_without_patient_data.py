"""Idempotency records: no stored answer, one namespace per API key, a fenced claim.

The record used to keep the whole 201 body (resident ID, name, insurance number, diagnosis
text) for at least 24 h in plaintext. It now keeps the status, the ``Location`` and ``ETag``
headers and the referral id; a replay renders the referral for the caller again. Keys are
scoped by the API key (``scope_id``), not the institution, so two keys of one institution (or
a council key) never share answers. ``claim_token`` fences a claim: a request whose claim was
taken over after ``REFERRAL_IDEMPOTENCY_IN_FLIGHT_SECONDS`` can no longer finish.

Stored records are dropped: they held patient data, and they expire within a day anyway (a
retry of a request sent before the upgrade is taken as a new request). The downgrade recreates
the former table empty.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 15:35:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def _drop() -> None:
    op.drop_index(op.f("ix_idempotency_record_expires_at"), table_name="idempotency_record")
    op.drop_table("idempotency_record")


def upgrade() -> None:
    _drop()
    op.create_table(
        "idempotency_record",
        sa.Column("scope_id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("claim_token", sa.String(length=32), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_headers", sa.JSON(), nullable=True),
        sa.Column("referral_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("scope_id", "key", name=op.f("pk_idempotency_record")),
    )
    op.create_index(op.f("ix_idempotency_record_expires_at"), "idempotency_record", ["expires_at"])


def downgrade() -> None:
    _drop()
    op.create_table(
        "idempotency_record",
        sa.Column("institution_id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_headers", sa.JSON(), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("institution_id", "key", name=op.f("pk_idempotency_record")),
    )
    op.create_index(op.f("ix_idempotency_record_expires_at"), "idempotency_record", ["expires_at"])
