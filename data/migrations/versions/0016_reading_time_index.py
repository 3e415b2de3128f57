"""A BRIN index on reading time: the newest readings found without reading the day.

Revision ID: 0016
Revises: 0015
"""

from alembic import op

from data.migrate import run_sql_file

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op.get_bind(), "0016_reading_time_index.sql")


def downgrade() -> None:
    run_sql_file(op.get_bind(), "0016_reading_time_index_down.sql")
