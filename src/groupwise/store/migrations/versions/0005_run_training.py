"""how each run trained: precision, gradient accumulation, clip norm, total steps, compile
(and the seconds torch.compile took), as the run's facts

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 19:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("groupwise_runs") as runs:
        runs.add_column(sa.Column("training", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("groupwise_runs") as runs:
        runs.drop_column("training")
