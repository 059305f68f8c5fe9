"""The tier record of a referral for TCM care carries the terms of its TCM items.

``tier_record.item_terms`` (JSON, nullable): for a referral of specialty 50 (中医科) or a
sub-specialty, the terms of decoctions and of the non-drug TCM therapies, each decided as a
tier under the policy in force. Records written before stay as they are (NULL).

Revision ID: 0022
Revises: 0018
Create Date: 2026-12-03 07:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tier_record", sa.Column("item_terms", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("tier_record", "item_terms")
