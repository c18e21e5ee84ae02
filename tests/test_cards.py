"""The staff card: every field from the database, escaped, under 4096 characters, and a keyboard that
matches the lead's stage with ids-only callback data."""
from __future__ import annotations

import re
import tomllib
from datetime import timedelta
from decimal import Decimal

import pytest

from bot import cards
from bot.db.engine import create_engine, create_schema, create_session_factory
from bot.db.models import Lead, Prospect, utcnow
from bot.i18n import Translator
from bot.services import leads
from bot.services.leads import Actor, add_event
from funnel import DEFAULT_FUNNEL_PATH, FILES_DIR, load_funnel, parse_funnel
from handlers.callbacks import LeadCb

SERIOUS = {"need": "product", "budget": "5k_20k", "timeline": "asap", "customer_type": "b2b",
           "company_size": "11_50", "decision_role": "decision_maker", "comment": "Need it <fast> & cheap"}
BROWSING = {"need": "other", "budget": "lt_1k", "timeline": "exploring", "customer_type": "b2c"}
ALLOWED_TAGS = re.compile(r'</?b>|</?i>|<a href="tg://user\?id=\d+">|</a>')
CALLBACK = re.compile(r"^L:[a-z]:\d+:-?\d+:-?\d+:-?\d+$")


@pytest.fixture(scope="module")
def funnel():
    return load_funnel(DEFAULT_FUNNEL_PATH)


@pytest.fixture(scope="module")
def translator():
    return Translator("en")


@pytest.fixture
async def session(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/cards.db")
    await create_schema(engine)
    async with create_session_factory(engine)() as session:
        yield session
    await engine.dispose()


async def make_lead(session, funnel, answers=SERIOUS, *, tg_id=1001, username="ann_b", name="Ann <Boss> & Co",
                    phone="+380501234567", verified=True, email="ann@example.com", source="referral") -> Lead:
    prospect = Prospect(tg_id=tg_id, chat_id=tg_id, username=username, first_name="Ann", name=name, phone=phone,
                        phone_verified=verified, email=email, consent_at=utcnow())
    session.add(prospect)
    await session.flush()
    submitted = await leads.submit(session, funnel, prospect, answers, source=source, locale="en")
    await session.flush()
    return submitted.lead


def visible(text: str) -> str:
    """The card as the reader sees it (tags removed) - and no tag we did not put there ourselves."""
    stripped = ALLOWED_TAGS.sub("", text)
    assert "<" not in stripped and ">" not in stripped, stripped
    return stripped.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def buttons(markup):
    return [button for row in markup.inline_keyboard for button in row]


def unpack(markup) -> list[LeadCb]:
    return [LeadCb.unpack(b.callback_data) for b in buttons(markup)]


async def test_card_shows_every_field(session, funnel, translator):
    lead = await make_lead(session, funnel)
    await leads.assign(session, lead.id, Actor(701, "Max Manager"))
    lead.amount = Decimal("12000.50")
    add_event(session, lead, "note", actor=Actor(701, "Max Manager"), text="called, <b>send</b> offer")
    await session.flush()

    text, _ = await cards.render_card(session, lead, funnel=funnel, translator=translator, locale="en")
    seen = visible(text)
    assert f"Lead #{lead.id}" in seen
    assert "Qualified by score" in seen
    assert "Ann <Boss> & Co" in seen and "Ann &lt;Boss&gt; &amp; Co" in text
    assert "+380501234567 ✅ verified" in seen
    assert "ann@example.com" in seen
    assert "@ann_b" in seen
    assert "Source: referral" in seen
    assert "Budget: $5,000–20,000" in seen and "Need: A product or service" in seen
    assert "Role in the decision: I make the decision" in seen
    assert "Comment: Need it <fast> & cheap" in seen
    assert f"Score {lead.score}" in seen and "Hot" in seen
    assert "Budget: $5,000–20,000: +20" in seen  # the breakdown, rule -> points
    assert "Verified phone: +15" in seen and "Source: referral: +10" in seen
    assert "Stage: Qualified" in seen
    assert "Call within 2 business hours" in seen  # the stage's playbook
    deadline = cards.format_time(lead.stage_changed_at + timedelta(hours=2))
    assert f"Next step due by {deadline}" in seen
    assert "Manager: Max Manager" in seen
    assert "Amount: 12\u202f000.50" in seen
    assert f"Created: {cards.format_time(lead.created_at)}" in seen
    assert "History" in seen
    assert "Max Manager: took the lead" in seen
    assert "Max Manager: 📝 called, <b>send</b> offer" in seen
    assert "Qualified" in seen and "New → Qualified" in seen


async def test_history_keeps_the_last_five_entries_without_score_events(session, funnel, translator):
    lead = await make_lead(session, funnel)
    for n in range(8):
        add_event(session, lead, "note", actor=Actor(701, "Max"), text=f"note {n}")
    await session.flush()
    text = await cards.render_card_text(session, lead, funnel=funnel, translator=translator, locale="en")
    notes = re.findall(r"note (\d)", text)
    assert notes == ["3", "4", "5", "6", "7"]
    assert "score" not in visible(text).split("History")[1].lower()


async def test_telegram_link_without_username_and_unverified_phone(session, funnel, translator):
    lead = await make_lead(session, funnel, BROWSING, username=None, verified=False, email=None, source="direct")
    text, _ = await cards.render_card(session, lead, funnel=funnel, translator=translator, locale="en")
    assert f'<a href="tg://user?id={lead.tg_id}">' in text
    assert "⚠️ not verified" in text
    assert "✉️" not in text
    assert "Stage: <b>Nurture</b>" in text
    assert "Qualified by score" not in text  # nurture leads are not handed off


async def test_handoff_reasons(session, funnel, translator):
    lead = await make_lead(session, funnel, BROWSING)
    for reason, expected in [("manager", "The prospect asked for a manager"),
                             ("question", "The prospect asked a question"),
                             ("signal:book_demo", "Signal: 📅 Book a demo")]:
        lead.handoff_reason, lead.handed_off_at = reason, utcnow()
        text = await cards.render_card_text(session, lead, funnel=funnel, translator=translator, locale="en")
        assert expected in text


async def test_overdue_sla_and_terminal_stage(session, funnel, translator):
    lead = await make_lead(session, funnel)
    later = lead.stage_changed_at + timedelta(hours=3)
    text = await cards.render_card_text(session, lead, funnel=funnel, translator=translator, locale="en", now=later)
    assert "Overdue" in text
    lead.stage, lead.outcome, lead.lost_reason = "lost", "lost", "competitor"
    text, markup = await cards.render_card(session, lead, funnel=funnel, translator=translator, locale="en")
    assert "Overdue" not in text and "due by" not in text
    assert "Reason: Chose a competitor" in text
    assert markup.inline_keyboard == []


async def test_escaping_everywhere(session, funnel, translator):
    evil = '<a href="x">x</a> & <i>'
    lead = await make_lead(session, funnel, {**SERIOUS, "comment": evil}, username=None, name=evil,
                           email="a<b>@example.com", source="src<x>")
    add_event(session, lead, "relay_in", text=evil)
    await leads.assign(session, lead.id, Actor(701, evil))
    await session.flush()
    text = await cards.render_card_text(session, lead, funnel=funnel, translator=translator, locale="en")
    seen = visible(text)  # asserts no foreign tag survived
    assert seen.count(evil) >= 3


async def test_card_stays_under_4096_characters(session, funnel, translator):
    huge = "x" * 5000
    lead = await make_lead(session, funnel, {**SERIOUS, "comment": "<&>" * 3000}, name="N" * 256,
                           email="e" * 300 + "@example.com")
    for _ in range(10):
        add_event(session, lead, "note", actor=Actor(701, "M" * 128), text=huge)
        add_event(session, lead, "relay_out", actor=Actor(701, "M" * 128), text="<" * 4000)
    await session.flush()
    text = await cards.render_card_text(session, lead, funnel=funnel, translator=translator, locale="en")
    assert len(text) <= cards.CARD_LIMIT
    visible(text)
    assert "…" in text


async def test_many_long_answers_are_dropped_from_the_end_but_the_essentials_stay(session, translator, tmp_path):
    data = tomllib.loads(DEFAULT_FUNNEL_PATH.read_text(encoding="utf-8"))
    for n in range(20):
        data["steps"].append({"key": f"extra_{n}", "kind": "text", "optional": True,
                              "title": {"en": f"Extra {n}", "uk": f"Extra {n}", "ru": f"Extra {n}"},
                              "prompt": {"en": "?", "uk": "?", "ru": "?"}})
    big = parse_funnel(data, base_dir=FILES_DIR)
    answers = {**SERIOUS, **{f"extra_{n}": "y" * 1000 for n in range(20)}}
    lead = await make_lead(session, big, answers)
    text, markup = await cards.render_card(session, lead, funnel=big, translator=translator, locale="en")
    assert len(text) <= cards.CARD_LIMIT
    seen = visible(text)
    for essential in (f"Lead #{lead.id}", "Stage: Qualified", "+380501234567", "Manager:", "Extra 0", "…"):
        assert essential in seen
    assert "Extra 19" not in seen
    assert buttons(markup)


async def test_anonymized_card_has_no_personal_data(session, funnel, translator):
    lead = await make_lead(session, funnel)
    lead.anonymized = True
    lead.name = lead.phone = lead.email = lead.username = None
    text = await cards.render_card_text(session, lead, funnel=funnel, translator=translator, locale="en")
    assert "erased" in text
    assert "+380" not in text and "Budget:" not in text.split("Score")[0]


@pytest.mark.parametrize("locale, word", [("uk", "Заявка"), ("ru", "Заявка")])
async def test_card_in_other_languages(session, funnel, translator, locale, word):
    lead = await make_lead(session, funnel)
    text, markup = await cards.render_card(session, lead, funnel=funnel, translator=translator, locale=locale)
    assert f"{word} #{lead.id}" in text
    assert funnel.label(funnel.stage("qualified").title, locale) in text
    assert buttons(markup)[0].text.endswith("Взяти" if locale == "uk" else "Взять")


# ---------------------------------------------------------------------------- keyboards


async def test_keyboard_of_an_unassigned_qualified_lead(session, funnel, translator):
    lead = await make_lead(session, funnel)
    _, markup = await cards.render_card(session, lead, funnel=funnel, translator=translator, locale="en")
    data = unpack(markup)
    at = funnel.stage_index("qualified")
    assert all(d.lead == lead.id and d.at == at for d in data)
    assert data[0].action == "t"
    moves = [funnel.stages[d.to].key for d in data if d.action == "m"]
    assert moves == ["contacted", "nurture"]  # allowed moves except lost; no Won from qualified
    lost = [d for d in data if d.action == "l"]
    assert len(lost) == 1 and funnel.stages[lost[0].to].key == "lost"


@pytest.mark.parametrize("stage", ["new", "qualified", "contacted", "proposal", "negotiation", "nurture"])
async def test_keyboard_per_stage(session, funnel, translator, stage):
    lead = await make_lead(session, funnel)
    lead.stage = stage
    await leads.assign(session, lead.id, Actor(701, "Max"))
    markup = cards.card_keyboard(funnel, lead, translator.for_locale("en"), "en")
    data = unpack(markup)
    assert not [d for d in data if d.action == "t"]  # assigned: no Take
    expected = [s.key for s in funnel.stages if s.key in funnel.stage(stage).to and s.outcome != "lost"]
    assert sorted(funnel.stages[d.to].key for d in data if d.action == "m") == sorted(expected)
    assert [d.action for d in data].count("l") == (1 if "lost" in funnel.stage(stage).to else 0)
    won = [b for b in buttons(markup) if b.text.startswith("🏆")]
    assert len(won) == (1 if "won" in funnel.stage(stage).to else 0)
    for d in data:
        assert d.at == funnel.stage_index(stage)


@pytest.mark.parametrize("stage", ["won", "lost"])
async def test_terminal_stage_has_no_buttons(session, funnel, translator, stage):
    lead = await make_lead(session, funnel)
    lead.stage = stage
    assert cards.card_keyboard(funnel, lead, translator.for_locale("en"), "en").inline_keyboard == []


async def test_lost_reason_picker(session, funnel, translator):
    lead = await make_lead(session, funnel)
    lost = funnel.stage_index("lost")
    markup = cards.lost_reason_keyboard(funnel, lead, translator.for_locale("en"), "en", lost)
    data = unpack(markup)
    assert [d.reason for d in data if d.action == "x"] == list(range(len(funnel.lost_reasons)))
    assert all(d.to == lost for d in data if d.action == "x")
    assert data[-1].action == "b"
    assert [b.text for b in buttons(markup)][:2] == ["Too expensive", "Chose a competitor"]


async def test_callback_data_is_small_and_ids_only(session, funnel, translator):
    lead = await make_lead(session, funnel)
    lead.id = 2**62  # the worst case id
    t = translator.for_locale("en")
    for stage in funnel.stages:
        lead.stage, lead.manager_id = stage.key, None
        markups = [cards.card_keyboard(funnel, lead, t, "en"),
                   cards.lost_reason_keyboard(funnel, lead, t, "en", funnel.stage_index("lost"))]
        for markup in markups:
            for button in buttons(markup):
                assert len(button.callback_data.encode()) <= 64
                assert CALLBACK.match(button.callback_data), button.callback_data
                assert "Ann" not in button.callback_data and "380" not in button.callback_data


def test_format_amount():
    assert cards.format_amount(Decimal(12000)) == "12\u202f000"
    assert cards.format_amount("12000.5") == "12\u202f000.50"
    assert cards.format_amount(0) == "0"
