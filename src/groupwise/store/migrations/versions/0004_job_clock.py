"""a job's clock: its first submission and start are kept through resubmissions and server
restarts; its elapsed time is what its launches ran (run_s, and the running one's start)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 17:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("groupwise_jobs") as jobs:
        jobs.add_column(sa.Column("resubmitted_at", sa.DateTime(timezone=True), nullable=True))
        jobs.add_column(sa.Column("run_started_at", sa.DateTime(timezone=True), nullable=True))
        jobs.add_column(sa.Column("run_s", sa.Float(), nullable=False, server_default="0"))
    # a job running now: its launch started when the job last did
    op.execute(
        "UPDATE groupwise_jobs SET run_started_at = started_at "
        "WHERE state IN ('running', 'stopping')"
    )


def downgrade() -> None:
    with op.batch_alter_table("groupwise_jobs") as jobs:
        jobs.drop_column("run_s")
        jobs.drop_column("run_started_at")
        jobs.drop_column("resubmitted_at")
