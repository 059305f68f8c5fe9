"""Documents attached to referrals (PDF, JPEG, PNG, CDA XML), sealed at rest.

``referral_document``: one row per document (type, media type, size, SHA-256, the sealed file
name and title, who uploaded it and when, withdrawn or not); ``document_content``: its sealed
bytes when the database is the document store.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-03 07:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "referral_document",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("referral_id", sa.String(length=36), nullable=False),
        sa.Column("document_type", sa.String(length=32), nullable=False),
        sa.Column("media_type", sa.String(length=48), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("sealed_meta", sa.Text(), nullable=False),
        sa.Column("uploaded_by_institution_id", sa.String(length=36), nullable=False),
        sa.Column("uploaded_by_user", sa.String(length=100), nullable=True),
        sa.Column("uploaded_at", TIMESTAMP, nullable=False),
        sa.Column("withdrawn_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referral.id"],
            name=op.f("fk_referral_document_referral_id_referral"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_document")),
    )
    op.create_index(
        "ix_referral_document_referral", "referral_document", ["referral_id", "uploaded_at"]
    )
    op.create_table(
        "document_content",
        sa.Column("document_id", sa.String(length=36), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["referral_document.id"],
            name=op.f("fk_document_content_document_id_referral_document"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("document_id", name=op.f("pk_document_content")),
    )


def downgrade() -> None:
    op.drop_table("document_content")
    op.drop_index("ix_referral_document_referral", table_name="referral_document")
    op.drop_table("referral_document")
