"""End to end: the real `python -m bot` process against the emulator over HTTP, as Telegram would."""
from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from bot.db.models import Lead, ProcessedMessage
from tests.conftest import STAFF_CHAT, user

pytestmark = pytest.mark.e2e
BOB = user(2001, "Bob", "en")


async def ready(emulator: Any, process: Any, since: int = 0, timeout: float = 60) -> None:
    """The bot is up once it long-polls."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if emulator.calls(since=since, method="getUpdates"):
            return
        if process.proc.poll() is not None:
            raise AssertionError(f"the bot exited with {process.proc.returncode}:\n{process.output()}")
        await asyncio.sleep(0.05)
    raise AssertionError(f"the bot did not start polling:\n{process.output()}")


class Prospect:
    """A prospect; every action waits until the bot has handled (committed and confirmed) it — the
    emulator then holds no unconfirmed update — and returns the bot's last message in the chat."""

    def __init__(self, client: Any, who: dict[str, Any], emulator: Any) -> None:
        self.client, self.user, self.id, self.emulator = client, who, who["id"], emulator

    async def reply_to(self, action: Any, timeout: float = 20) -> dict[str, Any]:
        await action
        await wait_for(lambda: self.emulator.pending_count() == 0, timeout)
        message = await self.client.last_bot_message(self.id)
        assert message is not None
        return message

    async def say(self, text: str) -> dict[str, Any]:
        return await self.reply_to(self.client.send_text(self.user, text))

    async def command(self, command: str, payload: str | None = None) -> dict[str, Any]:
        return await self.reply_to(self.client.send_command(self.user, command, payload))

    async def press(self, label: str) -> dict[str, Any]:
        return await self.reply_to(self.client.press_button(self.user, self.id, label))

    async def share_contact(self, phone: str) -> dict[str, Any]:
        return await self.reply_to(self.client.share_contact(self.user, phone))

    async def send(self, **kind: Any) -> dict[str, Any]:
        async def inject() -> None:
            self.emulator.inject_message(self.user, **kind)

        return await self.reply_to(inject())


async def wait_for(predicate: Any, timeout: float = 15) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


def leads(tmp_path: Any) -> list[Lead]:
    engine = create_engine(f"sqlite:///{tmp_path}/leadbot.db")
    with Session(engine) as session:
        rows = list(session.scalars(select(Lead)).all())
    engine.dispose()
    return rows


async def test_a_prospect_completes_the_dialogue_against_the_real_process(emulator, client, bot_process, tmp_path):
    process = bot_process()
    await ready(emulator, process)
    bob = Prospect(client, BOB, emulator)
    assert "Do you agree" in (await bob.command("/start", "ads_google"))["text"]
    assert "name" in (await bob.press("I agree"))["text"]
    await bob.say("Bob Brown")
    await bob.share_contact("+14155552671")
    await bob.say("bob@example.com")
    for label in ("A product or service", "Over $20,000", "As soon as possible", "Company", "51–250",
                  "I make the decision"):
        await bob.press(label)
    summary = await bob.press("Skip")
    assert "Please check your answers" in summary["text"]
    thanks = await bob.press("Confirm")
    assert "Thank you" in thanks["text"]
    card = await client.wait_for_bot_message(STAFF_CHAT, timeout=20)
    assert "Bob Brown" in card["text"] and "ads_google" in card["text"]
    [lead] = leads(tmp_path)
    assert lead.source == "ads_google" and lead.stage == "qualified" and lead.phone == "+14155552671"
    assert emulator.commands(), "command menus were set with setMyCommands"
    assert await process.kill(signal.SIGTERM) == 0


async def test_sigkill_mid_dialogue_resumes_at_the_same_step_with_every_answer(
        emulator, client, bot_process, tmp_path):
    process = bot_process()
    await ready(emulator, process)
    bob = Prospect(client, BOB, emulator)
    await bob.command("/start", "partner")
    await bob.press("I agree")
    await bob.say("Bob Brown")
    await bob.share_contact("+14155552671")
    await process.kill(signal.SIGKILL)

    since = emulator.calls()[-1]["seq"] if emulator.calls() else 0
    restarted = bot_process()
    await ready(emulator, restarted, since=since)
    reply = await bob.say("bob@example.com")  # the email step, where Bob was
    assert "What do you need" in reply["text"] or "A product or service" in str(reply.get("reply_markup"))
    for label in ("A product or service", "$1,000–5,000", "This month", "Private person"):
        await bob.press(label)
    summary = await bob.press("Skip")
    assert "Bob Brown" in summary["text"] and "+14155552671" in summary["text"] and "bob@example.com" in summary["text"]
    await bob.press("Confirm")
    [lead] = leads(tmp_path)
    assert lead.source == "partner" and lead.name == "Bob Brown"


async def test_an_update_killed_before_commit_is_delivered_again(emulator, client, bot_process, tmp_path):
    """The offset moves only after the commit: an update the bot never finished comes back."""
    process = bot_process()
    await ready(emulator, process)
    bob = Prospect(client, BOB, emulator)
    await bob.command("/start")
    await process.kill(signal.SIGKILL)
    await client.press_button(BOB, bob.id, "I agree")  # arrives while the bot is down
    since = emulator.calls()[-1]["seq"]
    restarted = bot_process()
    await ready(emulator, restarted, since=since)
    reply = await client.wait_for_bot_message(bob.id, timeout=20)
    assert "name" in reply["text"]


async def test_every_bad_input_gets_a_specific_reprompt_and_loses_nothing(emulator, client, bot_process):
    process = bot_process(flood_messages=1000)  # this test types faster than any human
    await ready(emulator, process)
    bob = Prospect(client, BOB, emulator)
    await bob.command("/start")
    assert "buttons" in (await bob.say("sure"))["text"]
    await bob.press("I agree")
    for bad in ({"sticker": True}, {"photo": True}, {"voice": True},
                {"location": {"latitude": 1.0, "longitude": 2.0}}):
        assert "text answer" in (await bob.send(**bad))["text"]
    assert "too long" in (await bob.say("n" * 150))["text"]
    await bob.say("Bob")
    assert "valid phone" in (await bob.say("12345"))["text"]
    assert "Share my phone number" in (await bob.send(sticker=True))["text"]
    await bob.say("+14155552671")
    assert "valid email" in (await bob.say("bob@@example"))["text"]
    await bob.say("bob@example.com")
    assert "buttons" in (await bob.say("a product"))["text"]
    stale = await client.press(BOB, bob.id, (await client.bot_messages(bob.id))[0]["message_id"], "a:budget:0")
    await asyncio.sleep(0)
    await wait_for(lambda: emulator.callback_answer(stale["callback_query_id"]) is not None)
    assert "earlier question" in emulator.callback_answer(stale["callback_query_id"])["text"]
    for label in ("A product or service", "Over $20,000", "As soon as possible", "Private person"):
        await bob.press(label)
    summary = await bob.say("x" * 1001)
    assert "1,000 characters" in summary["text"]
    summary = await bob.press("Skip")
    assert "Bob" in summary["text"] and "+14155552671" in summary["text"] and "bob@example.com" in summary["text"]


async def test_the_same_message_delivered_twice_is_handled_once(emulator, client, bot_process, tmp_path):
    process = bot_process()
    await ready(emulator, process)
    bob = Prospect(client, BOB, emulator)
    await bob.command("/start")
    await bob.press("I agree")
    first = emulator.inject_message(BOB, "Bob Brown")
    await wait_for(lambda: emulator.pending_count() == 0)
    replies_before = len(await client.bot_messages(bob.id))
    emulator.inject_message(BOB, message_id=first["message_id"])  # same message, new update id
    await wait_for(lambda: emulator.pending_count() == 0)
    assert len(await client.bot_messages(bob.id)) == replies_before  # the duplicate got no reply at all
    await bob.say("+14155552671")
    texts = [m.get("text", "") for m in await client.bot_messages(bob.id)]
    assert sum(text.startswith("(2/") for text in texts) == 1, texts  # the phone question, asked once
    engine = create_engine(f"sqlite:///{tmp_path}/leadbot.db")
    with Session(engine) as session:
        assert session.get(ProcessedMessage, (bob.id, first["message_id"])) is not None
    engine.dispose()


async def test_sigterm_finishes_in_flight_work_and_exits_cleanly(emulator, client, bot_process):
    process = bot_process()
    await ready(emulator, process)
    await Prospect(client, BOB, emulator).command("/start")
    assert await process.kill(signal.SIGTERM) == 0
    assert "stopped cleanly" in process.output()
    assert emulator.pending_count() == 0
