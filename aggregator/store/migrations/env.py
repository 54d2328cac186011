"""Alembic environment: runs on the connection Store.migrate hands over, or (alembic CLI) on DATABASE_URL."""

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection

from aggregator.store.engine import create_store_engine, database_url
from aggregator.store.tables import UTCDateTime, metadata


def render_item(type_: str, obj: Any, _autogen_context: AutogenContext) -> str | Literal[False]:
    # migrations must not import application code: the UTC conversion is Python-side, the column a plain one
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations(connection: Connection) -> None:
    # batch mode: SQLite has almost no ALTER TABLE, so alterations are rendered as copy-and-rename
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


shared_connection = context.config.attributes.get("connection")
if shared_connection is not None:
    run_migrations(shared_connection)
else:
    engine = create_store_engine(database_url())
    with engine.connect() as connection:
        run_migrations(connection)
    engine.dispose()
