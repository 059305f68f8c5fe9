"""One live up-referral per patient and specialty in a consortium.

``referral.duplicate_reason`` (a code) marks an up-referral its source sent deliberately
although the patient had a live one for the same specialty; a partial unique index holds the
rule for the rest. Referrals stored before this revision that already break it keep their
data: all but the oldest of each such group are marked ``before_check``.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-03 07:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = "direction = 'up' AND status NOT IN ('completed', 'cancelled', 'no_show', 'rejected', 'expired')"
LIVE_NEED = sa.text(f"{LIVE} AND duplicate_reason IS NULL")


def upgrade() -> None:
    # ADD COLUMN only: the referral table is never recreated (append-only event triggers)
    op.add_column("referral", sa.Column("duplicate_reason", sa.String(length=32), nullable=True))
    # LIVE is a constant of this file: nothing in the statement comes from outside
    op.execute(
        f"""
        UPDATE referral SET duplicate_reason = 'before_check'
        WHERE {LIVE} AND EXISTS (
            SELECT 1 FROM referral AS older
            WHERE older.consortium_id = referral.consortium_id
              AND older.resident_id_hmac = referral.resident_id_hmac
              AND older.specialty_code = referral.specialty_code
              AND older.direction = 'up'
              AND older.status NOT IN ('completed', 'cancelled', 'no_show', 'rejected', 'expired')
              AND (older.created_at < referral.created_at
                   OR (older.created_at = referral.created_at AND older.id < referral.id))
        )
        """  # noqa: S608
    )
    op.create_index(
        "uq_referral_live_need",
        "referral",
        ["consortium_id", "resident_id_hmac", "specialty_code"],
        unique=True,
        postgresql_where=LIVE_NEED,
        sqlite_where=LIVE_NEED,
    )


def downgrade() -> None:
    op.drop_index("uq_referral_live_need", table_name="referral")
    op.drop_column("referral", "duplicate_reason")
