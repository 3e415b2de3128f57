"""Scenarios (专题) and events: one parent event for the incidents that belong together.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

from data.migrate import run_sql_file

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op.get_bind(), "0009_events.sql")


def downgrade() -> None:
    run_sql_file(op.get_bind(), "0009_events_down.sql")
