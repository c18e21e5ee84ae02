from aiogram.fsm.storage.base import StorageKey

from bot.db.engine import create_engine, create_schema, create_session_factory
from bot.storage import SQLAlchemyStorage, current_session

KEY = StorageKey(bot_id=1, chat_id=10, user_id=10)


async def make_storage(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/s.db")
    await create_schema(engine)
    return engine, SQLAlchemyStorage(create_session_factory(engine))


async def test_state_and_data_survive_a_new_storage(tmp_path):
    engine, storage = await make_storage(tmp_path)
    await storage.set_state(KEY, "Flow:step")
    await storage.set_data(KEY, {"step": "phone", "answers": {"name": "Ann"}})
    await engine.dispose()
    engine, storage = await make_storage(tmp_path)  # a restarted process
    assert await storage.get_state(KEY) == "Flow:step"
    assert await storage.get_data(KEY) == {"step": "phone", "answers": {"name": "Ann"}}
    assert await storage.update_data(KEY, {"x": 1}) == {"step": "phone", "answers": {"name": "Ann"}, "x": 1}
    await storage.set_state(KEY, None)
    assert await storage.get_state(KEY) is None
    await engine.dispose()


async def test_inside_an_update_the_storage_joins_its_transaction(tmp_path):
    engine, storage = await make_storage(tmp_path)
    factory = create_session_factory(engine)
    async with factory() as session:
        token = current_session.set(session)
        await storage.set_state(KEY, "Flow:summary")
        await session.rollback()  # the handler failed: the state change is rolled back with it
        current_session.reset(token)
    assert await storage.get_state(KEY) is None
    async with factory() as session:
        token = current_session.set(session)
        await storage.set_state(KEY, "Flow:summary")
        await session.commit()
        current_session.reset(token)
    assert await storage.get_state(KEY) == "Flow:summary"
    await engine.dispose()


async def test_empty_records_are_not_created(tmp_path):
    engine, storage = await make_storage(tmp_path)
    await storage.set_state(KEY, None)
    await storage.set_data(KEY, {})
    assert await storage.all_keys() == []
    await engine.dispose()


async def test_old_dedupe_keys_are_pruned(tmp_path):
    from datetime import timedelta

    from bot.db.models import ProcessedMessage, ProcessedUpdate, utcnow
    from bot.maintenance import prune

    engine, _ = await make_storage(tmp_path)
    factory = create_session_factory(engine)
    now = utcnow()
    async with factory() as session, session.begin():
        session.add_all([
            ProcessedUpdate(update_id=1, processed_at=now - timedelta(days=3)),
            ProcessedUpdate(update_id=2, processed_at=now - timedelta(hours=1)),
            ProcessedMessage(chat_id=5, message_id=1, processed_at=now - timedelta(days=3)),
        ])
    assert await prune(factory, now) == 2
    async with factory() as session:
        assert await session.get(ProcessedUpdate, 2) is not None
        assert await session.get(ProcessedUpdate, 1) is None
    await engine.dispose()


async def test_a_key_is_read_once_and_written_once_per_update(tmp_path):
    """aiogram reads and sets the state and data several times an update: one SELECT, and one UPDATE at the
    commit carrying both."""
    from sqlalchemy import event

    from bot.db.models import FSMRecord

    engine, storage = await make_storage(tmp_path)
    factory = create_session_factory(engine)
    await storage.set_state(KEY, "Flow:name")
    async with factory() as session:
        [key] = await storage.all_keys()
        before = (await session.get(FSMRecord, key)).updated_at
    statements: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute",
                 lambda conn, cursor, sql, *args: statements.append(sql.split()[0]))
    async with factory() as session:
        token = current_session.set(session)
        for step in ("phone", "email"):
            assert await storage.get_state(KEY) in ("Flow:name", "Flow:phone")
            await storage.update_data(KEY, {"step": step})
            await storage.set_state(KEY, f"Flow:{step}")
        assert statements == ["SELECT"]  # nothing written before the commit
        await session.commit()
        current_session.reset(token)
    assert statements == ["SELECT", "UPDATE"]
    assert await storage.get_state(KEY) == "Flow:email"
    assert await storage.get_data(KEY) == {"step": "email"}
    async with factory() as session:
        assert (await session.get(FSMRecord, key)).updated_at > before
    await engine.dispose()


async def test_a_rolled_back_update_leaves_no_stale_state_in_its_session(tmp_path):
    engine, storage = await make_storage(tmp_path)
    factory = create_session_factory(engine)
    await storage.set_state(KEY, "Flow:name")
    async with factory() as session:
        token = current_session.set(session)
        await storage.set_state(KEY, "Flow:summary")
        await session.rollback()
        assert await storage.get_state(KEY) == "Flow:name"  # read again, not the rolled-back value
        await storage.set_data(KEY, {"a": 1})
        await session.commit()
        current_session.reset(token)
    assert await storage.get_state(KEY) == "Flow:name"
    assert await storage.get_data(KEY) == {"a": 1}
    await engine.dispose()
