"""runs, epochs and groups

Revision ID: 0001
Revises: (none: the first groupwise table)
Create Date: 2026-11-21 09:13:41.210988
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


# long: the whole first schema, as Alembic lists it; splitting it would hide the order
def upgrade() -> None:
    op.create_table(
        "groupwise_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study", sa.String(length=512), nullable=False),
        sa.Column("trial_number", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("retry_of", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("driver", sa.String(length=255), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("node", sa.String(length=255), nullable=True),
        sa.Column("device", sa.String(length=64), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("wall_s", sa.Float(), nullable=True),
        sa.Column("peak_memory_bytes", sa.BigInteger(), nullable=True),
        sa.Column("scheme", sa.String(length=255), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("duplicate_of", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_groupwise_runs")),
        sa.UniqueConstraint("study", "trial_number", name=op.f("uq_groupwise_runs_study")),
    )
    with op.batch_alter_table("groupwise_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_groupwise_runs_study"), ["study"], unique=False)

    op.create_table(
        "groupwise_epochs",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("train_loss", sa.Float(), nullable=False),
        sa.Column("val_loss", sa.Float(), nullable=True),
        sa.Column("metric", sa.Float(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("lrs", sa.JSON(), nullable=False),
        sa.Column("elapsed_s", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["groupwise_runs.id"],
            name=op.f("fk_groupwise_epochs_run_id_groupwise_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "epoch", name=op.f("pk_groupwise_epochs")),
    )
    op.create_table(
        "groupwise_groups",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=255), nullable=False),
        sa.Column("optimizer", sa.String(length=64), nullable=False),
        sa.Column("hyperparameters", sa.JSON(), nullable=False),
        sa.Column("parameter_names", sa.JSON(), nullable=False),
        sa.Column("parameter_count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["groupwise_runs.id"],
            name=op.f("fk_groupwise_groups_run_id_groupwise_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "label", name=op.f("pk_groupwise_groups")),
    )


def downgrade() -> None:
    op.drop_table("groupwise_groups")
    op.drop_table("groupwise_epochs")
    with op.batch_alter_table("groupwise_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_groupwise_runs_study"))

    op.drop_table("groupwise_runs")
