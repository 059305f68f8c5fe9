"""Patient sex stored as its GB/T 2261.1 code (0 unknown, 1 male, 2 female, 9 unstated).

Stored words are converted: male -> 1, female -> 2, unknown -> 0. The downgrade converts back
(9 unstated becomes unknown, the old set having no such word). Identity documents other than the
resident ID need no column: the document lives in the sealed ``referral.sensitive`` and episodes
match on ``resident_id_hmac``, which keeps HMAC(number) for resident IDs, so nothing is re-keyed.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 14:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.sqlite_schema import replace_check_constraint

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UP = (("male", "1"), ("female", "2"), ("unknown", "0"))
_DOWN = (("1", "male"), ("2", "female"), ("0", "unknown"), ("9", "unknown"))


def _convert(pairs: tuple[tuple[str, str], ...]) -> None:
    referral = sa.table("referral", sa.column("patient_sex", sa.String))
    for old, new in pairs:
        op.execute(referral.update().where(referral.c.patient_sex == old).values(patient_sex=new))


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    if _sqlite():  # in place: a batch copy of referral would cascade to its append-only events
        replace_check_constraint(
            "referral",
            "ck_referral_sex",
            "ck_referral_sex_code",
            "patient_sex IN ('0', '1', '2', '9')",
        )
        _convert(_UP)
        return
    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_referral_sex"), type_="check")
    _convert(_UP)
    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.create_check_constraint("sex_code", "patient_sex IN ('0', '1', '2', '9')")


def downgrade() -> None:
    if _sqlite():
        replace_check_constraint(
            "referral",
            "ck_referral_sex_code",
            "ck_referral_sex",
            "patient_sex IN ('male', 'female', 'unknown')",
        )
        _convert(_DOWN)
        return
    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_referral_sex_code"), type_="check")
    _convert(_DOWN)
    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.create_check_constraint("sex", "patient_sex IN ('male', 'female', 'unknown')")
