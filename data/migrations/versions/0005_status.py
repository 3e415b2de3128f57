"""Status snapshots in one pass over the devices, rewriting only the rows whose counts changed.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

from data.migrate import run_sql_file, run_sql_function

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op.get_bind(), "0005_status.sql")


def downgrade() -> None:
    run_sql_function(op.get_bind(), "0001_functions.sql", function="refresh_status")
