"""Status snapshots in one pass over the devices, rewriting only the rows whose counts changed.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

from data.migrate import SQL_DIR, run_sql_file

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op.get_bind(), "006_status.sql")


def downgrade() -> None:
    op.execute(_original_refresh_status())


def _original_refresh_status() -> str:
    """refresh_status() as revision 0001 defined it."""
    text = (SQL_DIR / "002_functions.sql").read_text(encoding="utf-8")
    start = text.index("CREATE OR REPLACE FUNCTION refresh_status(")
    return text[start : text.index("END $$;", start) + len("END $$;")]
