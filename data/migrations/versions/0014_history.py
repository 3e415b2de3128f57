"""History for replay (回放): status changes by street and cell, units' tracks, incident severities.

Revision ID: 0014
Revises: 0013
"""

from alembic import op

from data.migrate import run_sql_file

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op.get_bind(), "0014_history.sql")


def downgrade() -> None:
    run_sql_file(op.get_bind(), "0014_history_down.sql")
    # the status snapshot as revision 0005 wrote it, without history
    run_sql_file(op.get_bind(), "0005_status.sql")
