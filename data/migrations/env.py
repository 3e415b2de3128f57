"""Alembic environment: migrations run on the connection `data.migrate` hands over."""

from alembic import context

from data.migrate import after_step

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `python cli.py db upgrade`, not bare alembic")

# after_step: what a landed downgrade leaves behind is put right (data/migrate.py)
context.configure(
    connection=connection, transaction_per_migration=True, on_version_apply=after_step
)
with context.begin_transaction():
    context.run_migrations()
