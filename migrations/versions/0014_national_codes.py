"""National code sets: insurance schemes stored as 险种类型 codes; institution identifiers and grade.

Converts referral.insurance_scheme and the `terms` keys of stored reimbursement policies from the
service's old words to the national codes (downgrade converts back; codes the old words cannot
express, such as 320, are refused by the downgrade rather than lost silently).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 15:00:00.000000
"""

import json
import re
from collections.abc import Mapping, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WORD_TO_CODE: Mapping[str, str] = {
    "employee_basic": "310",
    "urban_rural_resident": "390",
    "urban_resident_legacy": "391",
    "new_rural_cooperative_legacy": "380",
}
CODE_TO_WORD: Mapping[str, str] = {v: k for k, v in WORD_TO_CODE.items()}
OLD_VALUES = (*WORD_TO_CODE, "self_pay")
NEW_VALUES = (
    "310", "320", "330", "340", "350", "360", "370", "380",
    "390", "391", "392", "399", "410", "510", "self_pay",
)  # fmt: skip
_CK = "ck_referral_insurance_scheme"


def _check_sql(values: Sequence[str]) -> str:
    return "insurance_scheme IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def _swap_check(values: Sequence[str]) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        # SQLite cannot alter a CHECK constraint, and rebuilding the referral table would
        # cascade-delete its children (foreign keys are on inside the migration's transaction).
        # SQLite's documented procedure for changing a constraint in place: rewrite the table's
        # stored SQL and bump schema_version (https://sqlite.org/lang_altertable.html, 7).
        sql = bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'referral'"
        ).scalar_one()
        new_sql, count = re.subn(
            rf"CONSTRAINT {_CK} CHECK \(insurance_scheme IN \([^)]*\)\)",
            f"CONSTRAINT {_CK} CHECK ({_check_sql(values)})",
            sql,
        )
        if count != 1:
            raise RuntimeError(f"{_CK} not found in the referral table's SQL")
        version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
        bind.exec_driver_sql("PRAGMA writable_schema = ON")
        bind.exec_driver_sql(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'referral'",
            (new_sql,),
        )
        bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
        bind.exec_driver_sql("PRAGMA writable_schema = OFF")
    else:
        op.drop_constraint(op.f(_CK), "referral", type_="check")
        op.create_check_constraint(op.f(_CK), "referral", _check_sql(values))


def _convert_referrals(mapping: Mapping[str, str]) -> None:
    referral = sa.table("referral", sa.column("insurance_scheme", sa.String))
    for old, new in mapping.items():
        op.execute(
            referral.update().where(referral.c.insurance_scheme == old).values(insurance_scheme=new)
        )


def _convert_policies(mapping: Mapping[str, str]) -> None:
    policy = sa.table("reimbursement_policy", sa.column("id"), sa.column("document", sa.JSON))
    bind = op.get_bind()
    for row in bind.execute(sa.select(policy.c.id, policy.c.document)).all():
        document = row.document if isinstance(row.document, dict) else json.loads(row.document)
        terms = document.get("terms")
        if not isinstance(terms, dict):
            continue
        document = {**document, "terms": {mapping.get(k, k): v for k, v in terms.items()}}
        bind.execute(policy.update().where(policy.c.id == row.id).values(document=document))


#: both sets, while stored rows are converted from one to the other
BOTH_VALUES = (*WORD_TO_CODE, *NEW_VALUES)


def upgrade() -> None:
    _swap_check(BOTH_VALUES)
    _convert_referrals(WORD_TO_CODE)
    _swap_check(NEW_VALUES)
    _convert_policies(WORD_TO_CODE)
    with op.batch_alter_table("institution", schema=None) as batch_op:
        batch_op.add_column(sa.Column("uscc", sa.String(length=18), nullable=True))
        batch_op.add_column(sa.Column("licence_number", sa.String(length=22), nullable=True))
        batch_op.add_column(sa.Column("insurance_code", sa.String(length=12), nullable=True))
        batch_op.add_column(sa.Column("grade", sa.String(length=16), nullable=True))
        batch_op.create_index("uq_institution_uscc", ["uscc"], unique=True)
        batch_op.create_index("uq_institution_licence_number", ["licence_number"], unique=True)
        batch_op.create_index("uq_institution_insurance_code", ["insurance_code"], unique=True)


def downgrade() -> None:
    for name in (
        "uq_institution_insurance_code",
        "uq_institution_licence_number",
        "uq_institution_uscc",
    ):
        op.drop_index(name, table_name="institution")
    for column in ("grade", "insurance_code", "licence_number", "uscc"):
        op.execute(f"ALTER TABLE institution DROP COLUMN {column}")
    _convert_policies(CODE_TO_WORD)
    _swap_check(BOTH_VALUES)
    _convert_referrals(CODE_TO_WORD)
    referral = sa.table("referral", sa.column("insurance_scheme", sa.String))
    left = op.get_bind().execute(
        sa.select(sa.func.count())
        .select_from(referral)
        .where(referral.c.insurance_scheme.not_in(OLD_VALUES))
    )
    if left.scalar_one():
        # Stop rather than rewrite a patient's scheme into a word that does not name it.
        raise RuntimeError("referrals under schemes the old words cannot name (e.g. 320)")
    _swap_check(OLD_VALUES)
