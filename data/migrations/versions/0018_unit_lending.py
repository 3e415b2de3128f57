"""The city lends its reserve units from the web: the web role may change lent_to, only when it
serves the whole city, and only city units are lent.

Revision ID: 0018
Revises: 0017
"""

from alembic import op

from data.migrate import run_sql_file

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op.get_bind(), "0018_unit_lending.sql")


def downgrade() -> None:
    run_sql_file(op.get_bind(), "0018_unit_lending_down.sql")
