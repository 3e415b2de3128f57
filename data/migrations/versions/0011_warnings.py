"""Warning levels IV → I per scenario for each district and the city (rules as data, overrides).

Revision ID: 0011
Revises: 0010
"""

from alembic import op

from data.migrate import run_sql_file

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op.get_bind(), "0011_warnings.sql")


def downgrade() -> None:
    run_sql_file(op.get_bind(), "0011_warnings_down.sql")
