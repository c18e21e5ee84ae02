"""The prospect's menu after the dialogue, /manager outside the dialogue and the relay of what the
prospect writes after the handoff."""
from __future__ import annotations

import tomllib
from datetime import timedelta

from sqlalchemy import select

from bot.db.models import Lead, LeadEvent, OutboxMessage, utcnow
from funnel import DEFAULT_FUNNEL_PATH, FILES_DIR, parse_funnel
from handlers.callbacks import MenuCb
from handlers.menu import MenuStates, menu_keyboard
from tests.flow.conftest import BROWSING, Feeder, person

ANN = person(6001, "Ann", username="ann")
RELAYED = "✅ Passed to a manager. The answer will come right here."


async def show_menu(app, emulator, user, locale: str = "en") -> int:
    """The thank-you message with the menu, as the dialogue sends it."""
    emulator.create_chat(user["id"], type="private", title=user["first_name"])
    sent = await app.bot.send_message(user["id"], "thanks", reply_markup=menu_keyboard(app.funnel, locale))
    return sent.message_id


async def lead_of(feed, user) -> Lead:
    async with feed.session() as session:
        lead = await session.scalar(select(Lead).where(Lead.tg_id == user["id"]).order_by(Lead.id.desc()))
        assert lead is not None
        return lead


async def events(feed, lead_id: int, kind: str) -> list[LeadEvent]:
    return await feed.rows(LeadEvent, LeadEvent.lead_id == lead_id, LeadEvent.kind == kind)


async def staff_relays(feed) -> list[OutboxMessage]:
    return await feed.rows(OutboxMessage, OutboxMessage.kind == "send", OutboxMessage.chat_id.is_(None))


async def cards_queued(feed, lead_id: int) -> list[OutboxMessage]:
    return await feed.rows(OutboxMessage, OutboxMessage.kind == "card", OutboxMessage.lead_id == lead_id)


def test_menu_keyboard_has_one_button_per_item(app):
    markup = menu_keyboard(app.funnel, "en")
    buttons = [row[0] for row in markup.inline_keyboard]
    assert [b.text for b in buttons] == ["📄 Price list", "📅 Book a demo", "❓ Ask a question", "👤 Talk to a manager"]
    assert [MenuCb.unpack(b.callback_data).idx for b in buttons] == [0, 1, 2, 3]
    assert menu_keyboard(app.funnel, "uk").inline_keyboard[0][0].text == "📄 Прайс-лист"


def test_link_items_open_their_url():
    data = tomllib.loads(DEFAULT_FUNNEL_PATH.read_text(encoding="utf-8"))
    data["menu"].append({"key": "site", "action": "link", "url": "https://example.com",
                         "label": {"en": "Site", "uk": "Сайт", "ru": "Сайт"}})
    funnel = parse_funnel(data, base_dir=FILES_DIR)
    last = menu_keyboard(funnel, "en").inline_keyboard[-1][0]
    assert (last.text, last.url, last.callback_data) == ("Site", "https://example.com", None)


async def test_price_list(app, feed, emulator):
    lead_id = await feed.make_lead(ANN)
    menu = await show_menu(app, emulator, ANN)
    answer = await feed.press_text(ANN, ANN["id"], "📄 Price list", menu)
    assert answer is not None  # answered at once
    docs = await feed.rows(OutboxMessage, OutboxMessage.kind == "document")
    assert [(d.chat_id, d.lead_id, d.purpose) for d in docs] == [(ANN["id"], lead_id, "price_list")]
    assert docs[0].payload["path"].endswith("price_list.pdf")
    assert docs[0].payload["caption"].startswith("Here is our current price list.")
    lead = await lead_of(feed, ANN)
    assert "price_list" in lead.signals
    assert [e.reason for e in await events(feed, lead_id, "signal")] == ["price_list"]


async def test_price_list_without_a_lead_is_still_sent(app, feed, emulator):
    menu = await show_menu(app, emulator, ANN)
    await feed.press_text(ANN, ANN["id"], "📄 Price list", menu)
    docs = await feed.rows(OutboxMessage, OutboxMessage.kind == "document")
    assert [(d.chat_id, d.lead_id) for d in docs] == [(ANN["id"], None)]


async def test_book_demo_qualifies_and_hands_off(app, feed, emulator):
    lead_id = await feed.make_lead(ANN, BROWSING)
    assert (await lead_of(feed, ANN)).stage == "nurture"
    menu = await show_menu(app, emulator, ANN)
    await feed.press_text(ANN, ANN["id"], "📅 Book a demo", menu)
    lead = await lead_of(feed, ANN)
    assert (lead.stage, lead.handoff_reason) == ("qualified", "signal:book_demo")
    assert "book_demo" in lead.signals
    assert len(await cards_queued(feed, lead_id)) == 1
    assert feed.last_bot_text(ANN["id"]).startswith("Great! A manager will contact you shortly")


async def test_ask_question_hands_off_and_relays(app, feed, emulator):
    lead_id = await feed.make_lead(ANN, BROWSING)
    menu = await show_menu(app, emulator, ANN)
    await feed.press_text(ANN, ANN["id"], "❓ Ask a question", menu)
    assert feed.last_bot_text(ANN["id"]).startswith("Type your question in the next message")
    await feed.message(ANN, "How much is <it> & when?")
    relays = await staff_relays(feed)
    assert len(relays) == 1
    relay = relays[0]
    assert relay.lead_id == lead_id and relay.payload["reply_to_card"] is True and relay.purpose == "relay"
    assert "How much is &lt;it&gt; &amp; when?" in relay.payload["text"]
    assert f"Lead #{lead_id}" in relay.payload["text"]
    assert [e.text for e in await events(feed, lead_id, "relay_in")] == ["How much is <it> & when?"]
    lead = await lead_of(feed, ANN)
    assert "ask_question" in lead.signals
    assert lead.handoff_reason == "question" and lead.handed_off_at is not None
    cards = await cards_queued(feed, lead_id)
    assert len(cards) == 1 and cards[0].id < relay.id  # the card first, then the question under it
    assert feed.last_bot_text(ANN["id"]).startswith("✅ Your question has been passed to a manager")

    # the state is over: the next message is an ordinary message to the managers
    await feed.message(ANN, "one more thing")
    assert len(await staff_relays(feed)) == 2
    assert len(await cards_queued(feed, lead_id)) == 1
    assert feed.last_bot_text(ANN["id"]).startswith("✅ Your question has been passed")  # told once is enough


async def test_question_as_a_photo(app, feed, emulator):
    lead_id = await feed.make_lead(ANN)
    menu = await show_menu(app, emulator, ANN)
    await feed.press_text(ANN, ANN["id"], "❓ Ask a question", menu)
    await feed.message(ANN, photo=True, caption="is this model available?")
    assert [e.text for e in await events(feed, lead_id, "relay_in")] == ["📷 [photo] is this model available?"]


async def test_manager_item(app, feed, emulator):
    lead_id = await feed.make_lead(ANN, BROWSING)
    menu = await show_menu(app, emulator, ANN)
    await feed.press_text(ANN, ANN["id"], "👤 Talk to a manager", menu)
    lead = await lead_of(feed, ANN)
    assert lead.handoff_reason == "manager" and "manager" in lead.signals
    assert len(await cards_queued(feed, lead_id)) == 1
    assert feed.last_bot_text(ANN["id"]) == "We've notified a manager — they will message you here soon."
    assert await staff_relays(feed) == []

    # asking again while the card is still queued: no second card and no ping; the card, posted later,
    # renders the request in its history
    await feed.press_text(ANN, ANN["id"], "👤 Talk to a manager", menu)
    assert len(await cards_queued(feed, lead_id)) == 1
    assert await staff_relays(feed) == []
    assert [e.reason for e in await events(feed, lead_id, "handoff")] == ["manager", "manager"]
    await feed.post_card(lead_id)
    card = feed.last_bot_text(app.staff.id) or ""
    assert card.count("handed to managers: The prospect asked for a manager") == 2

    # asking once the card is out: the managers get a ping under it
    await feed.press_text(ANN, ANN["id"], "👤 Talk to a manager", menu)
    assert len(await cards_queued(feed, lead_id)) == 1
    pings = await staff_relays(feed)
    assert len(pings) == 1 and pings[0].payload["reply_to_card"]
    assert f"lead #{lead_id} asks for a manager" in pings[0].payload["text"]


async def test_manager_command(app, feed):
    lead_id = await feed.make_lead(ANN, BROWSING)
    await feed.message(ANN, "/manager")
    lead = await lead_of(feed, ANN)
    assert lead.handoff_reason == "manager" and lead.handed_off_at is not None
    assert [e.reason for e in await events(feed, lead_id, "handoff")] == ["manager"]
    assert len(await cards_queued(feed, lead_id)) == 1
    assert feed.last_bot_text(ANN["id"]) == "We've notified a manager — they will message you here soon."


async def test_manager_command_without_a_lead(app, feed):
    await feed.message(ANN, "/manager")
    assert feed.last_bot_text(ANN["id"]) == "You don't have an open request yet. Send /start to leave one."
    assert await feed.rows(OutboxMessage) == []


async def test_manager_command_leaves_the_question_state(app, feed, emulator):
    await feed.make_lead(ANN, BROWSING)
    menu = await show_menu(app, emulator, ANN)
    await feed.press_text(ANN, ANN["id"], "❓ Ask a question", menu)
    await feed.message(ANN, "/manager")
    async with feed.session() as session:
        from bot.db.models import FSMRecord

        states = [r.state for r in (await session.scalars(select(FSMRecord))).all()]
    assert MenuStates.question.state not in states


async def test_after_the_handoff_everything_reaches_the_managers(app, feed):
    lead_id = await feed.make_lead(ANN)
    await feed.message(ANN, "hello <b>there</b>")
    await feed.message(ANN, photo=True, caption="my office")
    await feed.message(ANN, voice=True)
    await feed.message(ANN, document={"file_name": "brief.pdf"})
    relays = await staff_relays(feed)
    assert all(r.lead_id == lead_id and r.payload["reply_to_card"] for r in relays)
    assert [e.text for e in await events(feed, lead_id, "relay_in")] == [
        "hello <b>there</b>", "📷 [photo] my office", "🎤 [voice message]", "📎 [file]",
    ]
    assert "hello &lt;b&gt;there&lt;/b&gt;" in relays[0].payload["text"]
    # the first is acknowledged; a chat, not a form: no echo for every message
    assert [m["text"] for m in feed.bot_messages(ANN["id"])] == [RELAYED]


async def relayed_minutes_ago(feed, lead_id: int, minutes: float) -> None:
    """Let time pass: the lead's relayed messages were written `minutes` ago."""
    async with feed.session() as session:
        for event in (await session.scalars(select(LeadEvent).where(
                LeadEvent.lead_id == lead_id, LeadEvent.kind == "relay_in"))).all():
            event.created_at = utcnow() - timedelta(minutes=minutes)
        await session.commit()


def acknowledgements(feed, user=ANN) -> int:
    return sum(m.get("text") == RELAYED for m in feed.bot_messages(user["id"]))


async def test_the_acknowledgement_comes_again_only_after_a_quiet_while(app, feed):
    lead_id = await feed.make_lead(ANN)
    await feed.message(ANN, "first")
    assert acknowledgements(feed) == 1
    await relayed_minutes_ago(feed, lead_id, 9)
    await feed.message(ANN, "nine minutes later")
    assert acknowledgements(feed) == 1
    await relayed_minutes_ago(feed, lead_id, 10)
    await feed.message(ANN, "after ten quiet minutes")
    assert acknowledgements(feed) == 2
    await feed.message(ANN, "and right after")
    assert acknowledgements(feed) == 2
    # nothing is lost: every message reached the managers
    assert [e.text for e in await events(feed, lead_id, "relay_in")] == [
        "first", "nine minutes later", "after ten quiet minutes", "and right after"]
    assert len(await staff_relays(feed)) == 4


async def test_the_acknowledgement_is_decided_from_the_database(app, feed, emulator, flow_settings):
    """A restarted bot (or another replica) does not acknowledge again: the rule reads the lead's events."""
    from bot.app import create_app

    await feed.make_lead(ANN)
    await feed.message(ANN, "before the restart")
    restarted = await create_app(flow_settings, with_delivery=False)
    try:
        again = Feeder(restarted, emulator)
        again.offset = feed.offset
        await again.message(ANN, "after the restart")
        assert acknowledgements(feed) == 1
        assert len(await again.rows(OutboxMessage, OutboxMessage.purpose == "relay")) == 2
    finally:
        await restarted.close()


async def test_a_relay_by_another_replica_counts(app, feed):
    from bot.services.leads import add_event

    lead_id = await feed.make_lead(ANN)
    async with feed.session() as session:
        lead = await session.get(Lead, lead_id)
        add_event(session, lead, "relay_in", text="written through the other replica",
                  at=utcnow() - timedelta(minutes=1))
        await session.commit()
    await feed.message(ANN, "and now through this one")
    assert acknowledgements(feed) == 0
    assert len(await staff_relays(feed)) == 1


async def test_the_acknowledgement_is_in_the_prospects_language(app, feed):
    olga = person(6003, "Оля", "uk")
    await feed.make_lead(olga, locale="uk")
    await feed.message(olga, "коли зателефонуєте?")
    assert feed.last_bot_text(olga["id"]) == "✅ Передано менеджерові. Відповідь надійде сюди."


async def test_before_the_handoff_a_hint(app, feed):
    await feed.message(ANN, "hello?")
    assert feed.last_bot_text(ANN["id"]) == "To leave a request, send /start."
    await feed.make_lead(ANN, BROWSING)
    await feed.message(ANN, "hello again")
    last = feed.bot_messages(ANN["id"])[-1]
    assert last["text"].startswith("Your request is with us. Use the menu below")
    assert len(last["reply_markup"]["inline_keyboard"]) == len(app.funnel.menu)
    assert await staff_relays(feed) == []


async def test_unknown_command(app, feed):
    await feed.message(ANN, "/whatever")
    assert feed.last_bot_text(ANN["id"]).startswith("I don't know this command.")


async def test_the_prospects_language_is_kept(app, feed, emulator):
    olga = person(6002, "Оля", "uk")
    await feed.message(olga, "привіт")
    assert feed.last_bot_text(olga["id"]) == "Щоб залишити заявку, надішліть /start."
    await feed.make_lead(olga, BROWSING, locale="uk")
    menu = await show_menu(app, emulator, olga, "uk")
    await feed.press_text(olga, olga["id"], "📅 Записатися на демо", menu)
    assert feed.last_bot_text(olga["id"]).startswith("Чудово! Менеджер незабаром")
    await feed.press_text(olga, olga["id"], "❓ Поставити запитання", menu)
    await feed.message(olga, "скільки коштує?")
    assert feed.last_bot_text(olga["id"]).startswith("✅ Ваше запитання передано менеджерові")


async def test_stale_menu_index(app, feed, emulator):
    await feed.make_lead(ANN)
    menu = await show_menu(app, emulator, ANN)
    answer = await feed.press(ANN, ANN["id"], menu, MenuCb(idx=42).pack())
    assert answer is not None
    assert feed.last_bot_text(ANN["id"]) == "This menu item is no longer available."


async def test_menu_buttons_in_a_group_are_ignored(app, feed, emulator):
    await feed.make_lead(ANN, BROWSING)
    before = len(await feed.rows(OutboxMessage))
    emulator.create_chat(-4242, type="group", title="Random")
    sent = await app.bot.send_message(-4242, "menu", reply_markup=menu_keyboard(app.funnel, "en"))
    await feed.press(ANN, -4242, sent.message_id, MenuCb(idx=3).pack())
    assert len(await feed.rows(OutboxMessage)) == before
    assert (await lead_of(feed, ANN)).handed_off_at is None
