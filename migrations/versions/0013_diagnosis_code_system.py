"""Diagnosis codes kept as sent with their edition: longer codes, code system, name, morphology.

Existing referrals keep their code as stored and get the code system ``unspecified`` (the
edition was not recorded when they were made).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 14:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SYSTEMS = ("gb_t_14396_2016", "clinical_2_0", "insurance_2_0", "unspecified")
OLD_LENGTH = 16
NEW_LENGTH = 32
CHECK = "ck_referral_diagnosis_code_system"
CHECK_SQL = "diagnosis_code_system IN (" + ", ".join(f"'{s}'" for s in SYSTEMS) + ")"

# On SQLite these changes use ALTER TABLE in place (ADD/DROP/RENAME COLUMN), never a batch
# copy of the table: dropping the old referral table would cascade to its events, routing
# attempts, follow-ups and tiers (ON DELETE CASCADE; the append-only trigger stops it).
# The resized column keeps a DEFAULT '' on SQLite (ADD COLUMN ... NOT NULL needs one).


def _sqlite() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return False
    version = str(bind.exec_driver_sql("SELECT sqlite_version()").scalar_one())
    if tuple(int(p) for p in version.split(".")[:2]) < (3, 35):
        raise RuntimeError(f"SQLite {version}: this migration needs 3.35 or newer (DROP COLUMN)")
    return True


def _sqlite_resize_code(length: int) -> None:
    op.execute(
        f"ALTER TABLE referral ADD COLUMN diagnosis_code_resized VARCHAR({length}) "
        "NOT NULL DEFAULT ''"
    )
    op.execute("UPDATE referral SET diagnosis_code_resized = diagnosis_code")
    op.execute("ALTER TABLE referral DROP COLUMN diagnosis_code")
    op.execute("ALTER TABLE referral RENAME COLUMN diagnosis_code_resized TO diagnosis_code")


def upgrade() -> None:
    if _sqlite():
        _sqlite_resize_code(NEW_LENGTH)
        # the default fills the stored referrals: their edition was not recorded
        op.execute(
            "ALTER TABLE referral ADD COLUMN diagnosis_code_system VARCHAR(32) NOT NULL "
            f"DEFAULT 'unspecified' CONSTRAINT {CHECK} CHECK ({CHECK_SQL})"
        )
        op.add_column("referral", sa.Column("diagnosis_name", sa.String(200), nullable=True))
        op.add_column("referral", sa.Column("diagnosis_morphology", sa.String(16), nullable=True))
        return
    op.alter_column(
        "referral",
        "diagnosis_code",
        existing_type=sa.String(length=OLD_LENGTH),
        type_=sa.String(length=NEW_LENGTH),
        existing_nullable=False,
    )
    # the default fills the stored referrals: their edition was not recorded
    op.add_column(
        "referral",
        sa.Column(
            "diagnosis_code_system",
            sa.String(32),
            nullable=False,
            server_default=sa.text("'unspecified'"),
        ),
    )
    op.create_check_constraint(op.f(CHECK), "referral", CHECK_SQL)
    op.add_column("referral", sa.Column("diagnosis_name", sa.String(200), nullable=True))
    op.add_column("referral", sa.Column("diagnosis_morphology", sa.String(16), nullable=True))


def downgrade() -> None:
    longer = (
        op.get_bind()
        .execute(
            sa.text("SELECT count(*) FROM referral WHERE length(diagnosis_code) > :n"),
            {"n": OLD_LENGTH},
        )
        .scalar_one()
    )
    if longer:
        raise RuntimeError(
            f"{longer} referral(s) have diagnosis codes longer than {OLD_LENGTH} characters "
            "(national extension codes, dagger/asterisk pairs); revision 0008 cannot hold them "
            "and the downgrade stops rather than cut them."
        )
    if _sqlite():
        for column in ("diagnosis_morphology", "diagnosis_name", "diagnosis_code_system"):
            op.execute(f"ALTER TABLE referral DROP COLUMN {column}")
        _sqlite_resize_code(OLD_LENGTH)
        return
    op.drop_constraint(op.f(CHECK), "referral", type_="check")
    op.drop_column("referral", "diagnosis_morphology")
    op.drop_column("referral", "diagnosis_name")
    op.drop_column("referral", "diagnosis_code_system")
    op.alter_column(
        "referral",
        "diagnosis_code",
        existing_type=sa.String(length=NEW_LENGTH),
        type_=sa.String(length=OLD_LENGTH),
        existing_nullable=False,
    )
