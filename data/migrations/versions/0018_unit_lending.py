"""The city lends its reserve units from the web: the web role may change lent_to, only when it
serves the whole city, and only city units are lent; loans are in the units' history, and a
replay shows them as they were.

Revision ID: 0018
Revises: 0017
"""

from alembic import op

from data.migrate import function_text, run_sql_file

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op.get_bind(), "0018_unit_lending.sql")


def downgrade() -> None:
    # resource_then as 0014 left it (it reads no column 0018 added), then the rest undone
    op.execute(function_text("0014_history.sql", "resource_then"))
    run_sql_file(op.get_bind(), "0018_unit_lending_down.sql")
