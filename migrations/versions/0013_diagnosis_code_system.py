"""Diagnosis codes kept as sent with their edition: longer codes, code system, name, morphology.

Existing referrals keep their code as stored and get the code system ``unspecified`` (the
edition was not recorded when they were made).

Revision ID: 0013
Revises: 0008
Create Date: 2026-12-02 14:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SYSTEMS = ("gb_t_14396_2016", "clinical_2_0", "insurance_2_0", "unspecified")
OLD_LENGTH = 16


def upgrade() -> None:
    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.alter_column(
            "diagnosis_code",
            existing_type=sa.String(length=OLD_LENGTH),
            type_=sa.String(length=32),
            existing_nullable=False,
        )
        batch_op.add_column(sa.Column("diagnosis_code_system", sa.String(32), nullable=True))
        batch_op.add_column(sa.Column("diagnosis_name", sa.String(200), nullable=True))
        batch_op.add_column(sa.Column("diagnosis_morphology", sa.String(16), nullable=True))
    op.execute("UPDATE referral SET diagnosis_code_system = 'unspecified'")
    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.alter_column("diagnosis_code_system", existing_type=sa.String(32), nullable=False)
        batch_op.create_check_constraint(
            op.f("ck_referral_diagnosis_code_system"),
            "diagnosis_code_system IN (" + ", ".join(f"'{s}'" for s in SYSTEMS) + ")",
        )


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
    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_referral_diagnosis_code_system"), type_="check")
        batch_op.drop_column("diagnosis_morphology")
        batch_op.drop_column("diagnosis_name")
        batch_op.drop_column("diagnosis_code_system")
        batch_op.alter_column(
            "diagnosis_code",
            existing_type=sa.String(length=32),
            type_=sa.String(length=OLD_LENGTH),
            existing_nullable=False,
        )
