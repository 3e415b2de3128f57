"""The map context layer (rivers, coast, metro) drawn faintly under the data.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

from data.migrate import run_sql_file

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op.get_bind(), "0008_map_context.sql")


def downgrade() -> None:
    run_sql_file(op.get_bind(), "0008_map_context_down.sql")
