"""In-process flow tests: the real app (routers, middlewares, database) against the Bot API emulator.

Generic fixtures, reusable by every flow test:

* `emulator`  - the running emulator (from tests/conftest.py), with the staff chat created and the
                managers made its members;
* `app`       - `bot.app.create_app(settings, with_delivery=False)` on a temporary SQLite file;
* `feed`      - a `Feeder`: users act through the emulator's control API, then the updates are fetched
                with getUpdates and fed to the dispatcher, exactly as polling would do.

Nothing is delivered from the outbox (no delivery worker): assert the outbox rows instead, or use
`feed.post_card(lead_id)` to post a card the way the delivery worker does.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram.types import Update
from sqlalchemy import select

TOKEN = "123456:" + "A" * 35
STAFF_CHAT = -100500
MANAGERS = (701, 702)
NOT_A_MEMBER = 704  # listed in MANAGER_IDS, but getChatMember says "left"
OUTSIDER = 703  # a member of the staff chat, not a manager
ADMIN = 900
QUALIFIED = {"need": "product", "budget": "5k_20k", "timeline": "asap", "customer_type": "b2b",
             "company_size": "11_50", "decision_role": "decision_maker"}
BROWSING = {"need": "other", "budget": "lt_1k", "timeline": "exploring", "customer_type": "b2c"}


def person(uid: int, first_name: str = "Alice", language_code: str = "en", username: str | None = None
           ) -> dict[str, Any]:
    user: dict[str, Any] = {"id": uid, "is_bot": False, "first_name": first_name, "language_code": language_code}
    if username:
        user["username"] = username
    return user


@pytest.fixture
def flow_settings(tmp_path, emulator):
    from bot.settings import Settings

    return Settings(
        _env_file=None, bot_token=TOKEN, database_url=f"sqlite+aiosqlite:///{tmp_path}/t.db",
        staff_chat_id=STAFF_CHAT, manager_ids=[*MANAGERS, NOT_A_MEMBER], admin_ids=[ADMIN],
        telegram_api_url=emulator.base_url, digest="off",
    )


@pytest.fixture
async def app(flow_settings, emulator) -> AsyncIterator[Any]:
    from bot.app import create_app

    emulator.create_chat(STAFF_CHAT, type="supergroup", title="Staff")
    for uid in (*MANAGERS, OUTSIDER):
        emulator.set_member(STAFF_CHAT, uid, "member")
    emulator.set_member(STAFF_CHAT, NOT_A_MEMBER, "left")
    application = await create_app(flow_settings, with_delivery=False)
    yield application
    await application.close()


class Feeder:
    """Drive the app through the emulator: act as a user, then handle what getUpdates returns."""

    def __init__(self, app: Any, emulator: Any) -> None:
        self.app, self.emulator = app, emulator
        self.offset: int | None = None

    async def drain(self) -> list[Update]:
        """Fetch the pending updates with getUpdates and feed them to the dispatcher, in order."""
        handled: list[Update] = []
        while True:
            updates = await self.app.bot.get_updates(offset=self.offset, timeout=0)
            if not updates:
                return handled
            for update in updates:
                await self.app.dp.feed_update(self.app.bot, update)
                self.offset = update.update_id + 1
                handled.append(update)

    async def update(self, payload: dict[str, Any]) -> None:
        """Feed a hand-built update directly (bypassing the emulator)."""
        await self.app.dp.feed_update(self.app.bot, Update.model_validate(payload, context={"bot": self.app.bot}))

    async def message(self, user: dict[str, Any], text: str | None = None, **kw: Any) -> dict[str, Any]:
        """`user` writes (`chat_id=` a group, `reply_to_message_id=`, `photo=True`, `caption=`...)."""
        result = self.emulator.inject_message(user, text, **kw)
        await self.drain()
        return result

    async def press(self, user: dict[str, Any], chat_id: int, message_id: int, data: str) -> dict[str, Any] | None:
        """`user` presses a button with callback data `data` under a message; returns the bot's answer."""
        result = self.emulator.inject_callback(user, chat_id, message_id, data)
        await self.drain()
        return self.emulator.callback_answer(result["callback_query_id"])

    async def press_text(self, user: dict[str, Any], chat_id: int, text: str,
                         message_id: int | None = None) -> dict[str, Any] | None:
        """`user` presses the inline button labelled `text` on the newest bot message that has it."""
        result = self.emulator.press(user, chat_id, text, message_id)
        await self.drain()
        return self.emulator.callback_answer(result["callback_query_id"])

    def bot_messages(self, chat_id: int) -> list[dict[str, Any]]:
        return [m for m in self.emulator.messages(chat_id) if m.get("from", {}).get("is_bot")]

    def last_bot_text(self, chat_id: int) -> str | None:
        messages = self.bot_messages(chat_id)
        return (messages[-1].get("text") or messages[-1].get("caption")) if messages else None

    # ------------------------------------------------------------------ database helpers

    def session(self) -> Any:
        return self.app.session_factory()

    async def rows(self, model: Any, *where: Any) -> list[Any]:
        async with self.session() as session:
            return list((await session.scalars(select(model).where(*where).order_by(model.id))).all())

    async def make_lead(
        self, user: dict[str, Any], answers: dict[str, Any] | None = None, *, source: str = "direct",
        locale: str = "en", name: str = "Ann", phone: str | None = "+380501234567", verified: bool = True,
        email: str | None = None,
    ) -> int:
        """A finished dialogue of `user` (through `bot.services.leads.submit`); returns the lead id.
        The default answers qualify the lead (handed off: a card is queued); `BROWSING` does not."""
        from bot.db.models import Prospect, utcnow
        from bot.services.leads import submit

        async with self.session() as session:
            prospect = await session.scalar(select(Prospect).where(Prospect.tg_id == user["id"]))
            if prospect is None:
                prospect = Prospect(tg_id=user["id"], chat_id=user["id"], username=user.get("username"),
                                    first_name=user.get("first_name"), tg_language=user.get("language_code"))
                session.add(prospect)
            prospect.name, prospect.phone, prospect.phone_verified, prospect.email = name, phone, verified, email
            prospect.consent_at = prospect.consent_at or utcnow()
            await session.flush()
            submitted = await submit(session, self.app.funnel, prospect, QUALIFIED if answers is None else answers,
                                     source=source, locale=locale)
            await session.commit()
            return submitted.lead.id

    async def post_card(self, lead_id: int) -> int:
        """Post the lead's card in the staff chat and record it, as the delivery worker does: on the lead,
        and on the lead's queued card rows (sent, with the message id)."""
        from bot.cards import render_card
        from bot.db.models import Lead, OutboxMessage

        async with self.session() as session:
            lead = await session.get(Lead, lead_id)
            assert lead is not None
            text, markup = await render_card(session, lead, funnel=self.app.funnel, translator=self.app.translator,
                                             locale=self.app.settings.default_locale)
            sent = await self.app.bot.send_message(self.app.staff.id, text, reply_markup=markup)
            lead.card_chat_id, lead.card_message_id = sent.chat.id, sent.message_id
            queued = await session.scalars(select(OutboxMessage).where(
                OutboxMessage.lead_id == lead_id, OutboxMessage.kind == "card",
                OutboxMessage.status.in_(("pending", "sending"))))
            for row in queued.all():
                row.status, row.message_id = "sent", sent.message_id
            await session.commit()
            return sent.message_id


@pytest.fixture
def feed(app, emulator) -> Feeder:
    return Feeder(app, emulator)
