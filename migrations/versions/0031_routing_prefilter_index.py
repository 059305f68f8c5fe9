"""Routing pre-filter index: a consortium's members by level and active flag.

The pre-filter (``app/db/repositories/routing.py``) counts the members below the source's level
or inactive per reason and classifies the active ones above it; with this index the count is an
index-only range of the consortium and the others one range per level, instead of a scan of
every institution of every consortium (or of every secondary and tertiary institution).

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-03 07:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0031"
down_revision: str | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_institution_consortium_level_active"


def upgrade() -> None:
    op.create_index(NAME, "institution", ["consortium_id", "level", "active"], unique=False)


def downgrade() -> None:
    op.drop_index(NAME, table_name="institution")
