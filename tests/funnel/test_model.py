from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from funnel import (
    DEFAULT_FUNNEL_PATH,
    EXAMPLE_FUNNELS,
    FILES_DIR,
    REQUIRED_TEXTS,
    Funnel,
    FunnelError,
    load_funnel,
    parse_funnel,
)
from funnel import model as model_module
from tests.funnel import default_data, shipped

# ---------------------------------------------------------------------------- shipped files


@pytest.mark.parametrize("name", sorted(EXAMPLE_FUNNELS))
def test_shipped_files_load(name: str) -> None:
    funnel = load_funnel(EXAMPLE_FUNNELS[name])
    assert funnel.name == name
    assert funnel.locales == ["en", "uk", "ru"]
    assert set(REQUIRED_TEXTS) <= set(funnel.texts)
    assert funnel.steps[0].kind == "consent"
    assert [s.kind for s in funnel.steps].count("phone") == 1
    assert [s.kind for s in funnel.steps].count("name") == 1
    assert funnel.won_stage is not None and funnel.lost_stage is not None
    assert funnel.lost_reasons
    price_lists = [m for m in funnel.menu if m.action == "price_list"]
    assert price_lists and all(m.document and m.document.is_file() for m in price_lists)
    for locale in funnel.locales:
        assert "{ $name }" not in funnel.text("returning", locale, name="Ann")
        assert "Ann" in funnel.text("returning", locale, name="Ann")
        assert "/forget" in funnel.text("privacy", locale)


def test_default_paths() -> None:
    assert DEFAULT_FUNNEL_PATH == FILES_DIR / "default.toml"
    assert EXAMPLE_FUNNELS["default"] == DEFAULT_FUNNEL_PATH
    assert set(EXAMPLE_FUNNELS) == {"default", "b2c_aida", "b2b"}


def test_default_funnel_shape() -> None:
    f = shipped()
    assert [s.key for s in f.steps] == [
        "consent",
        "name",
        "phone",
        "email",
        "need",
        "budget",
        "timeline",
        "customer_type",
        "company_size",
        "decision_role",
        "comment",
    ]
    assert f.step("email").optional and f.step("comment").optional
    assert not f.step("phone").optional
    assert f.step("name").max_length == 100
    assert f.step("comment").max_length == 1000
    assert f.step("company_size").show_if == {"customer_type": ["b2b"]}
    assert f.step("decision_role").show_if == {"customer_type": ["b2b"]}
    assert 3 <= len(f.step("need").options) <= 5
    assert len(f.step("budget").options) == 4
    assert [o.key for o in f.step("timeline").options] == ["asap", "this_month", "this_quarter", "exploring"]
    assert [o.key for o in f.step("customer_type").options] == ["b2c", "b2b"]
    assert [o.key for o in f.step("decision_role").options] == ["decision_maker", "influencer", "researching"]

    probabilities = {s.key: s.probability for s in f.stages}
    assert probabilities == {
        "new": 5,
        "qualified": 20,
        "contacted": 30,
        "proposal": 50,
        "negotiation": 75,
        "won": 100,
        "lost": 0,
        "nurture": 5,
    }
    assert (f.initial_stage, f.qualified_stage, f.nurture_stage) == ("new", "qualified", "nurture")
    assert not f.stage("nurture").active
    assert f.stage("nurture").to == ["qualified", "lost"]
    assert f.stage("won").terminal and f.stage("won").outcome == "won"
    assert f.stage("lost").terminal and f.stage("lost").outcome == "lost"
    assert all(s.playbook for s in f.stages)
    assert f.stage("contacted").notify_prospect and f.stage("proposal").notify_prospect
    assert [r.key for r in f.lost_reasons] == [
        "too_expensive",
        "competitor",
        "no_budget",
        "no_response",
        "not_a_fit",
    ]
    assert [(m.key, m.action, m.signal) for m in f.menu] == [
        ("price_list", "price_list", "price_list"),
        ("book_demo", "book_demo", "book_demo"),
        ("ask_question", "ask_question", "ask_question"),
        ("manager", "manager", "manager"),
    ]
    assert f.signal_moves == {"book_demo": "qualified"}
    assert [b.key for b in f.scoring.bands] == ["cold", "warm", "hot"]
    assert f.known_signals == {"price_list", "book_demo", "ask_question", "manager", "quick_answers"}


def test_price_list_is_a_valid_one_page_pdf() -> None:
    data = shipped().menu_item("price_list").document.read_bytes()
    assert data.startswith(b"%PDF-1.")
    assert data.rstrip().endswith(b"%%EOF")
    assert data.count(b"/Type /Page ") == 1
    # The cross-reference table must point at the start of every object.
    start = int(re.search(rb"startxref\s+(\d+)", data).group(1))
    assert data[start : start + 4] == b"xref"
    offsets = [int(o) for o in re.findall(rb"(\d{10}) 00000 n", data[start:])]
    assert offsets
    for number, offset in enumerate(offsets, 1):
        assert data[offset:].startswith(b"%d 0 obj" % number)
    length_match = re.search(rb"/Length (\d+) >>\nstream\n", data)
    end = length_match.end() + int(length_match.group(1))
    assert data[end : end + len(b"endstream")] == b"endstream"
    assert b"Price list" in data


def test_b2b_won_then_support() -> None:
    f = shipped("b2b")
    assert f.won_stage.key == "deal"
    assert f.stage("deal").to == ["post_sale_support"]
    assert not f.stage("deal").terminal
    assert f.stage("post_sale_support").terminal and f.stage("post_sale_support").outcome == "won"
    assert {"company_size", "role", "budget", "timeline", "industry"} <= {s.key for s in f.steps}


def test_b2c_aida_stages() -> None:
    f = shipped("b2c_aida")
    assert [s.key for s in f.stages][:4] == ["attention", "interest", "desire", "action"]
    assert f.won_stage.key == "action"
    assert any(m.action == "link" and m.url for m in f.menu)


# ---------------------------------------------------------------------------- helpers


def test_text_locale_fallback_and_placeholders() -> None:
    f = shipped()
    en = f.texts["returning"]["en"]
    assert f.text("returning", "de", name="Ann") == en.replace("{ $name }", "Ann")
    assert f.text("returning", None, name="Ann") == en.replace("{ $name }", "Ann")
    assert f.text("returning", "uk-UA", name="Оля") == f.texts["returning"]["uk"].replace("{ $name }", "Оля")
    # placeholders without a value stay visible rather than silently disappearing
    assert "{ $name }" in f.text("returning", "en")
    with pytest.raises(KeyError):
        f.text("no_such_text", "en")
    assert f.resolve_locale("ru-RU") == "ru"
    assert f.resolve_locale("fr") == "en"


def test_label_and_lookups() -> None:
    f = shipped()
    title = f.step("budget").title
    assert f.label(title, "uk") == title["uk"]
    assert f.label(title, "xx") == title["en"]
    assert f.label(None, "en") == ""
    assert f.has_step("budget") and not f.has_step("nope")
    with pytest.raises(KeyError):
        f.step("nope")
    with pytest.raises(KeyError):
        f.stage("nope")
    assert [f.stage_index(s.key) for s in f.stages] == list(range(len(f.stages)))
    assert f.stage_index("proposal") == 3
    assert f.won_stage.key == "won" and f.lost_stage.key == "lost"
    assert f.lost_reason("competitor").key == "competitor" and f.lost_reason("x") is None


# ---------------------------------------------------------------------------- bad files

Mutator = Callable[[dict[str, Any]], Any]


def _step(d: dict[str, Any], key: str) -> dict[str, Any]:
    return next(s for s in d["steps"] if s["key"] == key)


def _stage(d: dict[str, Any], key: str) -> dict[str, Any]:
    return next(s for s in d["stages"] if s["key"] == key)


BAD_VARIANTS: list[tuple[str, Mutator, str]] = [
    (
        "probability out of range",
        lambda d: _stage(d, "proposal").update(probability=120),
        "stages[3] 'proposal' .probability: must be between 0 and 100 (got 120)",
    ),
    (
        "negative probability",
        lambda d: _stage(d, "new").update(probability=-1),
        "stages[0] 'new' .probability: must be between 0 and 100 (got -1)",
    ),
    (
        "unknown stage in to",
        lambda d: _stage(d, "new").update(to=["qualifed"]),
        "stages 'new' .to: unknown stage 'qualifed'",
    ),
    (
        "self loop",
        lambda d: _stage(d, "new").update(to=["new"]),
        "stages 'new' .to: a stage cannot move to itself",
    ),
    (
        "terminal stage with to",
        lambda d: _stage(d, "won").update(to=["lost"]),
        "stages 'won' .to: a terminal stage cannot move anywhere",
    ),
    (
        "unknown initial stage",
        lambda d: d.update(initial_stage="start"),
        "initial_stage: unknown stage 'start'",
    ),
    (
        "unknown qualified stage",
        lambda d: d.update(qualified_stage="hot"),
        "qualified_stage: unknown stage 'hot'",
    ),
    (
        "unknown nurture stage",
        lambda d: d.update(nurture_stage="later"),
        "nurture_stage: unknown stage 'later'",
    ),
    ("closed initial stage", lambda d: d.update(initial_stage="won"), "initial_stage: stage 'won' is closed"),
    (
        "unknown stage in signal_moves",
        lambda d: d.update(signal_moves={"book_demo": "qualifed"}),
        "signal_moves.book_demo: unknown stage 'qualifed'",
    ),
    (
        "unknown signal in signal_moves",
        lambda d: d.update(signal_moves={"book_demoo": "qualified"}),
        "signal_moves.book_demoo: unknown signal 'book_demoo'",
    ),
    (
        "unknown signal in scoring",
        lambda d: d["scoring"]["signals"].update(downloaded=5),
        "scoring.signals.downloaded: unknown signal 'downloaded'",
    ),
    (
        "duplicate step key",
        lambda d: _step(d, "comment").update(key="budget"),
        "steps[10] 'budget' .key: duplicate key (already used by steps[5])",
    ),
    (
        "duplicate stage key",
        lambda d: _stage(d, "nurture").update(key="new"),
        "stages[7] 'new' .key: duplicate key (already used by stages[0])",
    ),
    (
        "duplicate option key",
        lambda d: _step(d, "budget")["options"][1].update(key="lt_1k"),
        "steps 'budget' .options[1] 'lt_1k' .key: duplicate key",
    ),
    (
        "duplicate menu key",
        lambda d: d["menu"][1].update(key="price_list"),
        "menu[1] 'price_list' .key: duplicate key",
    ),
    (
        "duplicate lost reason",
        lambda d: d["lost_reasons"][1].update(key="too_expensive"),
        "lost_reasons[1] 'too_expensive' .key: duplicate key",
    ),
    (
        "choice without options",
        lambda d: _step(d, "budget").update(options=[]),
        "steps 'budget' .options: a choice question needs at least one answer",
    ),
    (
        "options on a text step",
        lambda d: _step(d, "comment").update(options=_step(d, "budget")["options"]),
        "steps 'comment' .options: only choice questions have options",
    ),
    (
        "missing translation in texts",
        lambda d: d["texts"]["thanks"].pop("uk"),
        "texts.thanks: missing translation for 'uk'",
    ),
    (
        "missing translation in a step prompt",
        lambda d: _step(d, "budget")["prompt"].pop("ru"),
        "steps 'budget' .prompt: missing translation for 'ru'",
    ),
    (
        "missing translation in an option label",
        lambda d: _step(d, "budget")["options"][2]["label"].pop("en"),
        "steps 'budget' .options '5k_20k' .label: missing translation for 'en'",
    ),
    (
        "missing translation in a stage playbook",
        lambda d: _stage(d, "proposal")["playbook"].pop("uk"),
        "stages 'proposal' .playbook: missing translation for 'uk'",
    ),
    (
        "missing translation in a menu reply",
        lambda d: d["menu"][0]["reply"].pop("ru"),
        "menu 'price_list' .reply: missing translation for 'ru'",
    ),
    (
        "missing translation in a band title",
        lambda d: d["scoring"]["bands"][2]["title"].pop("uk"),
        "scoring.bands 'hot' .title: missing translation for 'uk'",
    ),
    (
        "missing translation in a lost reason",
        lambda d: d["lost_reasons"][0]["label"].pop("uk"),
        "lost_reasons 'too_expensive' .label: missing translation for 'uk'",
    ),
    (
        "empty translation",
        lambda d: d["texts"]["greeting"].update(ru="  "),
        "texts.greeting: empty translation for 'ru'",
    ),
    (
        "translation for an unknown locale",
        lambda d: d["texts"]["greeting"].update(de="Hallo"),
        "texts.greeting: unknown locale 'de'",
    ),
    ("missing required text", lambda d: d["texts"].pop("thanks"), "texts.thanks: required text is missing"),
    (
        "default locale not in locales",
        lambda d: d.update(default_locale="de"),
        "default_locale: 'de' is not one of locales",
    ),
    (
        "show_if unknown step",
        lambda d: _step(d, "company_size").update(show_if={"customer_typ": ["b2b"]}),
        "steps 'company_size' .show_if.customer_typ: unknown step 'customer_typ'",
    ),
    (
        "show_if unknown option",
        lambda d: _step(d, "company_size").update(show_if={"customer_type": ["b3b"]}),
        "steps 'company_size' .show_if.customer_type: unknown answer 'b3b'",
    ),
    (
        "show_if later step",
        lambda d: _step(d, "company_size").update(show_if={"decision_role": ["influencer"]}),
        "steps 'company_size' .show_if.decision_role: step 'decision_role' must come before 'company_size'",
    ),
    (
        "show_if on a non-choice step",
        lambda d: _step(d, "comment").update(show_if={"email": ["x"]}),
        "steps 'comment' .show_if.email: step 'email' is not a choice question",
    ),
    (
        "bands not starting at 0",
        lambda d: d["scoring"]["bands"][0].update(min_score=10),
        "scoring.bands 'cold' .min_score: the first band must start at 0 (got 10)",
    ),
    (
        "bands not ascending",
        lambda d: d["scoring"]["bands"][2].update(min_score=30),
        "scoring.bands 'hot' .min_score: bands must be sorted ascending",
    ),
    (
        "price list document missing",
        lambda d: d["menu"][0].update(document="missing.pdf"),
        "menu 'price_list' .document: file not found",
    ),
    (
        "price list without document",
        lambda d: d["menu"][0].pop("document"),
        "menu 'price_list' .document: a price_list item needs a document",
    ),
    (
        "first step not consent",
        lambda d: d["steps"].insert(0, d["steps"].pop(1)),
        "steps 'name' .kind: the first step must be a consent step",
    ),
    (
        "two phone steps",
        lambda d: _step(d, "comment").update(kind="phone", optional=False),
        "steps: exactly one phone step is required (found 2)",
    ),
    (
        "no name step",
        lambda d: _step(d, "name").update(kind="text"),
        "steps: exactly one name step is required (found 0)",
    ),
    (
        "lost stage without lost reasons",
        lambda d: d.update(lost_reasons=[]),
        "lost_reasons: at least one lost reason is required",
    ),
    (
        "bad key",
        lambda d: _step(d, "budget").update(key="Budget!"),
        "steps[5] 'Budget!' .key: must be 1-32 characters of a-z, 0-9 and _",
    ),
    (
        "unknown field",
        lambda d: _stage(d, "proposal").update(probabilty=50),
        "stages[3] 'proposal' .probabilty: unknown field",
    ),
    (
        "missing field",
        lambda d: _stage(d, "proposal").pop("title"),
        "stages[3] 'proposal' .title: is required",
    ),
    (
        "bad kind",
        lambda d: _step(d, "phone").update(kind="telephone"),
        (
            "steps[2] 'phone' .kind: Input should be 'consent', 'name', 'phone', 'email', 'choice' or 'text' "
            "(got 'telephone')"
        ),
    ),
    (
        "bad outcome",
        lambda d: _stage(d, "won").update(outcome="win"),
        "stages[5] 'won' .outcome: Input should be 'won' or 'lost' (got 'win')",
    ),
    (
        "wrong type",
        lambda d: d["scoring"].update(threshold="high"),
        "scoring.threshold: Input should be a valid integer",
    ),
    ("missing scoring", lambda d: d.pop("scoring"), "scoring: is required"),
    (
        "text not a string",
        lambda d: d["texts"]["thanks"].update(en=5),
        "texts.thanks.en: Input should be a valid string (got 5)",
    ),
    (
        "zero sla",
        lambda d: _stage(d, "qualified").update(sla_hours=0),
        "stages[1] 'qualified' .sla_hours: must be a positive number of hours (got 0)",
    ),
    (
        "won stage moving to an open stage",
        lambda d: _stage(d, "won").update(terminal=False, to=["proposal"]),
        "stages 'won' .to: a won stage can only move to won stages",
    ),
    (
        "link without url",
        lambda d: d["menu"][3].update(action="link"),
        "menu 'manager' .url: a link item needs a url",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), [v[1:] for v in BAD_VARIANTS], ids=[v[0] for v in BAD_VARIANTS]
)
def test_bad_variants_raise_one_line_funnel_error(mutate: Mutator, expected: str) -> None:
    data = default_data()
    mutate(data)
    with pytest.raises(FunnelError) as info:
        parse_funnel(data, source="default.toml", base_dir=FILES_DIR)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("funnel file default.toml: ")
    assert expected in message, message
    assert isinstance(info.value, ValueError)


def test_unmodified_data_parses_and_error_has_parts() -> None:
    assert isinstance(parse_funnel(default_data(), source="default.toml"), Funnel)
    data = default_data()
    data["stages"][3]["probability"] = 120
    with pytest.raises(FunnelError) as info:
        parse_funnel(data, source="x.toml")
    assert info.value.source == "x.toml"
    assert info.value.where == "stages[3] 'proposal' .probability"
    assert info.value.problem == "must be between 0 and 100 (got 120)"


def test_parse_does_not_mutate_input() -> None:
    data = default_data()
    before = repr(data)
    parse_funnel(data)
    assert repr(data) == before


def test_document_is_resolved_against_base_dir() -> None:
    f = parse_funnel(default_data(), base_dir=FILES_DIR)
    assert f.menu_item("price_list").document == (FILES_DIR / "price_list.pdf").resolve()
    here = Path(__file__).resolve().parent  # has no price_list.pdf
    with pytest.raises(FunnelError, match=r"menu 'price_list' \.document: file not found"):
        parse_funnel(default_data(), source="copy.toml", base_dir=here)


def test_top_level_not_a_table() -> None:
    with pytest.raises(FunnelError, match="expected a table"):
        parse_funnel(["not", "a", "dict"], source="x.toml")  # type: ignore[arg-type]


def test_load_missing_file() -> None:
    with pytest.raises(FunnelError, match=r"^funnel file nope\.toml: cannot read"):
        load_funnel(FILES_DIR / "nope.toml")


def test_load_not_utf8() -> None:
    # The shipped PDF is a convenient non-TOML, non-UTF-8 file.
    with pytest.raises(FunnelError, match=r"^funnel file price_list\.pdf: not valid UTF-8"):
        load_funnel(FILES_DIR / "price_list.pdf")


def test_load_invalid_toml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_module.Path, "read_bytes", lambda self: b"name = [")
    with pytest.raises(FunnelError) as info:
        load_funnel("broken.toml")
    assert str(info.value).startswith("funnel file broken.toml: invalid TOML:")
    assert "\n" not in str(info.value)


def test_funnel_error_with_a_ready_message() -> None:
    e = FunnelError("something\nwent wrong")
    assert str(e) == "something went wrong"


def test_model_validate_runs_the_same_checks() -> None:
    data = default_data()
    data["stages"][0]["to"] = ["qualifed"]
    with pytest.raises(ValueError, match="unknown stage 'qualifed'"):
        Funnel.model_validate(data)
