"""Consortium registry: specialties, consortia, institutions, partners, API keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 19:44:49.959567
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "consortium",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("name_en", sa.String(length=200), nullable=True),
        sa.Column(
            "kind",
            sa.Enum(
                "county_medical_community",
                "urban_medical_group",
                "specialty_alliance",
                "telemedicine_network",
                name="consortium_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("close_knit", sa.Boolean(), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=True),
        sa.Column("referral_prefix", sa.String(length=8), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consortium")),
        sa.UniqueConstraint("code", name=op.f("uq_consortium_code")),
        sa.UniqueConstraint("referral_prefix", name=op.f("uq_consortium_referral_prefix")),
    )
    op.create_table(
        "specialty",
        sa.Column("code", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("name_en", sa.String(length=100), nullable=False),
        sa.Column("parent_code", sa.String(length=8), nullable=True),
        sa.ForeignKeyConstraint(
            ["parent_code"], ["specialty.code"], name=op.f("fk_specialty_parent_code_specialty")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_specialty")),
    )
    with op.batch_alter_table("specialty", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_specialty_parent_code"), ["parent_code"], unique=False)

    op.create_table(
        "institution",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("name_en", sa.String(length=200), nullable=True),
        sa.Column(
            "level",
            sa.Enum(
                "village",
                "primary",
                "secondary",
                "tertiary",
                name="institution_level",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "type",
            sa.Enum(
                "general",
                "tcm",
                "maternal_child",
                "ethnic",
                "specialty",
                name="institution_type",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("region_code", sa.String(length=12), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("location_approximate", sa.Boolean(), nullable=False),
        sa.Column("consortium_id", sa.String(length=36), nullable=True),
        sa.Column("is_lead", sa.Boolean(), nullable=False),
        sa.Column("contact_name", sa.String(length=100), nullable=True),
        sa.Column("contact_phone", sa.String(length=40), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("generated_name", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["consortium_id"],
            ["consortium.id"],
            name=op.f("fk_institution_consortium_id_consortium"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_institution")),
        sa.UniqueConstraint("code", name=op.f("uq_institution_code")),
    )
    with op.batch_alter_table("institution", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_institution_consortium_id"), ["consortium_id"], unique=False
        )
        batch_op.create_index("ix_institution_level_name", ["level", "name"], unique=False)
        batch_op.create_index(
            "uq_institution_one_lead_per_consortium",
            ["consortium_id"],
            unique=True,
            sqlite_where=sa.text("is_lead"),
            postgresql_where=sa.text("is_lead"),
        )

    op.create_table(
        "api_key",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "clinic",
                "hospital",
                "council",
                "insurer",
                "admin",
                name="role",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("institution_id", sa.String(length=36), nullable=True),
        sa.Column("consortium_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["consortium_id"], ["consortium.id"], name=op.f("fk_api_key_consortium_id_consortium")
        ),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institution.id"],
            name=op.f("fk_api_key_institution_id_institution"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_key_prefix")),
    )
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_api_key_consortium_id"), ["consortium_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_api_key_institution_id"), ["institution_id"], unique=False
        )

    op.create_table(
        "consortium_partner",
        sa.Column("consortium_id", sa.String(length=36), nullable=False),
        sa.Column("institution_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["consortium_id"],
            ["consortium.id"],
            name=op.f("fk_consortium_partner_consortium_id_consortium"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institution.id"],
            name=op.f("fk_consortium_partner_institution_id_institution"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "consortium_id", "institution_id", name=op.f("pk_consortium_partner")
        ),
    )
    op.create_table(
        "institution_centre",
        sa.Column("institution_id", sa.String(length=36), nullable=False),
        sa.Column(
            "centre",
            sa.Enum(
                "chest_pain",
                "stroke",
                "trauma",
                "critical_maternal",
                "critical_neonatal",
                name="centre",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institution.id"],
            name=op.f("fk_institution_centre_institution_id_institution"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("institution_id", "centre", name=op.f("pk_institution_centre")),
    )
    op.create_table(
        "institution_specialty",
        sa.Column("institution_id", sa.String(length=36), nullable=False),
        sa.Column("specialty_code", sa.String(length=8), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institution.id"],
            name=op.f("fk_institution_specialty_institution_id_institution"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["specialty_code"],
            ["specialty.code"],
            name=op.f("fk_institution_specialty_specialty_code_specialty"),
        ),
        sa.PrimaryKeyConstraint(
            "institution_id", "specialty_code", name=op.f("pk_institution_specialty")
        ),
    )
    with op.batch_alter_table("institution_specialty", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_institution_specialty_specialty_code"), ["specialty_code"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("institution_specialty", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_institution_specialty_specialty_code"))

    op.drop_table("institution_specialty")
    op.drop_table("institution_centre")
    op.drop_table("consortium_partner")
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_key_institution_id"))
        batch_op.drop_index(batch_op.f("ix_api_key_consortium_id"))

    op.drop_table("api_key")
    with op.batch_alter_table("institution", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_institution_one_lead_per_consortium",
            sqlite_where=sa.text("is_lead"),
            postgresql_where=sa.text("is_lead"),
        )
        batch_op.drop_index("ix_institution_level_name")
        batch_op.drop_index(batch_op.f("ix_institution_consortium_id"))

    op.drop_table("institution")
    with op.batch_alter_table("specialty", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_specialty_parent_code"))

    op.drop_table("specialty")
    op.drop_table("consortium")
