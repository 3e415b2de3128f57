"""The live city: ingest sources and tokens, dead letters, incident rules and their state.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from data.migrate import run_sql_file

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op.get_bind(), "003_live.sql")
    run_sql_file(op.get_bind(), "reading_trigger.sql")


def downgrade() -> None:
    op.execute(
        "DROP TABLE IF EXISTS rule_inbox, rule_state, incident_rule, dead_letter, ingest_token,"
        " ingest_source CASCADE"
    )
    op.execute("ALTER TABLE device_type DROP COLUMN valid_min, DROP COLUMN valid_max")
