"""Early warning: forecast, baseline and device-health rules, incident kinds, learned baselines.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

from data.migrate import run_sql_file

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op.get_bind(), "0006_foresight.sql")


def downgrade() -> None:
    run_sql_file(op.get_bind(), "0006_foresight_down.sql")
