"""jobs: studies submitted to the service

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 04:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "groupwise_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("runner", sa.String(length=255), nullable=True),
        sa.Column("stop_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_groupwise_jobs")),
        sa.UniqueConstraint("study", name=op.f("uq_groupwise_jobs_study")),
    )


def downgrade() -> None:
    op.drop_table("groupwise_jobs")
