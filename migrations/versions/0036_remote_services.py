"""Remote consultation and remote reading: ``referral.kind`` (``transfer`` for every stored
referral), ``modality``, ``consult_mode``, ``report_due_at`` and ``reported_at``; the services a
member offers (``remote_service``), its readers' capacity per kind, specialty and day
(``remote_capacity``) and the sealed answers (``remote_report``). The one-live-referral rule
covers transfers only. New tables and ADD COLUMN only (the referral table is never recreated).

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-03 14:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0036"
down_revision: str | None = "0035"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIVE = (
    "direction = 'up' AND status NOT IN ('completed', 'cancelled', 'no_show', 'rejected', "
    "'expired') AND duplicate_reason IS NULL"
)
LIVE_BEFORE = sa.text(_LIVE)
LIVE_NOW = sa.text(_LIVE + " AND kind = 'transfer'")


def _live_need(where: sa.TextClause) -> None:
    op.create_index(
        "uq_referral_live_need",
        "referral",
        ["consortium_id", "resident_id_hmac", "specialty_code"],
        unique=True,
        postgresql_where=where,
        sqlite_where=where,
    )


def upgrade() -> None:
    op.add_column(
        "referral",
        sa.Column(
            "kind", sa.String(length=16), nullable=False, server_default=sa.text("'transfer'")
        ),
    )
    op.add_column("referral", sa.Column("modality", sa.String(length=8), nullable=True))
    op.add_column("referral", sa.Column("consult_mode", sa.String(length=8), nullable=True))
    op.add_column("referral", sa.Column("report_due_at", sa.DateTime(timezone=True)))
    op.add_column("referral", sa.Column("reported_at", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_referral_consortium_kind_created", "referral", ["consortium_id", "kind", "created_at"]
    )
    op.drop_index("uq_referral_live_need", table_name="referral")
    _live_need(LIVE_NOW)
    op.create_table(
        "remote_service",
        sa.Column("institution_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("specialty_code", sa.String(length=8), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institution.id"],
            name=op.f("fk_remote_service_institution_id_institution"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["specialty_code"],
            ["specialty.code"],
            name=op.f("fk_remote_service_specialty_code_specialty"),
        ),
        sa.PrimaryKeyConstraint(
            "institution_id", "kind", "specialty_code", name=op.f("pk_remote_service")
        ),
    )
    op.create_table(
        "remote_capacity",
        sa.Column("institution_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("specialty_code", sa.String(length=8), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("occupied", sa.Integer(), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("overflow", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "total - occupied - held >= 0", name=op.f("ck_remote_capacity_free_non_negative")
        ),
        sa.CheckConstraint(
            "total >= 0 AND occupied >= 0 AND held >= 0",
            name=op.f("ck_remote_capacity_non_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institution.id"],
            name=op.f("fk_remote_capacity_institution_id_institution"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["specialty_code"],
            ["specialty.code"],
            name=op.f("fk_remote_capacity_specialty_code_specialty"),
        ),
        sa.PrimaryKeyConstraint(
            "institution_id", "kind", "specialty_code", "day", name=op.f("pk_remote_capacity")
        ),
    )
    op.create_table(
        "remote_report",
        sa.Column("referral_id", sa.String(length=36), nullable=False),
        sa.Column("reader_institution_id", sa.String(length=36), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("within_target", sa.Boolean(), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referral.id"],
            name=op.f("fk_remote_report_referral_id_referral"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("referral_id", name=op.f("pk_remote_report")),
    )


def downgrade() -> None:
    op.drop_table("remote_report")
    op.drop_table("remote_capacity")
    op.drop_table("remote_service")
    op.drop_index("uq_referral_live_need", table_name="referral")
    # remote requests go with their kind: the rule before this revision covered every referral
    op.execute("DELETE FROM referral WHERE kind <> 'transfer'")
    _live_need(LIVE_BEFORE)
    op.drop_index("ix_referral_consortium_kind_created", table_name="referral")
    for column in ("reported_at", "report_due_at", "consult_mode", "modality", "kind"):
        op.drop_column("referral", column)
