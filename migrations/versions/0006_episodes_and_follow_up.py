"""Episodes, down-referral follow-up, referral links (episode, parent referral).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 20:38:02.844673
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "episode",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("consortium_id", sa.String(length=36), nullable=False),
        sa.Column("resident_id_hmac", sa.String(length=64), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["consortium_id"], ["consortium.id"], name=op.f("fk_episode_consortium_id_consortium")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_episode")),
    )
    with op.batch_alter_table("episode", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_episode_resident_id_hmac"), ["resident_id_hmac"], unique=False
        )

    op.create_table(
        "follow_up",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("referral_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("done_at", sa.Date(), nullable=True),
        sa.Column("visit_date", sa.Date(), nullable=True),
        sa.Column("adherence", sa.String(length=16), nullable=True),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("author_institution_id", sa.String(length=36), nullable=True),
        sa.Column("author_user", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referral.id"],
            name=op.f("fk_follow_up_referral_id_referral"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_follow_up")),
    )
    with op.batch_alter_table("follow_up", schema=None) as batch_op:
        batch_op.create_index(
            "ix_follow_up_open_due", ["kind", "done_at", "due_date"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_follow_up_referral_id"), ["referral_id"], unique=False)

    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.add_column(sa.Column("episode_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("parent_referral_id", sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f("ix_referral_episode_id"), ["episode_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_referral_episode_id"))
        batch_op.drop_column("parent_referral_id")
        batch_op.drop_column("episode_id")

    with op.batch_alter_table("follow_up", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_follow_up_referral_id"))
        batch_op.drop_index("ix_follow_up_open_due")

    op.drop_table("follow_up")
    with op.batch_alter_table("episode", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_episode_resident_id_hmac"))

    op.drop_table("episode")
