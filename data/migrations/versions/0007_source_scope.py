"""Ingest tokens bound to categories × districts (or a device), and their MQTT login.

Tokens made before this revision keep the reach they had (a device, or the whole city): see
data/sql/0007_source_scope.sql for why, and `tokens list` to find and replace them.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

from data.migrate import run_sql_file

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op.get_bind(), "0007_source_scope.sql")


def downgrade() -> None:
    run_sql_file(op.get_bind(), "0007_source_scope_down.sql")
