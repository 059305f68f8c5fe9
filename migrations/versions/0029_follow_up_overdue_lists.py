"""Overdue follow-up lists from an index; the council's worklist by status in worklist order.

``follow_up`` gets copies of its down-referral's ``consortium_id``, ``source_institution_id``
(the hospital) and ``target_institution_id`` (the primary institution following the patient,
the referral's current target), and ``live``: the referral is accepted, arrived or in
follow-up. The service keeps them in the transaction of every change of the referral's target
or state (app/db/repositories/episodes.py ``sync_follow_ups``). One partial index per list
(the primary institution's, the hospital's, the council's and the admin's), over the open
planned visits of live referrals only, in list order (due date, id). Stored follow-ups are
filled from their referrals.

``ix_referral_consortium_status`` (consortium, status, priority) becomes
``ix_referral_consortium_status_worklist`` (consortium, status, priority, created_at, id): the
council's page of one status (and each status of several) is one range of it in worklist
order, as an institution's is of ``ix_referral_target_status_worklist``; the waitlist
queries that used the old index use its prefix. (Indexes only: on SQLite the referral table
is never copied.)

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-03 09:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "ix_follow_up_overdue_target": ["target_institution_id", "due_date", "id"],
    "ix_follow_up_overdue_source": ["source_institution_id", "due_date", "id"],
    "ix_follow_up_overdue_consortium": ["consortium_id", "due_date", "id"],
    "ix_follow_up_overdue_all": ["due_date", "id"],
}


BATCH = 50_000
FILL = sa.text(
    "UPDATE follow_up AS f SET consortium_id = r.consortium_id,"
    " source_institution_id = r.source_institution_id,"
    " target_institution_id = r.target_institution_id,"
    " live = r.status IN ('accepted', 'arrived', 'in_follow_up')"
    " FROM referral AS r WHERE r.id = f.referral_id AND f.id > :after"
    " AND (CAST(:upto AS varchar) IS NULL OR f.id <= :upto)"
)


def _fill_in_batches() -> None:
    """PostgreSQL: stored follow-ups in id ranges of ``BATCH`` rows, so that no statement
    runs into the service's statement and command timeouts whatever the table size."""
    bind = op.get_bind()
    after = ""
    while True:
        upto = bind.execute(
            sa.text("SELECT id FROM follow_up WHERE id > :after ORDER BY id OFFSET :n LIMIT 1"),
            {"after": after, "n": BATCH - 1},
        ).scalar()
        bind.execute(FILL, {"after": after, "upto": upto})
        if upto is None:
            return
        after = upto


def upgrade() -> None:
    op.add_column("follow_up", sa.Column("consortium_id", sa.String(length=36), nullable=True))
    op.add_column(
        "follow_up", sa.Column("source_institution_id", sa.String(length=36), nullable=True)
    )
    op.add_column(
        "follow_up", sa.Column("target_institution_id", sa.String(length=36), nullable=True)
    )
    op.add_column(
        "follow_up",
        sa.Column("live", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        _fill_in_batches()
    else:
        op.execute(
            "UPDATE follow_up SET"
            " consortium_id = (SELECT r.consortium_id FROM referral r"
            "  WHERE r.id = follow_up.referral_id),"
            " source_institution_id = (SELECT r.source_institution_id FROM referral r"
            "  WHERE r.id = follow_up.referral_id),"
            " target_institution_id = (SELECT r.target_institution_id FROM referral r"
            "  WHERE r.id = follow_up.referral_id),"
            " live = (SELECT r.status IN ('accepted', 'arrived', 'in_follow_up') FROM referral r"
            "  WHERE r.id = follow_up.referral_id)"
        )
    for name, columns in INDEXES.items():
        op.create_index(
            name,
            "follow_up",
            columns,
            unique=False,
            postgresql_where=sa.text("live AND done_at IS NULL"),
            sqlite_where=sa.text("live = 1 AND done_at IS NULL"),
        )
    op.create_index(
        "ix_referral_consortium_status_worklist",
        "referral",
        ["consortium_id", "status", "priority", "created_at", "id"],
        unique=False,
    )
    op.drop_index("ix_referral_consortium_status", table_name="referral")


def downgrade() -> None:
    op.create_index(
        "ix_referral_consortium_status",
        "referral",
        ["consortium_id", "status", "priority"],
        unique=False,
    )
    op.drop_index("ix_referral_consortium_status_worklist", table_name="referral")
    for name in reversed(INDEXES):
        op.drop_index(name, table_name="follow_up")
    with op.batch_alter_table("follow_up", schema=None) as batch_op:
        batch_op.drop_column("live")
        batch_op.drop_column("target_institution_id")
        batch_op.drop_column("source_institution_id")
        batch_op.drop_column("consortium_id")
