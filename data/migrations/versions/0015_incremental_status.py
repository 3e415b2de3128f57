"""The status snapshot from what changed: device_counted, due rechecks and device triggers.

Revision ID: 0015
Revises: 0014
"""

from alembic import op

from data.migrate import function_text, run_sql_file

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op.get_bind(), "0015_incremental_status.sql")


def downgrade() -> None:
    # the functions as 0014 left them, which read nothing 0015 added; status_window() goes last
    op.execute("DROP FUNCTION refresh_status(timestamptz, integer)")
    op.execute(function_text("0014_history.sql", "refresh_status"))
    run_sql_file(op.get_bind(), "0015_incremental_status_down.sql")
    op.execute(function_text("0006_foresight.sql", "reading_after_insert"))
    op.execute("DROP FUNCTION IF EXISTS status_window(integer)")
