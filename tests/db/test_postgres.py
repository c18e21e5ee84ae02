"""The services on PostgreSQL (asyncpg): lead creation, compare-and-set under real row locks, the FSM
storage, aware datetimes, 64-bit Telegram ids, constraints - and one whole dialogue through the app."""
from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from aiogram.fsm.storage.base import StorageKey
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.engine import create_engine, create_schema, create_session_factory
from bot.db.models import (
    DialogueRun,
    KeyValue,
    Lead,
    LeadEvent,
    OutboxMessage,
    ProcessedMessage,
    ProcessedUpdate,
    Prospect,
    StageReached,
)
from bot.outbox import enqueue_send
from bot.roles import StaffChat
from bot.storage import SQLAlchemyStorage, current_session
from funnel import Funnel, load_funnel
from funnel.model import DEFAULT_FUNNEL_PATH
from tests.conftest import STAFF_CHAT, RunningApp, user
from tests.db.conftest import assert_cas_races, new_lead, prospect_fields

pytestmark = pytest.mark.postgres

BIG_TG_ID = 8_123_456_789  # Telegram user ids no longer fit 32 bits
SUPERGROUP = -1_001_987_654_321


@pytest.fixture
async def factory(pg_url) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(pg_url)
    assert engine.dialect.name == "postgresql" and engine.dialect.driver == "asyncpg"
    await create_schema(engine)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture(scope="module")
def funnel() -> Funnel:
    return load_funnel(DEFAULT_FUNNEL_PATH)


async def test_submit_creates_a_scored_lead_for_a_prospect(factory, funnel):
    lead_id = await new_lead(factory, funnel, BIG_TG_ID)
    async with factory() as session:
        lead = await session.get(Lead, lead_id)
        prospect = await session.get(Prospect, lead.prospect_id)
        assert prospect.tg_id == BIG_TG_ID and lead.tg_id == BIG_TG_ID
        assert lead.source == "ads_fb" and lead.name == "Ann Lee" and lead.phone_verified is True
        assert lead.answers["budget"] == "gt_20k" and lead.answers["comment"] == "call after 5"
        assert lead.stage == "qualified" and lead.band == "hot" and lead.score >= 50
        assert lead.handoff_reason == "qualified" and lead.handed_off_at.tzinfo is UTC
        assert lead.dialogue_seconds == 42.5 and lead.signals == []
        assert isinstance(lead.breakdown, list) and lead.breakdown
        kinds = (await session.scalars(select(LeadEvent.kind).where(LeadEvent.lead_id == lead_id)
                                       .order_by(LeadEvent.id))).all()
        assert kinds == ["created", "score", "stage", "handoff"]
        reached = (await session.scalars(select(StageReached.stage).where(StageReached.lead_id == lead_id)
                                         .order_by(StageReached.reached_at))).all()
        assert set(reached) == {"new", "qualified"}
        card = await session.scalar(select(OutboxMessage).where(OutboxMessage.lead_id == lead_id))
        assert card.kind == "card" and card.status == "pending" and card.chat_id is None

        # a returning prospect updates the open lead instead of opening a second one
        from bot.services.leads import submit

        again = await submit(session, funnel, prospect, {"need": "product", "comment": "any news?"},
                             source="direct", locale="en", lead_id=lead_id)
        await session.commit()
        assert not again.created and again.lead.id == lead_id
        assert await session.scalar(select(func.count()).select_from(Lead)) == 1


async def test_move_stage_and_assign_races_have_exactly_one_winner(factory, funnel):
    """Two sessions on two connections: PostgreSQL blocks the second UPDATE on the row lock, then
    re-evaluates its WHERE against the committed row - the compare-and-set sees the move."""
    await assert_cas_races(factory, funnel)


async def test_fsm_storage_round_trip(factory):
    storage = SQLAlchemyStorage(factory)
    key = StorageKey(bot_id=123456, chat_id=BIG_TG_ID, user_id=BIG_TG_ID)
    data = {"step": "phone", "answers": {"name": "Зоряна 🌟", "need": "product"}, "verified": False,
            "started": 1_700_000_000.25, "history": [1, 2, 3], "nothing": None}
    await storage.set_state(key, "Dialogue:step")
    await storage.set_data(key, data)
    assert await storage.get_state(key) == "Dialogue:step"
    assert await storage.get_data(key) == data
    assert await storage.update_data(key, {"x": 1}) == {**data, "x": 1}
    assert await storage.get_data(key) == {**data, "x": 1}

    async with factory() as session:  # inside an update: joins its transaction, rolled back with it
        token = current_session.set(session)
        await storage.set_state(key, "Dialogue:summary")
        await storage.set_data(key, {})
        await session.rollback()
        current_session.reset(token)
    assert await storage.get_state(key) == "Dialogue:step"
    assert await storage.get_data(key) == {**data, "x": 1}

    await storage.set_state(key, None)
    await storage.set_data(key, {})
    assert await storage.get_state(key) is None and await storage.get_data(key) == {}
    assert await storage.all_keys() == [storage.key_builder.build(key)]


async def test_aware_datetimes_round_trip_as_utc(factory):
    kyiv_summer = timezone(timedelta(hours=3))
    moment = datetime(2024, 7, 1, 23, 30, 15, 123456, tzinfo=kyiv_summer)
    async with factory() as session:
        prospect = Prospect(**prospect_fields(BIG_TG_ID), consent_at=moment)
        session.add(prospect)
        await session.commit()
        stored = (await session.execute(text("SELECT consent_at::text FROM prospects"))).scalar_one()
    assert stored == "2024-07-01 20:30:15.123456"  # naive UTC in the column
    async with factory() as session:
        prospect = await session.scalar(select(Prospect))
        assert prospect.consent_at == moment and prospect.consent_at.tzinfo is UTC
        assert prospect.created_at.tzinfo is UTC
        assert abs(prospect.created_at - datetime.now(UTC)) < timedelta(minutes=5)
        # comparisons bind aware values through the same type
        found = await session.scalar(select(func.count()).select_from(Prospect).where(
            Prospect.consent_at >= datetime(2024, 7, 1, 20, 30, tzinfo=UTC),
            Prospect.consent_at < datetime(2024, 7, 2, tzinfo=kyiv_summer)))
        assert found == 1
        prospect.forgotten_at = datetime(2024, 7, 1, 12, 0)  # naive: refused
        with pytest.raises(StatementError, match="naive datetime"):
            await session.flush()


async def test_64_bit_ids_longest_values_and_money(factory, funnel):
    lead_id = await new_lead(factory, funnel, BIG_TG_ID)
    async with factory() as session:
        lead = await session.get(Lead, lead_id)
        lead.card_chat_id, lead.card_message_id = SUPERGROUP, 2**31 + 5
        lead.manager_id, lead.manager_name = 7_999_999_999, "M" * 128
        lead.handoff_reason = "signal:" + "s" * 32  # the longest funnel key
        lead.amount = Decimal("123456789012.34")
        session.add(LeadEvent(lead_id=lead_id, kind="unreachable", actor_id=7_999_999_999,
                              actor_name="A" * 128, reason="signal:" + "s" * 32, data={"big": 2**53}))
        session.add(ProcessedUpdate(update_id=2**40))
        session.add(ProcessedMessage(chat_id=SUPERGROUP, message_id=2**33))
        await session.commit()
    async with factory() as session:
        lead = await session.get(Lead, lead_id)
        assert (lead.card_chat_id, lead.card_message_id) == (SUPERGROUP, 2**31 + 5)
        assert lead.amount == Decimal("123456789012.34")
        assert await session.get(ProcessedMessage, (SUPERGROUP, 2**33)) is not None
        assert (await session.scalar(select(LeadEvent.data).where(LeadEvent.kind == "unreachable"))) == {
            "big": 2**53}


async def test_outbox_dedupe_key_is_unique_but_nulls_are_not(factory):
    async with factory() as session:
        for _ in range(3):
            enqueue_send(session, BIG_TG_ID, "hello")  # no dedupe key: any number of rows
        enqueue_send(session, BIG_TG_ID, "digest", dedupe_key="digest:2024-07-01:900")
        await session.commit()
    async with factory() as session:  # another replica queues the same digest: refused
        enqueue_send(session, BIG_TG_ID, "digest", dedupe_key="digest:2024-07-01:900")
        with pytest.raises(IntegrityError):
            await session.commit()
        await session.rollback()
        # PostgreSQL aborts the whole transaction on an error: the session is usable after rollback
        assert await session.scalar(select(func.count()).select_from(OutboxMessage)) == 4


async def test_key_value_and_staff_chat_migration_survive_a_restart(factory):
    staff = StaffChat(SUPERGROUP)
    async with factory() as session:
        await staff.migrate(session, SUPERGROUP - 1)
        await session.commit()
    async with factory() as session:  # twice: merge updates the existing row
        await staff.migrate(session, SUPERGROUP - 2)
        await session.commit()
    restarted = StaffChat(SUPERGROUP)
    await restarted.load(factory)
    assert restarted.id == SUPERGROUP - 2
    async with factory() as session:
        assert (await session.get(KeyValue, StaffChat.KEY)).value == {"from": SUPERGROUP, "to": SUPERGROUP - 2}


async def test_a_whole_dialogue_on_postgres(make_settings, emulator, client, pg_url):
    """The app, its middlewares, the FSM on the database and the delivery worker, on PostgreSQL."""
    from bot.app import create_app
    from tests.dialogue.test_dialogue_flow import Chat, complete

    app = await create_app(make_settings(database_url=pg_url))
    assert app.engine.dialect.name == "postgresql"
    running = RunningApp(app, emulator)
    await running.start()
    try:
        chat = Chat(running, client, user(BIG_TG_ID, "Alice", "en"))
        summary = await complete(chat)
        assert "Alice Smith" in summary["text"]
        thanks = await chat.press("Confirm")
        assert "Thank you" in thanks["text"]
        assert await chat.state() == (None, {})
        async with running.session() as session:
            lead = await session.scalar(select(Lead))
            prospect = await session.get(Prospect, lead.prospect_id)
            run = await session.scalar(select(DialogueRun))
            card = await session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "card"))
            counts: dict[str, Any] = {
                "leads": await session.scalar(select(func.count()).select_from(Lead)),
                "updates": await session.scalar(select(func.count()).select_from(ProcessedUpdate)),
            }
        assert counts["leads"] == 1 and counts["updates"] >= 12
        assert prospect.tg_id == BIG_TG_ID and prospect.consent_at is not None
        assert lead.tg_id == BIG_TG_ID and lead.source == "ads_fb" and lead.name == "Alice Smith"
        assert lead.phone == "+380671234567" and lead.phone_verified is True and lead.email == "alice@example.com"
        assert lead.answers["budget"] == "gt_20k" and lead.answers["comment"] == "Please call after 5 pm"
        assert lead.stage == "qualified" and lead.band == "hot" and lead.handoff_reason == "qualified"
        assert lead.dialogue_seconds is not None and lead.created_at.tzinfo is UTC
        assert run.completed_at is not None and run.lead_id == lead.id
        assert card.status == "sent" and card.message_id is not None
        staff = await client.bot_messages(STAFF_CHAT)
        assert len(staff) == 1 and f"#{lead.id}" in staff[0]["text"]
    finally:
        await running.stop()


async def test_a_button_press_on_postgres_is_one_read_and_one_write(make_settings, emulator, client, pg_url):
    """A press in the middle of the dialogue: its first read (markers, prospect, FSM row) and its last
    writes (the run's progress, the update's marker, the FSM row) as one statement each (`bot.db.tail`),
    with no BEGIN and no COMMIT (`bot.db.first_read`): two round trips, and every one of those writes is
    in the database after."""
    from bot.app import create_app
    from tests.dialogue.test_dialogue_flow import Chat, statements_of, to_phone

    app = await create_app(make_settings(database_url=pg_url, database_pool_size=4))
    assert app.engine.pool.size() == 4  # DATABASE_POOL_SIZE
    running = RunningApp(app, emulator)
    await running.start()
    try:
        chat = Chat(running, client, user(BIG_TG_ID, "Alice", "en"))
        await to_phone(chat)
        await chat.share_contact("+380671234567")
        await chat.say("alice@example.com")
        async with running.session() as session:
            updates_before = await session.scalar(select(func.count()).select_from(ProcessedUpdate))
            before = await session.scalar(select(DialogueRun))
        assert before.last_step == "need"
        autocommit: list[tuple[str, bool]] = []  # after each statement: was its connection in autocommit?

        def after(conn, cursor, sql, *args):  # type: ignore[no-untyped-def]
            autocommit.append((sql, conn.connection.dbapi_connection.autocommit))

        event.listen(app.engine.sync_engine, "after_cursor_execute", after)
        with statements_of(running) as statements:
            asked = await chat.press("A custom project")
        event.remove(app.engine.sync_engine, "after_cursor_execute", after)
        assert "Over $20,000" in str(asked)
        # neither the read nor the writes began a transaction: no BEGIN, nothing for COMMIT to send
        assert [on for sql, on in autocommit if "outbox" not in sql] == [True, True]
        ours = [s for s in statements if "outbox" not in s]  # the delivery worker looks at the outbox meanwhile
        assert len(ours) == 2, ours
        assert ours[0].startswith("SELECT") and "fsm_states" in ours[0]
        assert ours[1].startswith("WITH w0 AS (UPDATE dialogue_runs") and "INSERT INTO processed_updates" in ours[1]
        assert "UPDATE fsm_states" in ours[1]
        state, data = await chat.state()
        assert state == "Flow:step" and data["step"] == "budget" and data["answers"]["need"] == "custom_project"
        async with running.session() as session:
            run = await session.scalar(select(DialogueRun))
            assert run.last_step == "budget" and run.max_step_index == before.max_step_index + 1
            assert await session.scalar(select(func.count()).select_from(ProcessedUpdate)) == updates_before + 1
    finally:
        await running.stop()
