"""A lead unit of several hospitals: a consortium may name more than one institution as its
lead (Zhenghe's County Hospital with the County TCM and Maternity-and-Child hospitals). The
unique partial index on ``institution(consortium_id) WHERE is_lead`` becomes a plain one; the
stored leads stay as they are.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-03 09:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0033"
down_revision: str | None = "0032"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("uq_institution_one_lead_per_consortium", table_name="institution")
    op.create_index(
        "ix_institution_lead_unit",
        "institution",
        ["consortium_id"],
        sqlite_where=sa.text("is_lead"),
        postgresql_where=sa.text("is_lead"),
    )


def downgrade() -> None:
    # a unit of several keeps its first member (by code) as the one lead
    op.execute(
        "UPDATE institution SET is_lead = false WHERE is_lead AND code <> ("
        "SELECT min(i.code) FROM institution i "
        "WHERE i.consortium_id = institution.consortium_id AND i.is_lead)"
    )
    op.drop_index("ix_institution_lead_unit", table_name="institution")
    op.create_index(
        "uq_institution_one_lead_per_consortium",
        "institution",
        ["consortium_id"],
        unique=True,
        sqlite_where=sa.text("is_lead"),
        postgresql_where=sa.text("is_lead"),
    )
