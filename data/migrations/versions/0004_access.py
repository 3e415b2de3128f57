"""Access control and incident handling: users, sessions, audit log, teams, assignment,
acknowledgement counters, the web role and row-level security.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

from data.migrate import SQL_DIR, run_sql_file

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCOPED_TABLES = (
    "incident",
    "incident_event",
    "device",
    "reading",
    "device_latest",
    "rollup_street_15m",
    "rollup_district_type_1h",
    "rollup_district_daily",
    "street_status",
    "cell_status",
    "incident_live",
    "incident_daily",
    "audit_log",
)


def upgrade() -> None:
    run_sql_file(op.get_bind(), "005_access.sql")


def downgrade() -> None:
    for table in SCOPED_TABLES:
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
        op.execute(f"DROP POLICY IF EXISTS web_read ON {table}")
    op.execute("DROP POLICY IF EXISTS web_handle ON incident")
    op.execute("DROP POLICY IF EXISTS web_record ON incident_event")
    op.execute("DROP POLICY IF EXISTS web_write ON audit_log")
    # the role stays: other databases of the cluster may use it; it owns nothing here
    op.execute("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM onescreen_web")
    op.execute("REVOKE ALL ON SCHEMA public FROM onescreen_web")
    op.execute("DROP FUNCTION IF EXISTS onescreen_scope_allows(text), onescreen_can_act()")
    op.execute(_original_incident_count())
    op.execute("ALTER FUNCTION incident_counters() SECURITY INVOKER RESET search_path")
    op.execute("GRANT EXECUTE ON FUNCTION incident_count(incident, integer) TO PUBLIC")
    op.execute(
        "ALTER TABLE incident_daily DROP COLUMN acknowledged, DROP COLUMN acknowledge_seconds"
    )
    op.execute("ALTER TABLE incident DROP COLUMN assignee")
    op.execute("ALTER TABLE incident_event DROP COLUMN assignee")
    op.execute(
        "DROP TABLE IF EXISTS audit_log, login_failure, user_session, team, app_user_district,"
        " app_user"
    )


def _original_incident_count() -> str:
    """The counters function as revision 0001 defined it."""
    text = (SQL_DIR / "002_functions.sql").read_text(encoding="utf-8")
    start = text.index("CREATE OR REPLACE FUNCTION incident_count(")
    return text[start : text.index("END $$;", start) + len("END $$;")]
