"""Initial schema: geography, devices, partitioned readings, rollups, status, incidents.

Revision ID: 0001
Revises:
"""

from alembic import op

from data.migrate import run_sql_file

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op.get_bind(), "001_schema.sql")
    # the trigger function's text is shared with later revisions (they replace it)
    run_sql_file(op.get_bind(), "reading_trigger.sql")
    run_sql_file(op.get_bind(), "002_functions.sql")


def downgrade() -> None:
    op.execute(
        "DROP TABLE IF EXISTS incident_event, incident, incident_live, incident_daily,"
        " cell_status, street_status,"
        " rollup_district_daily, rollup_district_type_1h, rollup_street_15m, device_latest,"
        " reading, device, device_type, device_category, grid_cell, street, district,"
        " city_outline, app_meta CASCADE"
    )
