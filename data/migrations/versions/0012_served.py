"""Households a monitor stands for (device.served): the power scenario's estimate of who is off.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

from data.migrate import run_sql_file

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op.get_bind(), "0012_served.sql")


def downgrade() -> None:
    run_sql_file(op.get_bind(), "0012_served_down.sql")
