"""Fault injection end to end: the real `python -m bot` process against the Bot API emulator.

Each test injects one kind of trouble through the emulator (429 storms, 5xx, dropped connections, a kill -9
in the middle of a send, racing managers, a burst of messages, a blocked prospect, a migrated staff chat,
a poison update), then checks that nothing was lost or doubled, and records its figures (`figure(...)`,
printed as "reliability figures" at the end of the run). Every test also checks that the bot's whole log
holds none of the prospects' personal data.
"""
from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from typing import Any

import pytest

from bot.db.models import DeadLetter, FSMRecord, KeyValue, Lead, LeadEvent, OutboxMessage, Prospect
from tests.conftest import MANAGERS, STAFF_CHAT, user
from tests.reliability.conftest import (
    Person,
    assert_no_personal_data,
    figure,
    finish_dialogue,
    is_bot,
    people,
    qualify,
    shows,
    to_name_step,
    wait_until,
)

pytestmark = pytest.mark.e2e
CARD_ID = re.compile(r"Lead #(\d+)")
MAX = user(MANAGERS[0], "Max", "en")
OLGA = user(MANAGERS[1], "Olga", "en")


def cards_in(emulator: Any, chat_id: int = STAFF_CHAT) -> list[tuple[int, int]]:
    """(message_id, lead id) of every lead card the bot posted in a chat, in message order."""
    out = []
    for message in emulator.messages(chat_id):
        found = CARD_ID.search(message.get("text") or "") if is_bot(message) else None
        if found and "reply_to_message" not in message:
            out.append((message["message_id"], int(found.group(1))))
    return out


def secrets_of(crowd: list[tuple[Person, str, str, str]]) -> list[str]:
    out = []
    for person, name, phone, email in crowd:
        out += [name, phone, email, person.user["username"]]
    return out


def card_row(db: Any, lead_id: int | None = None) -> OutboxMessage | None:
    where = [OutboxMessage.kind == "card"] + ([OutboxMessage.lead_id == lead_id] if lead_id is not None else [])
    rows = db.rows(OutboxMessage, *where)
    return rows[0] if rows else None


def sends(emulator: Any, chat_id: int, since: int = 0, method: str = "sendMessage") -> list[dict[str, Any]]:
    return [c for c in emulator.calls(since=since, method=method) if c["params"].get("chat_id") == chat_id]


# ------------------------------------------------------------------------------------------ one shared process
# These tests do not restart the bot, so they share one process (see `conftest.shared_bot`): every
# prospect has its own id and every assertion is about that prospect's rows.

SHARED = pytest.mark.asyncio(loop_scope="module")


def lead_of(db: Any, person: Person) -> Lead:
    [lead] = db.rows(Lead, Lead.tg_id == person.id)
    return lead


async def committed_lead(db: Any, person: Person) -> Lead:
    """The prospect's lead once the update that created it has committed (replies go out before the
    commit, so a reply alone does not mean the row is there)."""
    await wait_until(lambda: db.rows(Lead, Lead.tg_id == person.id), 20, "the lead committed")
    return lead_of(db, person)


async def carded_lead(scene: Any, first: int) -> tuple[list[Any], Lead, int]:
    """One prospect qualified, their lead committed and its card posted: (the crowd, the lead, the card)."""
    crowd = people(scene.emulator, 1, first=first)
    bob, name, phone, email = crowd[0]
    await qualify(bob, name, phone, email)
    lead = await committed_lead(scene.db, bob)
    [card_id] = await wait_until(lambda: cards_of(scene.emulator, lead.id), 30, "the card")
    return crowd, lead, card_id


def cards_of(emulator: Any, lead_id: int, chat_id: int = STAFF_CHAT) -> list[int]:
    return [message_id for message_id, found in cards_in(emulator, chat_id) if found == lead_id]


def card_text(emulator: Any, message_id: int, chat_id: int = STAFF_CHAT) -> str:
    return next(m for m in emulator.messages(chat_id) if m["message_id"] == message_id).get("text", "")


@SHARED
async def test_5xx_and_dropped_connections_lose_nothing_and_double_nothing(scene):
    """getUpdates, the dialogue's replies and the card post each meet 5xx and a dropped connection:
    polling backs off, a reply inside an update is retried there (the prospect's answer is not rolled
    back), the card is retried by the outbox with backoff. No dead letter, no duplicate."""
    emulator, db = scene.emulator, scene.db
    crowd = people(emulator, 1, first=2101)
    bob, name, phone, email = crowd[0]
    await wait_until(scene.idle_outbox, 30, "the outbox is idle")
    since = emulator.calls()[-1]["seq"]
    emulator.add_faults([{"method": "getUpdates", "error_code": 502, "count": 1},
                         {"method": "getUpdates", "drop_connection": True, "count": 1}])
    await to_name_step(bob)
    emulator.add_faults([{"method": "sendMessage", "chat_id": bob.id, "error_code": 500, "count": 1},
                         {"method": "sendMessage", "chat_id": bob.id, "drop_connection": True, "count": 1}])
    await bob.say(name, then="Please share your phone number")
    emulator.add_faults([{"method": "editMessageText", "chat_id": bob.id, "error_code": 503, "count": 1},
                         {"method": "sendMessage", "chat_id": STAFF_CHAT, "error_code": 500, "count": 1},
                         {"method": "sendMessage", "chat_id": STAFF_CHAT, "drop_connection": True, "count": 1}])
    await finish_dialogue(bob, phone, email)
    lead = await committed_lead(db, bob)
    await wait_until(lambda: cards_of(emulator, lead.id), 30, "the card")
    await wait_until(lambda: card_row(db, lead.id).status == "sent", 20, "the card row recorded")

    failed = [c for c in emulator.calls(since=since) if c["fault"] is not None]
    assert len(failed) == 7 and emulator.faults() == []  # every injected fault fired
    texts = [m.get("text", "") for m in bob.bot_messages()]
    assert sum("Please share your phone number" in t for t in texts) == 1  # asked once: no duplicate
    assert sum("What's your name?" in t for t in texts) == 1  # and the name was not asked again
    lead = lead_of(db, bob)
    assert (lead.name, lead.phone, lead.email) == (name, phone, email)
    assert cards_of(emulator, lead.id) == [lead.card_message_id]
    card = card_row(db, lead.id)
    assert card.status == "sent" and card.attempts == 2 and card.message_id == lead.card_message_id
    assert db.rows(DeadLetter, DeadLetter.user_id == bob.id) == []
    assert_no_personal_data(scene.bot.output(), secrets_of(crowd))
    figure("5xx and dropped connections", injected=len(failed), get_updates_failures=2, reply_failures=3,
           card_failures=2, card_attempts_recorded=card.attempts, dead_letters=0, duplicates=0)


@SHARED
async def test_two_managers_press_the_same_move_at_once(scene):
    """Both presses arrive in one getUpdates batch: exactly one stage change; the other manager is told
    the lead has moved (by whom, or that the card is out of date) and nothing else changes."""
    emulator, db = scene.emulator, scene.db
    crowd, lead, card_id = await carded_lead(scene, first=2401)
    bob = crowd[0][0]
    first = emulator.press(MAX, STAFF_CHAT, "Contacted", message_id=card_id)
    second = emulator.press(OLGA, STAFF_CHAT, "Contacted", message_id=card_id)
    assert first["data"] == second["data"]
    answers = [(await wait_until(lambda q=q: emulator.callback_answer(q["callback_query_id"]), 20, "answer"))["text"]
               for q in (first, second)]
    moved = [a for a in answers if a.startswith("Moved to")]
    assert len(moved) == 1
    [loser] = [a for a in answers if a not in moved]
    assert loser.startswith("Already moved to “Contacted” by")
    await wait_until(lambda: lead_of(db, bob).stage == "contacted", 20, "the move committed")
    manual = db.rows(LeadEvent, LeadEvent.lead_id == lead.id, LeadEvent.kind == "stage",
                     LeadEvent.actor_id.is_not(None))
    assert len(manual) == 1 and lead_of(db, bob).stage == "contacted" == manual[0].to_stage
    await wait_until(lambda: "Stage: Contacted" in card_text(emulator, card_id), 20, "the card edited")
    assert db.rows(DeadLetter, DeadLetter.user_id.in_([MAX["id"], OLGA["id"]])) == []
    assert_no_personal_data(scene.bot.output(), secrets_of(crowd))
    figure("two managers press at once", stage_events=len(manual), winner=moved[0], loser=loser)


@SHARED
async def test_ten_messages_at_once_at_the_phone_step_store_one_phone(scene):
    """Ten numbers sent in one burst are handled one at a time: the first is stored and moves the dialogue
    to the e-mail step once; the nine others are answered there as invalid e-mails. (This process runs
    with FLOOD_MESSAGES=20; flood control has its own tests.)"""
    emulator, db = scene.emulator, scene.db
    crowd = people(emulator, 1, first=2501)
    bob, name, *_ = crowd[0]
    await to_name_step(bob)
    await bob.say(name, then="Please share your phone number")
    before = bob.last_id()
    phones = [f"+38067555{i:04d}" for i in range(10)]
    for number in phones:
        emulator.inject_message(bob.user, number)
    await wait_until(lambda: sum(shows(m, "valid email") for m in bob.bot_messages()
                                 if m["message_id"] > before) == 9, 30, "nine answers at the e-mail step")
    replies = [m for m in bob.bot_messages() if m["message_id"] > before]
    [prospect] = db.rows(Prospect, Prospect.tg_id == bob.id)
    assert prospect.phone in phones
    assert sum(shows(m, "Got it") for m in replies) == 1
    assert len(replies) == 11  # "Got it" + the e-mail question, then nine "not a valid e-mail"
    [state] = db.rows(FSMRecord, FSMRecord.key.contains(f":{bob.id}:{bob.id}"))
    assert state.data["step"] == "email" and state.data["answers"]["phone"] == prospect.phone
    assert db.rows(DeadLetter, DeadLetter.user_id == bob.id) == []
    assert_no_personal_data(scene.bot.output(), [*secrets_of(crowd), *phones])
    figure("ten messages at once", messages=10, phones_stored=1, advanced=1, replies=len(replies))


@SHARED
async def test_blocked_prospect_is_marked_unreachable_and_nothing_is_sent_to_them(scene):
    """Telegram tells the bot of a block (my_chat_member): the card says so before anybody writes, a
    manager's reply is refused at once, and nothing is ever tried in the prospect's chat; the unblock
    is on the card too."""
    emulator, db = scene.emulator, scene.db
    crowd, lead, card_id = await carded_lead(scene, first=2651)
    bob = crowd[0][0]
    since = emulator.calls()[-1]["seq"]
    emulator.block(bob.id)
    await wait_until(lambda: db.rows(Prospect, Prospect.tg_id == bob.id)[0].unreachable, 20, "unreachable")
    await wait_until(lambda: "blocked the bot" in card_text(emulator, card_id), 20, "the card edited")
    max_ = Person(emulator, MAX, STAFF_CHAT)
    await max_.say("We can call you tomorrow at 10", then="has blocked the bot", reply_to_message_id=card_id)
    assert db.rows(OutboxMessage, OutboxMessage.lead_id == lead.id, OutboxMessage.purpose == "relay") == []

    emulator.block(bob.id, blocked=False)
    await wait_until(lambda: "unblocked the bot" in card_text(emulator, card_id), 20, "the card says they are back")
    assert not db.rows(Prospect, Prospect.tg_id == bob.id)[0].unreachable
    assert sends(emulator, bob.id, since) == []  # not one try while they were away, nor a "welcome back"
    await max_.say("We can call you tomorrow at 10", then="Sent to the prospect", reply_to_message_id=card_id)
    await wait_until(lambda: any("tomorrow at 10" in (m.get("text") or "") for m in bob.bot_messages()), 20,
                     "the reply reaches Bob")
    assert_no_personal_data(scene.bot.output(), secrets_of(crowd))
    figure("blocked prospect (my_chat_member)", sends_while_blocked=0,
           managers_told="card history before any reply + refusal of the reply")


@SHARED
async def test_a_send_refused_with_403_marks_the_prospect_unreachable_and_is_not_retried(scene):
    """Without the update (lost, or from before the bot asked for it), the first 403 does the same."""
    emulator, db = scene.emulator, scene.db
    crowd, lead, card_id = await carded_lead(scene, first=2601)
    bob = crowd[0][0]
    emulator.add_faults([{"method": "sendMessage", "chat_id": bob.id, "error_code": 403, "count": 0,
                          "description": "Forbidden: bot was blocked by the user"}])
    since = emulator.calls()[-1]["seq"]
    max_ = Person(emulator, MAX, STAFF_CHAT)
    await max_.say("We can call you tomorrow at 10", then="Sent to the prospect", reply_to_message_id=card_id)
    await wait_until(lambda: db.rows(Prospect, Prospect.tg_id == bob.id)[0].unreachable, 20, "unreachable")
    [relay] = db.rows(OutboxMessage, OutboxMessage.lead_id == lead.id, OutboxMessage.purpose == "relay")
    assert relay.status == "dead" and relay.attempts == 1 and "blocked" in relay.error
    # the managers see it on the card, and a second reply is refused at once
    await wait_until(lambda: "blocked the bot" in card_text(emulator, card_id), 20, "the card edited")
    await max_.say("Hello?", then="has blocked the bot", reply_to_message_id=card_id)
    await asyncio.sleep(1.5)  # a retry would have happened by now (the backoff starts at 0.5-1 s)
    to_bob = sends(emulator, bob.id, since)
    assert [c["status"] for c in to_bob] == [403]  # one try, never again
    assert len(db.rows(OutboxMessage, OutboxMessage.lead_id == lead.id, OutboxMessage.purpose == "relay")) == 1

    emulator.clear_faults()  # they come back: served, and reachable again
    await bob.say("/start", then="Welcome back")
    await wait_until(lambda: not db.rows(Prospect, Prospect.tg_id == bob.id)[0].unreachable, 10, "reachable")
    assert_no_personal_data(scene.bot.output(), secrets_of(crowd))
    figure("blocked prospect (403)", sends_to_blocked_chat=len(to_bob), relay_attempts=relay.attempts,
           managers_told="card history + refusal of the next reply")


@SHARED
async def test_a_poison_update_becomes_a_dead_letter_and_the_chat_goes_on(scene):
    """A name with a lone UTF-16 surrogate (valid JSON, but not storable as UTF-8) makes the handler
    raise on flush: the update is kept as a dead letter with its id, the prospect gets the apology,
    and the same prospect - and everybody else - is served normally right after."""
    emulator, db = scene.emulator, scene.db
    crowd = people(emulator, 2, first=2801)
    (bob, name, *_), (ann, ann_name, *_) = crowd
    await to_name_step(bob)
    await to_name_step(ann)
    await bob.say("\ud800", then="Sorry, something went wrong")
    poison = bob.sent["update_id"]
    [letter] = db.rows(DeadLetter, DeadLetter.user_id == bob.id)
    assert letter.update_id == poison and "UnicodeEncodeError" in letter.error
    assert letter.update["update_id"] == poison
    await bob.say(name, then="Please share your phone number")  # the same chat goes on
    await ann.say(ann_name, then="Please share your phone number")  # and so does everybody else
    await wait_until(lambda: db.rows(Prospect, Prospect.tg_id == bob.id)[0].name == name, 10, "the name stored")
    assert f"update {poison} failed" in scene.bot.output()
    assert_no_personal_data(scene.bot.output(), secrets_of(crowd))
    figure("poison update", dead_letters=1, apology=True, same_chat_served_after=True)


# ------------------------------------------------------------------------------------------ own process


# ------------------------------------------------------------------------------------------ 429 storms


async def test_429_storm_on_staff_cards_every_card_once_in_order_within_the_group_limit(
        emulator, start_bot, db):
    """25 prospects qualify at once while the staff chat answers 429 (two storms, retry_after 1 s and 2 s).

    The real 20 cards/minute would make this take over a minute, so the emulator's group limit and the
    bot's OUTBOX_GROUP_PER_MINUTE are both set to 600/minute (and the per-chat pace to 10/s); the 20/minute
    pacing itself is proven on a fake clock in tests/test_delivery.py. What this proves end to end: every
    card arrives exactly once, in lead order, every retry_after is waited out, and the emulator never had
    to refuse a send for going over its own group limit."""
    emulator.set_limits(group_per_minute=600)
    bot = await start_bot(outbox_group_per_minute=600, outbox_chat_per_second=10)
    emulator.add_faults([{"method": "sendMessage", "chat_id": STAFF_CHAT, "error_code": 429, "retry_after": 1,
                          "count": 3}])
    crowd = people(emulator, 25)
    started = time.monotonic()

    async def second_storm() -> None:
        await wait_until(lambda: len(cards_in(emulator)) >= 10, 120, "ten cards")
        emulator.add_faults([{"method": "sendMessage", "chat_id": STAFF_CHAT, "error_code": 429,
                              "retry_after": 2, "count": 2}])

    storm = asyncio.create_task(second_storm())
    await asyncio.gather(*(qualify(p, name, phone, email, timeout=60) for p, name, phone, email in crowd))
    dialogues = time.monotonic() - started
    await wait_until(lambda: len(cards_in(emulator)) >= 25, 120, "25 cards")
    await storm
    await wait_until(lambda: all(r.status == "sent" for r in db.rows(OutboxMessage, OutboxMessage.kind == "card")),
                     30, "every card row sent")
    elapsed = time.monotonic() - started

    leads = db.rows(Lead, order=Lead.id)
    assert len(leads) == 25 and all(lead.stage == "qualified" for lead in leads)
    posted = cards_in(emulator)
    assert [lead_id for _, lead_id in posted] == [lead.id for lead in leads]  # each once, in lead order
    assert {lead.id: lead.card_message_id for lead in leads} == {lead_id: mid for mid, lead_id in posted}

    calls = sends(emulator, STAFF_CHAT)
    injected = [c for c in calls if c["status"] == 429 and c["fault"] is not None]
    refused = [c for c in calls if c["status"] == 429 and c["fault"] is None]
    assert len(injected) == 5
    assert refused == []  # the bot never went over the emulator's own group limit
    waits = []
    for hit in injected:  # nothing was sent to the staff chat before retry_after had passed
        retry_after = hit["response"]["parameters"]["retry_after"]
        later = [c for c in calls if c["seq"] > hit["seq"]]
        assert later, "a send followed the flood wait"
        waits.append(round(later[0]["ts"] - hit["ts"], 3))
        assert later[0]["ts"] - hit["ts"] >= retry_after
    per_minute = max(sum(1 for c in calls if c["status"] == 200 and 0 <= c["ts"] - first["ts"] < 60)
                     for first in calls)
    assert per_minute <= 600
    assert db.rows(DeadLetter) == []
    assert_no_personal_data(bot.output(), secrets_of(crowd))
    figure("429 storm on staff cards", cards=25, delivered_once_in_order=True, injected_429=len(injected),
           emulator_refusals=len(refused), staff_send_calls=len(calls), waits_after_429_s=waits,
           max_sends_in_any_60s=per_minute, dialogues_s=round(dialogues, 1), total_s=round(elapsed, 1))


async def test_sigkill_during_card_sends_loses_no_card_and_doubles_at_most_one(emulator, start_bot, db, tmp_path):
    """A card row is claimed ("sending", committed) before the HTTP call and recorded ("sent" + message_id)
    after it; a row found "sending" at start-up is sent again. Two kills -9 show both sides of that:

    1. while Telegram has not answered the card post yet (a 5 s delay): the request dies with the
       connection, the restarted bot posts the card - visible once;
    2. after Telegram has posted the card but before the bot recorded it (the test holds the database's
       write lock so the bot cannot write "sent"): the restarted bot posts it again - visible twice, never
       three times, never zero, and the lead points at the newer card."""
    crowd = people(emulator, 2, first=2201)
    (ann, *ann_data), (bob, *bob_data) = crowd
    bot = await start_bot()
    emulator.add_faults([{"method": "sendMessage", "chat_id": STAFF_CHAT, "delay": 5, "count": 1}])
    await qualify(ann, *ann_data)
    ann_lead = await committed_lead(db, ann)
    await wait_until(lambda: card_row(db, ann_lead.id).status == "sending", 20, "card in flight")
    assert await bot.kill() == -9
    assert cards_in(emulator) == []

    bot = await start_bot()
    await wait_until(lambda: card_row(db, ann_lead.id).status == "sent", 30, "the card sent after the restart")
    hung = cards_of(emulator, ann_lead.id)
    assert hung == [lead_of(db, ann).card_message_id]  # visible once
    assert "sending them again (at most one duplicate each)" in bot.output()

    emulator.add_faults([{"method": "sendMessage", "chat_id": STAFF_CHAT, "delay": 2, "count": 1}])
    await qualify(bob, *bob_data)
    bob_lead = await committed_lead(db, bob)
    await wait_until(lambda: card_row(db, bob_lead.id).status == "sending", 20, "card in flight")
    lock = sqlite3.connect(tmp_path / "leadbot.db", timeout=30, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")  # from now on the bot cannot write anything
        status = lock.execute("SELECT status FROM outbox WHERE kind = 'card' AND lead_id = ?", (bob_lead.id,))
        assert status.fetchone() == ("sending",)
        await wait_until(lambda: cards_of(emulator, bob_lead.id), 20, "Telegram accepted the card")
        await asyncio.sleep(0.3)  # the bot has Telegram's answer and waits for the database
        assert await bot.kill() == -9
    finally:
        lock.rollback()
        lock.close()

    await start_bot()
    await wait_until(lambda: card_row(db, bob_lead.id).status == "sent", 30, "the card sent again")
    await asyncio.sleep(1)  # nothing else comes
    accepted = cards_of(emulator, bob_lead.id)
    assert len(accepted) == 2  # one visible duplicate, no more
    assert lead_of(db, bob).card_message_id == accepted[-1] == card_row(db, bob_lead.id).message_id
    assert cards_of(emulator, ann_lead.id) == hung
    assert_no_personal_data(bot.output(), secrets_of(crowd))
    figure("SIGKILL while the card send hangs", cards_visible=len(hung), duplicates=len(hung) - 1)
    figure("SIGKILL after Telegram accepted the card", cards_visible=len(accepted), duplicates=len(accepted) - 1)


async def test_migrated_staff_chat_the_next_card_arrives_in_the_new_chat(emulator, start_bot, db):
    bot = await start_bot()
    crowd = people(emulator, 1, first=2701)
    bob, name, phone, email = crowd[0]
    new_chat = STAFF_CHAT - 1_000_000
    emulator.migrate(STAFF_CHAT, new_chat)
    await qualify(bob, name, phone, email)
    [(card_id, lead_id)] = await wait_until(lambda: cards_in(emulator, new_chat), 30, "the card in the new chat")
    assert cards_in(emulator) == []
    migrated = [c for c in sends(emulator, STAFF_CHAT) if c["status"] == 400]
    assert len(migrated) == 1 and migrated[0]["response"]["parameters"]["migrate_to_chat_id"] == new_chat
    # managers work in the new chat: their presses are authorised there
    pressed = emulator.press(MAX, new_chat, "Take", message_id=card_id)
    answer = await wait_until(lambda: emulator.callback_answer(pressed["callback_query_id"]), 20, "the answer")
    assert answer["text"] == "✅ The lead is yours."
    await wait_until(lambda: db.rows(Lead)[0].manager_id == MAX["id"], 10, "the take committed")
    assert db.rows(Lead)[0].id == lead_id
    assert db.rows(KeyValue, KeyValue.key == "staff_chat_id")[0].value == {"from": STAFF_CHAT, "to": new_chat}
    assert_no_personal_data(bot.output(), secrets_of(crowd))
    figure("migrated staff chat", sends_to_old_chat=len(migrated), card_in_new_chat=True)
