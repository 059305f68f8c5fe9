"""People to call: the referral's coordinators, and the notifier role of an SMS gateway.

``referral.contacts`` (JSON): the source's and the target's referral coordinators (name, phone,
HIS user), defaulting to the institutions' contacts; the patient's own phone is sealed with the
identity. ``api_key.role`` admits ``notifier``: a consortium's SMS gateway, which may read the
patient notices of the consortium's referrals and nothing else. ADD COLUMN and the CHECK
constraint in place on SQLite (the referral table is never recreated).

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-03 07:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.sqlite_schema import replace_check_constraint

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEFORE = ("clinic", "hospital", "council", "insurer", "admin")
AFTER = (*BEFORE, "notifier")


def _roles(roles: tuple[str, ...]) -> str:
    return "role IN (" + ", ".join(f"'{r}'" for r in roles) + ")"


def _set_roles(roles: tuple[str, ...]) -> None:
    if op.get_bind().dialect.name == "sqlite":
        replace_check_constraint("api_key", "ck_api_key_role", "ck_api_key_role", _roles(roles))
        return
    op.drop_constraint(op.f("ck_api_key_role"), "api_key", type_="check")
    op.create_check_constraint("role", "api_key", _roles(roles))


def upgrade() -> None:
    op.add_column("referral", sa.Column("contacts", sa.JSON(), nullable=True))
    _set_roles(AFTER)


def downgrade() -> None:
    op.execute("UPDATE api_key SET revoked_at = created_at WHERE role = 'notifier'")
    op.execute("DELETE FROM api_key WHERE role = 'notifier'")
    _set_roles(BEFORE)
    op.drop_column("referral", "contacts")
