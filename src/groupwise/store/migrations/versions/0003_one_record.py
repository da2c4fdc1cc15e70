"""one record of a trial: the config lives on the Optuna trial only; runs gain the worker's
pid, GPU ids and visible devices (before, only in the groupwise.run attribute)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 16:00:00.000000

Dropped columns were copies: ``groupwise_runs.config`` and ``.scheme`` of the trial's
``groupwise.config`` attribute, ``groupwise_groups.optimizer`` and ``.hyperparameters`` of
its groups. Nothing is lost: every groupwise that wrote them wrote the attribute in the
same transaction. Downgrading restores the columns and fills them back from the attribute.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("groupwise_runs") as runs:
        runs.drop_column("config")
        runs.drop_column("scheme")
        runs.add_column(sa.Column("pid", sa.Integer(), nullable=True))
        runs.add_column(sa.Column("gpu_ids", sa.JSON(), nullable=True))
        runs.add_column(sa.Column("visible_devices", sa.String(length=255), nullable=True))
    with op.batch_alter_table("groupwise_groups") as groups:
        groups.drop_column("optimizer")
        groups.drop_column("hyperparameters")


def downgrade() -> None:
    with op.batch_alter_table("groupwise_groups") as groups:
        groups.add_column(sa.Column("optimizer", sa.String(length=64), nullable=True))
        groups.add_column(sa.Column("hyperparameters", sa.JSON(), nullable=True))
    with op.batch_alter_table("groupwise_runs") as runs:
        runs.drop_column("visible_devices")
        runs.drop_column("gpu_ids")
        runs.drop_column("pid")
        runs.add_column(sa.Column("scheme", sa.String(length=255), nullable=True))
        runs.add_column(sa.Column("config", sa.JSON(), nullable=True))
    _refill(op.get_bind())


def _refill(connection: sa.Connection) -> None:
    """The dropped copies again, from each trial's ``groupwise.config`` attribute."""
    rows = connection.execute(
        sa.text(
            "SELECT r.id, a.value_json FROM groupwise_runs r "
            "JOIN studies s ON s.study_name = r.study "
            "JOIN trials t ON t.study_id = s.study_id AND t.number = r.trial_number "
            "JOIN trial_user_attributes a ON a.trial_id = t.trial_id "
            "AND a.key = 'groupwise.config'"
        )
    ).all()
    for run_id, value_json in rows:
        config = json.loads(json.loads(value_json))  # the attribute holds the JSON as a string
        scheme = config["scheme"]
        name = scheme if isinstance(scheme, str) else scheme["name"]
        connection.execute(
            sa.text("UPDATE groupwise_runs SET config = :c, scheme = :s WHERE id = :i"),
            {"c": json.dumps(config), "s": name, "i": run_id},
        )
        for label, group in config["groups"].items():
            settings = {k: v for k, v in group.items() if k != "optimizer"}
            connection.execute(
                sa.text(
                    "UPDATE groupwise_groups SET optimizer = :o, hyperparameters = :h "
                    "WHERE run_id = :i AND label = :l"
                ),
                {"o": group["optimizer"], "h": json.dumps(settings), "i": run_id, "l": label},
            )
