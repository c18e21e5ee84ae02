"""Alembic environment, configured in code by `bot.db.migrate` (there is no alembic.ini).

`bot.db.migrate` hands over an open connection (``config.attributes["connection"]``) that already holds
the migration lock inside its transaction; the migrations run in that transaction. Without one (e.g.
`alembic` pointed here by hand) an engine is made from ``sqlalchemy.url``.
"""
from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

from bot.db.migrate import load_metadata, render_item

config = context.config
target_metadata = load_metadata()


def _options() -> dict[str, Any]:
    return {
        "target_metadata": target_metadata,
        # one revision file serves SQLite and PostgreSQL: ALTERs are rendered as batch operations
        "render_as_batch": True,
        "compare_type": True,
        "render_item": render_item,
    }


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True,
                      dialect_opts={"paramstyle": "named"}, **_options())
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    context.configure(connection=connection, **_options())
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    from bot.db.engine import create_engine

    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url: use `python -m bot.db.migrate`")
    asyncio.run(_run_with_own_engine(url))


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
