"""Early warning: forecast, baseline and device-health rules, incident kinds, learned baselines.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

from data.migrate import SQL_DIR, run_sql_file

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op.get_bind(), "0006_foresight.sql")


def downgrade() -> None:
    run_sql_file(op.get_bind(), "0006_foresight_down.sql")
    op.execute(_landed_function("0004_access.sql", "incident_count("))
    op.execute(_landed_function("0002_reading_trigger.sql", "reading_after_insert("))


def _landed_function(name: str, signature: str) -> str:
    """A function as an earlier revision's frozen file defines it."""
    text = (SQL_DIR / name).read_text(encoding="utf-8")
    start = text.index(f"CREATE OR REPLACE FUNCTION {signature}")
    return text[start : text.index("END $$;", start) + len("END $$;")]
