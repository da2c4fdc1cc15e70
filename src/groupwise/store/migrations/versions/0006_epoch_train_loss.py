"""an epoch's train loss may be missing: a function task (the user's own training) reports the
metrics it has, and evaluation-only reports (the HF Trainer's) carry no train loss

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 23:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("groupwise_epochs") as epochs:
        epochs.alter_column("train_loss", existing_type=sa.Float(), nullable=True)


def downgrade() -> None:
    # an epoch without a train loss has nothing the old schema can hold (SQLite stores no NaN)
    missing = (
        op.get_bind()
        .execute(sa.text("SELECT COUNT(*) FROM groupwise_epochs WHERE train_loss IS NULL"))
        .scalar()
    )
    if missing:
        raise RuntimeError(
            f"cannot downgrade below 0006: {missing} epochs (of function tasks) have no train "
            "loss, which the older schema requires; delete those studies first"
        )
    with op.batch_alter_table("groupwise_epochs") as epochs:
        epochs.alter_column("train_loss", existing_type=sa.Float(), nullable=False)
