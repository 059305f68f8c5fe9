"""Referral lifecycle: re-routing fields, deadlines, worklist indexes, append-only events.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 20:16:43.795852
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


PG_FUNCTION = """
CREATE OR REPLACE FUNCTION referral_event_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'referral events are append-only';
END;
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "signed_institution_ids", sa.JSON(), server_default=sa.text("'[]'"), nullable=False
            )
        )
        batch_op.add_column(sa.Column("patient_choice_id", sa.String(length=36), nullable=True))
        batch_op.add_column(
            sa.Column(
                "declined_institution_ids",
                sa.JSON(),
                server_default=sa.text("'[]'"),
                nullable=False,
            )
        )
        batch_op.add_column(
            sa.Column("priority", sa.Integer(), server_default=sa.text("3"), nullable=False)
        )
        batch_op.add_column(sa.Column("respond_by", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("acceptance", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_referral_consortium_status", ["consortium_id", "status", "priority"], unique=False
        )
        batch_op.create_index(
            "ix_referral_status_respond_by", ["status", "respond_by"], unique=False
        )
        batch_op.create_index(
            "ix_referral_worklist",
            ["target_institution_id", "priority", "created_at", "id"],
            unique=False,
        )

    with op.batch_alter_table("referral_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason_code", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("target_institution_id", sa.String(length=36), nullable=True))

    with op.batch_alter_table("routing_attempt", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_routing_attempt_target_institution_id"),
            ["target_institution_id"],
            unique=False,
        )

    # The audit trail is append-only: the database refuses UPDATE and DELETE of events.
    # (A later SQLite batch migration of referral_event recreates the table: re-create these.)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER referral_event_no_{verb.lower()} BEFORE {verb} ON referral_event "
                "FOR EACH ROW EXECUTE FUNCTION referral_event_append_only()"
            )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER referral_event_no_{verb.lower()} BEFORE {verb} ON referral_event "
                "BEGIN SELECT RAISE(ABORT, 'referral events are append-only'); END"
            )


def downgrade() -> None:
    for verb in ("update", "delete"):
        if op.get_bind().dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS referral_event_no_{verb} ON referral_event")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS referral_event_no_{verb}")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS referral_event_append_only()")
    with op.batch_alter_table("routing_attempt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_routing_attempt_target_institution_id"))

    with op.batch_alter_table("referral_event", schema=None) as batch_op:
        batch_op.drop_column("target_institution_id")
        batch_op.drop_column("reason_code")

    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.drop_index("ix_referral_worklist")
        batch_op.drop_index("ix_referral_status_respond_by")
        batch_op.drop_index("ix_referral_consortium_status")
        batch_op.drop_column("closed_at")
        batch_op.drop_column("accepted_at")
        batch_op.drop_column("acceptance")
        batch_op.drop_column("respond_by")
        batch_op.drop_column("priority")
        batch_op.drop_column("declined_institution_ids")
        batch_op.drop_column("patient_choice_id")
        batch_op.drop_column("signed_institution_ids")
