"""The incident timeline's handling lines from quarter-hour counters, not every handling event.

Revision ID: 0017
Revises: 0016
"""

from alembic import op

from data.migrate import run_sql_file

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op.get_bind(), "0017_handling_counters.sql")


def downgrade() -> None:
    run_sql_file(op.get_bind(), "0017_handling_counters_down.sql")
