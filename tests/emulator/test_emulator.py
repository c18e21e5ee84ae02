"""Tests of the Telegram Bot API emulator itself: raw HTTP, a real aiogram Bot, and the control client."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.filters import CommandObject, CommandStart
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllPrivateChats,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
)
from aiohttp import web

from bot.emulator import Emulator, run_emulator
from bot.emulator.client import EmulatorClient, EmulatorError, make_user
from bot.emulator.server import EventBus, auto_entities, parse_html, parse_markdown

TOKEN = "123456:" + "A" * 35
BOT_ID = 123456
ALICE = make_user(42, "Alice", username="alice")
BOB = make_user(43, "Bob")
GROUP = -1001234


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with run_emulator() as emulator:
        yield emulator


@pytest.fixture
async def ctl(emu: Emulator) -> AsyncIterator[EmulatorClient]:
    async with EmulatorClient(emu.base_url or "") as client:
        yield client


class _PlainHttpSession(AiohttpSession):
    async def close(self) -> None:  # aiogram sleeps 250 ms for TLS shutdown; plain HTTP needs no grace time
        if self._session is not None and not self._session.closed:
            await self._session.close()


@pytest.fixture
async def bot(emu: Emulator) -> AsyncIterator[Bot]:
    instance = Bot(TOKEN, session=_PlainHttpSession(api=TelegramAPIServer.from_base(emu.base_url or "")))
    yield instance
    await instance.session.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession, emu: Emulator, method: str, token: str = TOKEN, **params: Any
) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{emu.base_url}/bot{token}/{method}", json=params) as resp:
        return resp.status, await resp.json()


def keyboard(*buttons: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=text, callback_data=data)] for text, data in buttons]
    )


# --------------------------------------------------------------------------------------------- raw Bot API


async def test_get_me_token_check_and_unknown_methods(emu: Emulator, http: aiohttp.ClientSession) -> None:
    status, body = await call(http, emu, "getMe")
    assert status == 200 and body["ok"] is True
    assert body["result"]["id"] == BOT_ID and body["result"]["username"] == "leadbot"
    # Method names are case-insensitive.
    assert (await call(http, emu, "GETME"))[1]["result"]["is_bot"] is True

    status, body = await call(http, emu, "getMe", token="123:short")
    assert (status, body) == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
    status, body = await call(http, emu, "fooBar")
    assert (status, body) == (404, {"ok": False, "error_code": 404, "description": "Not Found"})
    # A real but unmodelled method is accepted and recorded.
    assert await call(http, emu, "setMyDescription", description="x") == (200, {"ok": True, "result": True})
    assert [c["method"] for c in emu.calls()][-1] == "setMyDescription"


async def test_get_updates_offset_confirmation_and_long_poll(
    emu: Emulator, ctl: EmulatorClient, http: aiohttp.ClientSession
) -> None:
    first = await ctl.send_command(ALICE, "/start", "ads_fb")
    _, body = await call(http, emu, "getUpdates")
    [update] = body["result"]
    assert update["update_id"] == first["update_id"]
    message = update["message"]
    assert message["text"] == "/start ads_fb" and message["from"]["id"] == ALICE["id"]
    assert message["chat"] == {"id": 42, "type": "private", "first_name": "Alice", "username": "alice"}
    assert message["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]

    # Not confirmed yet: delivered again.
    assert [u["update_id"] for u in (await call(http, emu, "getUpdates"))[1]["result"]] == [
        first["update_id"]
    ]
    offset = first["update_id"] + 1
    assert (await call(http, emu, "getUpdates", offset=offset))[1]["result"] == []
    assert emu.pending_count() == 0

    # Long poll returns as soon as an update arrives.
    started = time.monotonic()
    poll = asyncio.create_task(call(http, emu, "getUpdates", offset=offset, timeout=5))
    await asyncio.sleep(0.05)
    second = await ctl.send_text(ALICE, "hello")
    _, body = await asyncio.wait_for(poll, 3)
    assert [u["update_id"] for u in body["result"]] == [second["update_id"]]
    assert time.monotonic() - started < 2

    # allowed_updates: types the bot did not ask for are dropped.
    await ctl.send_update({"edited_message": message})
    await ctl.send_text(ALICE, "third")
    _, body = await call(http, emu, "getUpdates", offset=second["update_id"] + 1, allowed_updates=["message"])
    assert [next(k for k in u if k != "update_id") for u in body["result"]] == ["message"]


# --------------------------------------------------------------------------------------------- aiogram Bot


async def test_send_edit_delete_with_aiogram(emu: Emulator, ctl: EmulatorClient, bot: Bot) -> None:
    await ctl.send_command(ALICE, "/start")
    sent = await bot.send_message(
        42, "Pick <b>one</b>", parse_mode="HTML", reply_markup=keyboard(("Yes", "y"))
    )
    assert sent.text == "Pick one" and sent.entities and sent.entities[0].type == "bold"
    assert sent.reply_markup and sent.reply_markup.inline_keyboard[0][0].callback_data == "y"
    stored = await ctl.last_bot_message(42)
    assert stored and stored["message_id"] == sent.message_id == 2
    assert stored["reply_markup"] == {"inline_keyboard": [[{"text": "Yes", "callback_data": "y"}]]}

    edited = await bot.edit_message_text(
        "Picked", chat_id=42, message_id=sent.message_id, reply_markup=keyboard(("Yes", "y"))
    )
    assert isinstance(edited, Message) and edited.text == "Picked" and edited.edit_date
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(
            "Picked", chat_id=42, message_id=sent.message_id, reply_markup=keyboard(("Yes", "y"))
        )
    await bot.edit_message_reply_markup(chat_id=42, message_id=sent.message_id)  # removes the keyboard
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(chat_id=42, message_id=sent.message_id)
    assert "reply_markup" not in (await ctl.last_bot_message(42) or {})
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=42, message_id=999)
    with pytest.raises(TelegramBadRequest, match="message can't be edited"):
        await bot.edit_message_text("x", chat_id=42, message_id=1)  # the user's /start

    reply = await bot.send_message(
        42,
        "Share your phone",
        reply_to_message_id=1,
        reply_markup=ReplyKeyboardMarkup(
            keyboard=[[KeyboardButton(text="Send phone", request_contact=True)]], resize_keyboard=True
        ),
    )
    assert reply.reply_markup is None and reply.reply_to_message and reply.reply_to_message.text == "/start"
    assert (await ctl.chat(42))["reply_keyboard"]["keyboard"][0][0]["request_contact"] is True

    assert await bot.delete_message(42, sent.message_id) is True
    assert [m["message_id"] for m in await ctl.messages(42)] == [1, 3]
    assert [m["message_id"] for m in await ctl.messages(42, include_deleted=True)] == [1, 2, 3]
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(42, sent.message_id)


async def test_document_upload_download_and_media(emu: Emulator, ctl: EmulatorClient, bot: Bot) -> None:
    await ctl.send_command(ALICE, "/start")
    data = b"%PDF-1.4 offer"
    sent = await bot.send_document(
        42, BufferedInputFile(data, "offer.pdf"), caption="Your <i>offer</i>", parse_mode="HTML"
    )
    assert (
        sent.document
        and sent.document.file_name == "offer.pdf"
        and sent.document.mime_type == "application/pdf"
    )
    assert sent.caption == "Your offer" and sent.document.file_size == len(data)
    assert await ctl.file_bytes(sent.document.file_id) == data
    assert (await bot.download(sent.document.file_id)).read() == data  # type: ignore[union-attr]
    [logged] = await ctl.calls("sendDocument")
    assert logged["params"]["document"] == {
        "upload": "offer.pdf",
        "content_type": "application/octet-stream",
        "size": len(data),
    }

    again = await bot.send_document(42, sent.document.file_id)  # an existing file_id
    assert again.document and again.document.file_unique_id == sent.document.file_unique_id
    photo = await bot.send_photo(42, "https://example.com/pic.jpg")  # a URL is accepted, never fetched
    assert photo.photo and photo.photo[-1].width == 800
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_document(42, "no-such-file-id")
    with pytest.raises(TelegramBadRequest, match="message caption is too long"):
        await bot.send_photo(42, "https://example.com/pic.jpg", caption="c" * 1025)

    # Media sent by users can be downloaded by the bot.
    await ctl.send_photo(ALICE, caption="my passport")
    user_photo = (await ctl.messages(42))[-1]["photo"][-1]
    file = await bot.get_file(user_photo["file_id"])
    assert (await bot.download_file(file.file_path or "")).read().startswith(b"\xff\xd8")  # type: ignore[union-attr]


async def test_callback_data_and_text_limits(emu: Emulator, ctl: EmulatorClient, bot: Bot) -> None:
    await ctl.send_command(ALICE, "/start")
    await bot.send_message(42, "ok", reply_markup=keyboard(("A", "a" * 64)))
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(42, "too long", reply_markup=keyboard(("A", "é" * 33)))  # 33 chars, 66 bytes

    await bot.send_message(42, "a" * 4096)
    # Tags and character references are not counted.
    await bot.send_message(42, "<b>" + "a" * 4095 + "&amp;</b>", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(42, "a" * 4097)
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(42, "  ")
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(42, "<b>unclosed", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match='Unsupported start tag "foo"'):
        await bot.send_message(42, "<foo>x</foo>", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="Character '.' is reserved"):
        await bot.send_message(42, "Total: 5.00", parse_mode="MarkdownV2")

    await ctl.set_limits(text_limit=10)
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(42, "a" * 11)


def test_formatting_parsers() -> None:
    text, entities = parse_html(
        '<b>Hi</b> <a href="https://x.io">😀 link</a> &lt;3 <pre><code class="language-py">x</code></pre>'
    )
    assert text == "Hi 😀 link <3 x"
    assert entities == [
        {"type": "bold", "offset": 0, "length": 2},
        {"type": "text_link", "url": "https://x.io", "offset": 3, "length": 7},  # the emoji is 2 UTF-16 units
        {"type": "pre", "language": "py", "offset": 14, "length": 1},
    ]
    assert parse_markdown(r"*bold* _it_ \. [a](https://x.io)") == (
        "bold it . a",
        [
            {"type": "bold", "offset": 0, "length": 4},
            {"type": "italic", "offset": 5, "length": 2},
            {"type": "text_link", "offset": 10, "length": 1, "url": "https://x.io"},
        ],
    )
    assert [
        e["type"] for e in auto_entities("/start@leadbot mail me@x.io, see https://x.io or @someone")
    ] == [
        "bot_command",
        "email",
        "url",
        "mention",
    ]


async def test_group_rate_limit(emu: Emulator, ctl: EmulatorClient, bot: Bot) -> None:
    await ctl.create_chat(GROUP, title="Staff")
    await ctl.send_command(ALICE, "/start")
    first = await bot.send_message(GROUP, "0")
    for n in range(1, 20):
        await bot.send_message(GROUP, str(n))
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(GROUP, "21st")
    assert 1 <= caught.value.retry_after <= 60
    last_call = (await ctl.calls("sendMessage"))[-1]
    assert last_call["response"]["parameters"]["retry_after"] == caught.value.retry_after
    await bot.edit_message_text("edited", chat_id=GROUP, message_id=first.message_id)  # edits don't count
    await bot.send_message(42, "private chats are not throttled by default")

    await ctl.set_limits(group_per_minute=None, private_per_second=1)
    await bot.send_message(GROUP, "unlimited now")
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(42, "second message this second")


async def test_fault_injection(emu: Emulator, ctl: EmulatorClient, bot: Bot) -> None:
    await ctl.send_command(ALICE, "/start")
    await ctl.add_faults({"method": "sendMessage", "error_code": 500})
    with pytest.raises(TelegramServerError):
        await bot.send_message(42, "boom")
    await bot.send_message(42, "fires once by default")

    await ctl.add_faults({"method": "sendMessage", "chat_id": 42, "drop_connection": True})
    with pytest.raises(TelegramNetworkError):
        await bot.send_message(42, "dropped")
    await ctl.add_faults(
        {"method": "sendmessage", "effect": {"error_code": 429, "retry_after": 3}, "count": 2}
    )
    for _ in range(2):
        with pytest.raises(TelegramRetryAfter) as caught:
            await bot.send_message(42, "throttled")
        assert caught.value.retry_after == 3
    await ctl.add_faults({"method": "getMe", "delay": 0.2}, {"method": "getMe", "error_code": 502})
    started = time.monotonic()
    await bot.get_me()
    assert time.monotonic() - started >= 0.2
    with pytest.raises(TelegramServerError, match="Bad Gateway"):
        await bot.get_me()

    assert await ctl.faults() == []
    faulted = [c for c in await ctl.calls() if c["fault"]]
    assert [c["status"] for c in faulted] == [500, 0, 429, 429, 200, 502]
    assert [m["text"] for m in await ctl.bot_messages(42)] == ["fires once by default"]


async def test_blocked_user_and_unknown_chats(emu: Emulator, ctl: EmulatorClient, bot: Bot) -> None:
    await ctl.send_command(ALICE, "/start")
    await ctl.block(42)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(42, "hello?")
    assert (await bot.get_chat_member(42, BOT_ID)).status == "kicked"
    updates = await bot.get_updates(offset=2)
    assert updates[-1].my_chat_member and updates[-1].my_chat_member.new_chat_member.status == "kicked"
    await ctl.block(42, blocked=False)
    await bot.send_message(42, "welcome back")

    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(777, "who?")
    await ctl.send_text(BOB, "hi all", chat_id=GROUP)  # Bob is known, but never opened a private chat
    with pytest.raises(TelegramForbiddenError, match="can't initiate conversation"):
        await bot.send_message(BOB["id"], "hi Bob")


async def test_migrated_chat(emu: Emulator, ctl: EmulatorClient, bot: Bot) -> None:
    await ctl.create_chat(-555, type="group", title="Old staff")
    await ctl.migrate(-555, GROUP)
    with pytest.raises(TelegramMigrateToChat) as caught:
        await bot.send_message(-555, "hello")
    assert caught.value.migrate_to_chat_id == GROUP
    sent = await bot.send_message(GROUP, "hello")
    assert sent.chat.type == "supergroup" and sent.chat.title == "Old staff"


async def test_chat_members(emu: Emulator, ctl: EmulatorClient, bot: Bot) -> None:
    await ctl.create_chat(GROUP, title="Staff")
    await ctl.send_command(ALICE, "/start")
    assert (await bot.get_chat_member(GROUP, 701)).status == "left"
    assert (await bot.get_chat_member(42, 42)).status == "member"
    assert (await bot.get_chat_member(GROUP, BOT_ID)).status == "administrator"
    for status in ("member", "administrator", "creator", "kicked", "left"):
        await ctl.set_member(GROUP, 701, status)
        assert (await bot.get_chat_member(GROUP, 701)).status == status
    await ctl.set_member(GROUP, 702, "creator")
    await ctl.set_member(GROUP, 703, "administrator")
    admins = await bot.get_chat_administrators(GROUP)
    assert [a.user.id for a in admins] == [702, 703, BOT_ID]
    assert (await bot.get_chat(GROUP)).title == "Staff"

    await ctl.set_member(GROUP, BOT_ID, "kicked")
    with pytest.raises(TelegramForbiddenError, match="bot was kicked"):
        await bot.send_message(GROUP, "anyone?")


async def test_bot_removed_from_a_group_and_added_back(emu: Emulator, ctl: EmulatorClient, bot: Bot) -> None:
    await ctl.create_chat(GROUP, title="Staff")
    await ctl.add_user(BOB)
    await ctl.set_member(GROUP, BOB["id"], "creator")
    await bot.send_message(GROUP, "hello")

    await ctl.remove_bot(GROUP, by=BOB["id"])
    await ctl.remove_bot(GROUP)  # already out: nothing more happens
    with pytest.raises(TelegramForbiddenError, match="bot was kicked from the supergroup chat"):
        await bot.send_message(GROUP, "anyone?")
    assert (await bot.get_chat_member(GROUP, BOT_ID)).status == "kicked"
    [removed] = await bot.get_updates()
    change = removed.my_chat_member
    assert change is not None and change.chat.id == GROUP and change.from_user.id == BOB["id"]
    assert (change.old_chat_member.status, change.new_chat_member.status) == ("administrator", "kicked")
    assert change.new_chat_member.user.id == BOT_ID

    await ctl.remove_bot(GROUP, removed=False, status="administrator")
    await bot.send_message(GROUP, "back")
    [back] = await bot.get_updates(offset=removed.update_id + 1)
    assert back.my_chat_member is not None and back.my_chat_member.from_user.id == BOB["id"]  # the creator
    assert (back.my_chat_member.old_chat_member.status, back.my_chat_member.new_chat_member.status) == (
        "kicked", "administrator")

    await ctl.set_member(GROUP, BOB["id"], "left")
    await ctl.remove_bot(GROUP, status="left")  # no creator left: an anonymous admin did it
    [left] = await bot.get_updates(offset=back.update_id + 1)
    assert left.my_chat_member is not None and left.my_chat_member.from_user.username == "GroupAnonymousBot"
    assert left.my_chat_member.new_chat_member.status == "left"
    with pytest.raises(TelegramForbiddenError, match="not a member"):
        await bot.send_message(GROUP, "anyone?")
    with pytest.raises(EmulatorError) as bad:
        await ctl.remove_bot(GROUP, removed=False, status="kicked")
    assert bad.value.status == 400
    with pytest.raises(EmulatorError):
        await ctl.remove_bot(42)  # no such chat


async def test_bot_removed_before_its_first_call(emu: Emulator, ctl: EmulatorClient, bot: Bot) -> None:
    """The emulator learns the bot's id from its token: a membership set before that carries over."""
    await ctl.create_chat(GROUP, title="Staff")
    await ctl.remove_bot(GROUP)
    assert (await bot.get_chat_member(GROUP, BOT_ID)).status == "kicked"
    with pytest.raises(TelegramForbiddenError, match="bot was kicked"):
        await bot.send_message(GROUP, "anyone?")
    await ctl.remove_bot(GROUP, removed=False)
    await bot.send_message(GROUP, "back")


async def test_webhook_delivery(emu: Emulator, ctl: EmulatorClient, bot: Bot) -> None:
    received: asyncio.Queue[tuple[dict[str, Any], str | None]] = asyncio.Queue()
    attempts: list[int] = []

    async def hook(request: web.Request) -> web.Response:
        attempts.append(1)
        if len(attempts) == 1:
            return web.Response(status=500)
        update = await request.json()
        await received.put((update, request.headers.get("X-Telegram-Bot-Api-Secret-Token")))
        return web.json_response({"method": "sendMessage", "chat_id": 42, "text": "via webhook"})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        await ctl.set_limits(webhook_retry_delay=0.05)
        await bot.set_webhook(f"http://127.0.0.1:{runner.addresses[0][1]}/hook", secret_token="s3cret")
        with pytest.raises(TelegramConflictError):
            await bot.get_updates()
        sent = await ctl.send_text(ALICE, "hi hook")
        update, secret = await asyncio.wait_for(received.get(), 5)
        assert update["update_id"] == sent["update_id"] and update["message"]["text"] == "hi hook"
        assert secret == "s3cret" and len(attempts) == 2  # retried after the 500
        reply = await ctl.wait_for_bot_message(42, timeout=5)  # the method returned in the webhook response
        assert reply["text"] == "via webhook"
        info = await bot.get_webhook_info()
        assert info.pending_update_count == 0 and "500" in (info.last_error_message or "")

        await bot.delete_webhook()
        assert await bot.get_updates() == []
    finally:
        await runner.cleanup()


async def test_press_button_and_callback_answers(emu: Emulator, ctl: EmulatorClient, bot: Bot) -> None:
    await ctl.send_command(ALICE, "/start")
    markup = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text="✅ Yes, call me", callback_data="yes")],
            [
                InlineKeyboardButton(text="No", callback_data="no"),
                InlineKeyboardButton(text="Site", url="https://x.io"),
            ],
        ]
    )
    offer = await bot.send_message(42, "Shall we call?", reply_markup=markup)
    await bot.send_message(42, "unrelated")

    pressed = await ctl.press_button(ALICE, 42, "Yes")  # substring match, newest message with such a button
    assert pressed["message_id"] == offer.message_id and pressed["data"] == "yes"
    assert (await ctl.press_button(ALICE, 42, "No"))["data"] == "no"
    with pytest.raises(EmulatorError) as missing:
        await ctl.press_button(ALICE, 42, "Maybe")
    assert missing.value.status == 404
    with pytest.raises(EmulatorError):
        await ctl.press_button(ALICE, 42, "Site")  # a URL button has no callback data

    updates = await bot.get_updates(offset=2)
    queries = [u.callback_query for u in updates if u.callback_query]
    assert [q.data for q in queries] == ["yes", "no"]
    assert queries[0].message and queries[0].message.message_id == offer.message_id
    assert queries[0].id == pressed["callback_query_id"]

    assert await ctl.callback_answer(queries[0].id) is None
    await bot.answer_callback_query(queries[0].id, text="We'll call you", show_alert=True)
    answer = await ctl.callback_answer(queries[0].id)
    assert answer and answer["text"] == "We'll call you" and answer["show_alert"] is True
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(queries[0].id)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query("123")


async def test_wait_for_bot_message_and_events(
    emu: Emulator, ctl: EmulatorClient, bot: Bot, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{emu.base_url}/control/events") as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        await ctl.send_text(ALICE, "hello")
        await bot.send_message(42, "one")  # before anyone waits: must not be missed

        async def later() -> None:
            await asyncio.sleep(0.05)
            sent = await bot.send_message(42, "two")
            await bot.edit_message_text("two (edited)", chat_id=42, message_id=sent.message_id)

        task = asyncio.create_task(later())
        assert (await ctl.wait_for_bot_message(42, timeout=5))["text"] == "one"
        assert (await ctl.wait_for_bot_message(42, timeout=5))["text"] == "two"
        edited = await ctl.wait_for_bot_message(42, lambda m: "edited" in m["text"], timeout=5)
        assert edited["edit_date"]
        await task
        with pytest.raises(TimeoutError):
            await ctl.wait_for_bot_message(42, timeout=0.2)

        events: list[dict[str, Any]] = []
        while len(events) < 3:
            line = (await asyncio.wait_for(stream.content.readline(), 5)).decode().strip()
            if line.startswith("data:"):
                events.append(json.loads(line.removeprefix("data:")))
        assert [e["type"] for e in events] == ["message", "update", "message"]
        assert events[0]["message"]["text"] == "hello" and events[2]["from_bot"] is True


async def test_dispatcher_polling_end_to_end(emu: Emulator, ctl: EmulatorClient, bot: Bot) -> None:
    dp = Dispatcher()

    @dp.message(CommandStart())
    async def start(message: Message, command: CommandObject) -> None:
        await message.answer(f"Welcome! source={command.args}")

    polling = asyncio.create_task(
        dp.start_polling(bot, polling_timeout=1, handle_signals=False, close_bot_session=False)
    )
    try:
        await ctl.send_command(ALICE, "/start", "ads_fb")
        assert (await ctl.wait_for_bot_message(42, timeout=5))["text"] == "Welcome! source=ads_fb"
    finally:
        await dp.stop_polling()
        await asyncio.wait_for(polling, 5)


async def test_control_messages_and_commands(emu: Emulator, ctl: EmulatorClient, bot: Bot) -> None:
    await ctl.share_contact(ALICE, "+491701234567")
    await ctl.share_contact(ALICE, "+491709999999", own=False)
    await ctl.send_sticker(ALICE)
    await ctl.send_voice(ALICE)
    await ctl.send_location(ALICE, 48.1, 11.6)
    await ctl.send_document(ALICE, {"file_name": "cv.txt", "content": "my cv"})
    first = await ctl.send_text(ALICE, "reply to me", reply_to_message_id=1)
    again = await ctl.send_text(ALICE, "ignored", message_id=first["message_id"])  # redelivery, new update_id
    staff = await ctl.send_text(BOB, "/take@leadbot 42", chat_id=-100777)  # auto-created supergroup

    updates = [u["message"] for u in emu.pending_updates()]
    assert updates[0]["contact"] == {"first_name": "Alice", "phone_number": "+491701234567", "user_id": 42}
    assert updates[1]["contact"]["user_id"] != 42
    assert updates[2]["sticker"]["emoji"] and updates[3]["voice"]["mime_type"] == "audio/ogg"
    assert updates[4]["location"] == {"latitude": 48.1, "longitude": 11.6}
    assert await ctl.file_bytes(updates[5]["document"]["file_id"]) == b"my cv"
    assert updates[6]["reply_to_message"]["message_id"] == 1
    assert again["update_id"] == first["update_id"] + 1 and updates[7] == updates[6]
    assert updates[8]["chat"] == {"id": -100777, "type": "supergroup", "title": "Staff"}
    assert staff["message_id"] == 1 and updates[8]["entities"][0] == {
        "type": "bot_command",
        "offset": 0,
        "length": 13,
    }

    await bot.set_my_commands(
        [BotCommand(command="start", description="Start")],
        scope=BotCommandScopeAllPrivateChats(),
        language_code="en",
    )
    assert await ctl.commands() == [
        {
            "scope": {"type": "all_private_chats"},
            "language_code": "en",
            "commands": [{"command": "start", "description": "Start"}],
        }
    ]
    got = await bot.get_my_commands(scope=BotCommandScopeAllPrivateChats(), language_code="en")
    assert [c.command for c in got] == ["start"]
    assert await bot.get_my_commands() == []
    assert await bot.send_chat_action(42, "typing") is True

    await ctl.reset()
    assert (await ctl.state())["pending_updates"] == 0 and await ctl.messages(42) == []


async def test_web_page_users_polls_and_commands_in_html(
    emu: Emulator, ctl: EmulatorClient, http: aiohttp.ClientSession, bot: Bot, tmp_path: Any
) -> None:
    async with http.get(f"{emu.base_url}/") as resp:  # no page: the state as JSON
        assert resp.status == 200 and (await resp.json())["emulator"] == "telegram-bot-api"
    (tmp_path / "index.html").write_text("<h1>page</h1>")
    (tmp_path / "app.js").write_text("let x = 1;")
    (tmp_path.parent / "secret.txt").write_text("no")
    emu.serve_page(tmp_path)
    async with http.get(f"{emu.base_url}/") as resp:
        assert resp.status == 200 and resp.content_type == "text/html" and "page" in await resp.text()
        assert resp.headers["Cache-Control"] == "no-cache"
    async with http.get(f"{emu.base_url}/static/app.js") as resp:
        assert resp.status == 200 and await resp.text() == "let x = 1;"
    for path in ("/static/missing.js", "/static/../secret.txt", "/static/%2e%2e/secret.txt"):
        async with http.get(f"{emu.base_url}{path}") as resp:
            assert resp.status == 404, path
    with pytest.raises(ValueError):
        emu.serve_page(tmp_path / "nowhere")

    await ctl.add_user({"id": 77, "first_name": "Maria", "language_code": "uk"})
    await ctl.create_chat(GROUP)
    await ctl.set_member(GROUP, 77, "member")
    member = await bot.get_chat_member(GROUP, 77)
    assert member.user.first_name == "Maria" and member.user.language_code == "uk"

    polls = (await ctl.state())["polls"]
    assert await bot.get_updates(timeout=0) == []
    assert (await ctl.state())["polls"] == polls + 1

    assert auto_entities("<b>x</b> /start") == [{"type": "bot_command", "offset": 9, "length": 6}]


def test_event_bus_since_returns_the_newer_events_oldest_first_within_its_history():
    bus = EventBus(history=5)
    assert bus.since(0) == []
    for i in range(8):
        bus.publish("message", n=i)
    assert [e["seq"] for e in bus.since(5)] == [6, 7, 8]
    assert [e["n"] for e in bus.since(5)] == [5, 6, 7]
    assert [e["seq"] for e in bus.since(0)] == [4, 5, 6, 7, 8]  # older ones left the history
    assert bus.since(8) == [] and bus.since(99) == []


def test_the_emulator_process_moves_its_heap_out_of_the_collectors_sight():
    """bot.emulator.__main__: its heap only grows, so full collections would pause it longer and longer
    (in a process of its own: freezing the test process would keep what the suite made so far)."""
    script = ("import asyncio, gc\n"
              "from bot.emulator.__main__ import _settle_heap_forever\n"
              "kept = [{'message': i} for i in range(1000)]\n"
              "async def main():\n"
              "    task = asyncio.create_task(_settle_heap_forever(0.01))\n"
              "    await asyncio.sleep(0.1)\n"
              "    task.cancel()\n"
              "asyncio.run(main())\n"
              "print(gc.get_freeze_count())\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    assert int(out.stdout.split()[-1]) > 1000


async def test_a_user_that_is_not_an_object_gets_a_clear_400(emu: Emulator, ctl: EmulatorClient) -> None:
    """The control side's answer to a bare id or a bad id, where it used to fail with a 500."""
    for user, says in ((424242, "user must be an object"), ({"id": "ann"}, "user.id must be an integer"),
                       ({"first_name": "Ann"}, "user.id is required")):
        with pytest.raises(EmulatorError) as bad:
            await ctl.send_text(user, "/start")  # type: ignore[arg-type]
        assert bad.value.status == 400 and says in str(bad.value)
    sent = await ctl.send_text({"id": "42", "first_name": "Ann"}, "/start")  # an id as a string is taken
    assert sent["update_id"] and emu._users[42]["id"] == 42
