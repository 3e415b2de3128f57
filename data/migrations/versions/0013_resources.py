"""Resources and dispatch: crews, vehicles, facilities, travel model, playbooks and their tasks.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

from data.migrate import run_sql_file

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op.get_bind(), "0013_resources.sql")


def downgrade() -> None:
    run_sql_file(op.get_bind(), "0013_resources_down.sql")
