"""In-process flow tests of the prospect dialogue: the real app and poller against the emulator.
Each test feeds updates, waits until the bot is idle, then asserts replies, FSM state and rows."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.db.models import DialogueRun, FSMRecord, Lead, LeadEvent, OutboxMessage, Prospect
from tests.conftest import STAFF_CHAT, user

ALICE = user(1001, "Alice", "en")


class Chat:
    """A prospect talking to the bot."""

    def __init__(self, running: Any, client: Any, who: dict[str, Any]) -> None:
        self.running, self.client, self.user = running, client, who
        self.id = who["id"]

    async def say(self, text: str) -> dict[str, Any]:
        await self.client.send_text(self.user, text)
        await self.running.idle()
        return await self.last()

    async def command(self, command: str, payload: str | None = None) -> dict[str, Any]:
        await self.client.send_command(self.user, command, payload)
        await self.running.idle()
        return await self.last()

    async def press(self, label: str) -> dict[str, Any]:
        result = await self.client.press_button(self.user, self.id, label)
        await self.running.idle()
        self.last_answer = await self.client.callback_answer(result["callback_query_id"])
        return await self.last()

    async def send(self, **kind: Any) -> dict[str, Any]:
        self.running.emulator.inject_message(self.user, **kind)
        await self.running.idle()
        return await self.last()

    async def share_contact(self, phone: str, own: bool = True) -> dict[str, Any]:
        await self.client.share_contact(self.user, phone, own=own)
        await self.running.idle()
        return await self.last()

    async def last(self) -> dict[str, Any]:
        message = await self.client.last_bot_message(self.id)
        assert message is not None
        return message

    async def texts(self) -> list[str]:
        return [m.get("text", "") for m in await self.client.bot_messages(self.id)]

    async def state(self) -> tuple[str | None, dict[str, Any]]:
        async with self.running.session() as session:
            record = await session.scalar(select(FSMRecord).where(FSMRecord.key.contains(f":{self.id}:{self.id}")))
            return (record.state, record.data) if record else (None, {})


def buttons(message: dict[str, Any]) -> list[str]:
    markup = message.get("reply_markup") or {}
    rows = markup.get("inline_keyboard") or markup.get("keyboard") or []
    return [button["text"] for row in rows for button in row]


@pytest.fixture
def chat(running_app, client):
    return Chat(running_app, client, ALICE)


async def to_phone(chat: Chat, source: str | None = "ads_fb") -> None:
    first = await chat.command("/start", source)
    assert "Do you agree" in first["text"]
    assert "Privacy" in first["text"]
    await chat.press("I agree")
    await chat.say("Alice Smith")


async def complete(chat: Chat, *, b2b: bool = True, budget: str = "Over $20,000",
                   timeline: str = "As soon as possible") -> dict[str, Any]:
    await to_phone(chat)
    await chat.share_contact("+380671234567")
    await chat.say("alice@example.com")
    await chat.press("A custom project")
    await chat.press(budget)
    await chat.press(timeline)
    if b2b:
        await chat.press("Company")
        await chat.press("51–250")
        await chat.press("I make the decision")
    else:
        await chat.press("Private person")
    summary = await chat.say("Please call after 5 pm")
    assert "Please check your answers" in summary["text"]
    return summary


@contextlib.contextmanager
def statements_of(running: Any) -> Iterator[list[str]]:
    """The SQL the app runs meanwhile (the delivery worker's too), one line each."""
    from sqlalchemy import event

    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()))

    engine = running.app.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def the_lead(running: Any) -> Lead:
    async with running.session() as session:
        leads = (await session.scalars(select(Lead))).all()
        assert len(leads) == 1
        return leads[0]


async def test_full_dialogue_creates_a_scored_qualified_lead_and_posts_its_card(chat, running_app, client):
    summary = await complete(chat)
    assert "Alice Smith" in summary["text"] and "+380671234567" in summary["text"]
    assert "confirmed by Telegram" in summary["text"]
    thanks = await chat.press("Confirm")
    assert "Thank you" in thanks["text"]
    assert "📅 Book a demo" in buttons(thanks)

    lead = await the_lead(running_app)
    assert lead.source == "ads_fb" and lead.name == "Alice Smith"
    assert lead.phone == "+380671234567" and lead.phone_verified is True
    assert lead.email == "alice@example.com"
    assert lead.answers["budget"] == "gt_20k" and lead.answers["comment"] == "Please call after 5 pm"
    assert lead.stage == "qualified" and lead.score >= 50 and lead.band == "hot"
    assert lead.handoff_reason == "qualified"
    assert dict(map(tuple, lead.breakdown))["answer:budget=gt_20k"] == 30
    assert await chat.state() == (None, {})

    async with running_app.session() as session:
        kinds = (await session.scalars(select(LeadEvent.kind).where(LeadEvent.lead_id == lead.id)
                                       .order_by(LeadEvent.id))).all()
        run = await session.scalar(select(DialogueRun))
        card = await session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "card"))
    assert kinds[:2] == ["created", "score"] and "stage" in kinds and "handoff" in kinds
    assert run.completed_at is not None and run.lead_id == lead.id and run.source == "ads_fb"
    assert card.status == "sent"
    staff = await client.bot_messages(STAFF_CHAT)
    assert len(staff) == 1 and f"#{lead.id}" in staff[0]["text"]


async def test_low_intent_lead_goes_to_nurture_and_is_not_posted(chat, running_app, client):
    await complete(chat, b2b=False, budget="Under $1,000", timeline="Just exploring")
    await chat.press("Confirm")
    lead = await the_lead(running_app)
    assert lead.stage == "nurture" and lead.handed_off_at is None
    assert await client.bot_messages(STAFF_CHAT) == []


async def test_phone_step_offers_the_share_contact_button(chat):
    await to_phone(chat)
    prompt = await chat.last()
    keyboard = prompt["reply_markup"]["keyboard"]
    assert keyboard[0][0]["request_contact"] is True


async def test_someone_elses_contact_and_typed_numbers_are_unverified(chat, running_app):
    await to_phone(chat)
    reply = await chat.share_contact("+380671234567", own=False)
    assert any("not your own" in text for text in await chat.texts())
    _, data = await chat.state()
    assert data["answers"]["phone"] == "+380671234567" and data["verified"] is False
    assert "email" in reply["text"].lower()


async def test_typed_phone_is_normalised(chat):
    await to_phone(chat)
    await chat.say("+44 20 7946 0958")
    _, data = await chat.state()
    assert data["answers"]["phone"] == "+442079460958" and data["verified"] is False


@pytest.mark.parametrize(
    ("step_setup", "bad", "complaint"),
    [
        ("name", {"sticker": True}, "text answer"),
        ("name", {"photo": True}, "text answer"),
        ("name", {"voice": True}, "text answer"),
        ("name", {"location": {"latitude": 50.45, "longitude": 30.52}}, "text answer"),
        ("name", {"text": "x" * 101}, "too long"),
        ("phone", {"text": "not a phone"}, "valid phone"),
        ("phone", {"text": "+1 000"}, "valid phone"),
        ("phone", {"sticker": True}, "Share my phone number"),
        ("email", {"text": "alice@"}, "valid email"),
        ("email", {"photo": True}, "text answer"),
        ("need", {"text": "a custom project please"}, "buttons"),
        ("need", {"sticker": True}, "buttons"),
        ("consent", {"text": "yes"}, "buttons"),
    ],
)
async def test_bad_input_reprompts_and_loses_nothing(chat, step_setup, bad, complaint):
    await chat.command("/start")
    if step_setup != "consent":
        await chat.press("I agree")
    if step_setup in ("phone", "email", "need"):
        await chat.say("Alice")
    if step_setup in ("email", "need"):
        await chat.share_contact("+380671234567")
    if step_setup == "need":
        await chat.say("alice@example.com")
    _, before = await chat.state()
    reply = await chat.send(**bad)
    assert complaint in reply["text"]
    state, after = await chat.state()
    assert state == "Flow:step"
    assert after["step"] == step_setup == before["step"]
    assert after["answers"] == before["answers"]


async def test_over_long_comment_is_refused_with_the_limit(chat):
    await complete(chat)
    await chat.press("Edit")
    await chat.press("Comment")
    reply = await chat.say("y" * 1001)
    assert "1,000 characters" in reply["text"]  # Fluent formats numbers for the locale
    _, data = await chat.state()
    assert data["answers"]["comment"] == "Please call after 5 pm"


async def test_a_button_from_an_old_step_changes_nothing(chat, client):
    await to_phone(chat)
    await chat.share_contact("+380671234567")
    await chat.say("alice@example.com")
    await chat.press("A custom project")
    _, before = await chat.state()
    # press the "need" keyboard again (an old message)
    messages = await client.bot_messages(chat.id)
    old = next(m for m in messages if "A custom project" in str(m.get("reply_markup") or "") or
               "A custom project" in m.get("text", ""))
    await client.press(ALICE, chat.id, old["message_id"], "a:need:0")
    await chat.running.idle()
    _, after = await chat.state()
    assert after == before


async def test_back_button_returns_to_the_previous_question_keeping_answers(chat):
    await to_phone(chat)
    await chat.share_contact("+380671234567")
    await chat.say("alice@example.com")
    await chat.press("A custom project")
    budget = await chat.last()
    assert "⬅️ Back" in buttons(budget)
    back = await chat.press("Back")
    assert "A custom project" in buttons(back)
    _, data = await chat.state()
    assert data["step"] == "need" and data["answers"]["need"] == "custom_project"
    async with chat.running.session() as session:
        run = await session.scalar(select(DialogueRun))
    # the drop-off record: where they are now, and the furthest they got (Back does not lower it)
    assert (run.last_step, run.max_step_index) == ("need", 5)
    assert run.completed_at is None and run.declined is False


async def test_email_can_be_skipped(chat):
    await to_phone(chat)
    await chat.share_contact("+380671234567")
    await chat.press("Skip")
    _, data = await chat.state()
    assert data["step"] == "need" and "email" not in data["answers"]


async def test_edit_jumps_to_a_step_and_returns_to_the_summary(chat, running_app):
    await complete(chat, b2b=False)
    await chat.press("Edit")
    await chat.press("Budget")
    summary = await chat.press("$1,000–5,000")
    assert "Please check your answers" in summary["text"] and "$1,000–5,000" in summary["text"]
    await chat.press("Confirm")
    lead = await the_lead(running_app)
    assert lead.answers["budget"] == "1k_5k"


async def test_an_edit_that_reveals_new_questions_asks_them(chat):
    await complete(chat, b2b=False)
    await chat.press("Edit")
    await chat.press("Customer type")
    nxt = await chat.press("Company")
    assert "1–10" in buttons(nxt)  # company size is now asked
    await chat.press("11–50")
    summary = await chat.press("I influence the decision")
    assert "Please check your answers" in summary["text"]


async def test_declining_consent_stores_nothing_personal(chat, running_app):
    await chat.command("/start")
    reply = await chat.press("No, thanks")
    assert "won't store anything" in reply["text"]
    async with running_app.session() as session:
        prospect = await session.scalar(select(Prospect))
        assert prospect.first_name is None and prospect.username is None and prospect.name is None
        assert await session.scalar(select(func.count()).select_from(Lead)) == 0
        run = await session.scalar(select(DialogueRun))
    assert run.declined is True and (run.last_step, run.max_step_index) == ("consent", 0)
    assert await chat.state() == (None, {})


async def test_invalid_deep_link_payload_is_stored_as_direct(chat, running_app):
    await chat.command("/start", "bad payload!")
    async with running_app.session() as session:
        run = await session.scalar(select(DialogueRun))
    assert run.source == "direct"


async def test_cancel_restart_and_help(chat):
    await to_phone(chat)
    help_ = await chat.command("/help")
    assert "/restart" in help_["text"]
    restarted = await chat.command("/restart")
    assert "Do you agree" in restarted["text"]
    cancelled = await chat.command("/cancel")
    assert "Cancelled" in cancelled["text"]
    assert await chat.state() == (None, {})


async def test_start_in_the_middle_resumes(chat):
    await to_phone(chat)
    reply = await chat.command("/start")
    assert "phone" in reply["text"].lower()
    _, data = await chat.state()
    assert data["answers"]["name"] == "Alice Smith"


async def test_returning_prospect_is_greeted_by_name_and_updates_the_same_lead(chat, running_app):
    await complete(chat)
    await chat.press("Confirm")
    greeting = await chat.command("/start")
    assert "Welcome back, Alice Smith" in greeting["text"]
    summary = await chat.press("Update my request")
    assert "Please check your answers" in summary["text"]
    await chat.press("Edit")
    await chat.press("Timeline")
    await chat.press("This month")
    await chat.press("Confirm")
    lead = await the_lead(running_app)  # still exactly one lead
    assert lead.answers["timeline"] == "this_month"


async def test_ukrainian_user_gets_ukrainian_and_language_switch_is_remembered(running_app, client):
    olena = Chat(running_app, client, user(1002, "Olena", "uk"))
    first = await olena.command("/start")
    assert "Чи погоджуєтеся" in first["text"]
    await olena.command("/language")
    await olena.press("English")
    again = await olena.command("/help")
    assert "/manager" in again["text"] and "Ви відповідаєте" not in again["text"]
    async with running_app.session() as session:
        prospect = await session.scalar(select(Prospect).where(Prospect.tg_id == 1002))
    assert prospect.locale == "en"


async def test_manager_request_mid_dialogue_hands_off_at_once_and_confirm_updates_that_lead(
        chat, running_app, client):
    await to_phone(chat)
    reply = await chat.command("/manager")
    assert "phone" in reply["text"].lower()  # the dialogue goes on at the same step
    staff = await client.bot_messages(STAFF_CHAT)
    assert len(staff) == 1
    lead = await the_lead(running_app)
    assert lead.handoff_reason == "manager"
    await chat.share_contact("+380671234567")
    await chat.say("alice@example.com")
    for label in ("A custom project", "Over $20,000", "As soon as possible", "Private person"):
        await chat.press(label)
    await chat.press("Skip")
    await chat.press("Confirm")
    lead = await the_lead(running_app)
    assert lead.phone == "+380671234567" and lead.answers["budget"] == "gt_20k"
    assert len(await client.bot_messages(STAFF_CHAT)) == 1  # the card was edited, not posted again


async def test_manager_before_consent_asks_for_consent_first(chat, running_app, client):
    await chat.command("/start")
    reply = await chat.command("/manager")
    assert "consent" in reply["text"]
    await chat.press("I agree")
    lead = await the_lead(running_app)
    assert lead.handoff_reason == "manager"


async def test_a_returning_prospect_who_writes_instead_of_choosing_reaches_the_managers(chat, running_app, client):
    await complete(chat)
    await chat.press("Confirm")
    await chat.command("/start")
    await chat.say("Can someone call me today?")
    await running_app.idle()
    staff = await client.bot_messages(STAFF_CHAT)
    assert any("Can someone call me today?" in m.get("text", "") for m in staff)
    assert await chat.state() == (None, {})


async def test_an_answer_reads_what_it_needs_in_one_statement(chat, running_app):
    """The update's markers, the prospect and their FSM row come from one SELECT (bot.middlewares
    FIRST_READ); the answer is still stored, and the next question asked."""
    await to_phone(chat)
    await chat.share_contact("+380671234567")
    with statements_of(running_app) as statements:
        asked = await chat.say("alice@example.com")
    assert "A custom project" in buttons(asked)
    _, data = await chat.state()
    assert data["answers"]["email"] == "alice@example.com" and data["step"] == "need"
    # (the delivery worker, in the same process, looks at the outbox meanwhile)
    reads = [s for s in statements if s.startswith("SELECT") and "outbox" not in s]
    assert len(reads) == 1, reads
    for table in ("processed_updates", "processed_messages", "prospects", "fsm_states"):
        assert table in reads[0]


async def test_a_new_lead_is_placed_without_looking_up_its_stage_rows(chat, running_app):
    """The confirmation creates the lead and places it by score in one transaction: its stage_reached rows
    (entered "new", left it for "qualified") are written without a SELECT of them (bot.services.leads
    NEW_LEADS), and they are the same rows as ever."""
    from bot.db.models import StageReached

    await complete(chat)
    with statements_of(running_app) as statements:
        await chat.press("Confirm")
    assert not [s for s in statements if s.startswith("SELECT") and "FROM stage_reached" in s]
    lead = await the_lead(running_app)
    assert lead.stage == "qualified"
    async with running_app.session() as session:
        rows = {row.stage: row for row in await session.scalars(select(StageReached))}
    assert set(rows) == {"new", "qualified"}
    assert rows["new"].left_at == rows["qualified"].reached_at and rows["qualified"].left_at is None
    assert rows["new"].reached_at == lead.created_at == rows["new"].lead_created_at
