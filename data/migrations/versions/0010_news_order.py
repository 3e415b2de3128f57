"""Walls learn of new incidents in commit order (each row records the transaction that wrote it).

Revision ID: 0010
Revises: 0009
"""

from alembic import op

from data.migrate import run_sql_file

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op.get_bind(), "0010_news_order.sql")


def downgrade() -> None:
    run_sql_file(op.get_bind(), "0010_news_order_down.sql")
