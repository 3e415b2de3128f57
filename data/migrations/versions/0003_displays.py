"""Video walls and kiosks: display tokens and saved wall playlists.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

from data.migrate import run_sql_file

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op.get_bind(), "004_displays.sql")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS display_token, wall_playlist")
