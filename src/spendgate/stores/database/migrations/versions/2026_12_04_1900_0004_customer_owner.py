"""end_customers.team_id / organization_id: the tenant a customer belongs to

A request may name its customer in the body (``user``, ``metadata.user_id``), as LiteLLM
allows. A customer that belongs to a team or an organization may then be billed only by
keys of that team or organization, so one tenant cannot spend another tenant's customer's
budget. Both columns are nullable: an existing customer belongs to nobody (any key may
name it, as before) until an admin sets its owner.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 19:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("end_customers") as batch:
        batch.add_column(sa.Column("team_id", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("organization_id", sa.String(length=255), nullable=True))
        batch.create_foreign_key(op.f("fk_end_customers_team_id_teams"), "teams", ["team_id"], ["team_id"])
        batch.create_foreign_key(
            op.f("fk_end_customers_organization_id_organizations"),
            "organizations",
            ["organization_id"],
            ["organization_id"],
        )
        batch.create_index(op.f("ix_end_customers_team_id"), ["team_id"])
        batch.create_index(op.f("ix_end_customers_organization_id"), ["organization_id"])


def downgrade() -> None:
    with op.batch_alter_table("end_customers") as batch:
        batch.drop_index(op.f("ix_end_customers_organization_id"))
        batch.drop_index(op.f("ix_end_customers_team_id"))
        batch.drop_constraint(op.f("fk_end_customers_organization_id_organizations"), type_="foreignkey")
        batch.drop_constraint(op.f("fk_end_customers_team_id_teams"), type_="foreignkey")
        batch.drop_column("organization_id")
        batch.drop_column("team_id")
