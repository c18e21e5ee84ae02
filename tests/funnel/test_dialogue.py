from __future__ import annotations

import pytest

from funnel import SKIPPED, Dialogue, check_text, option_for
from tests.funnel import shipped

B2C = {
    "consent": "yes",
    "name": "Ann",
    "phone": "+380671234567",
    "email": "",
    "need": "product",
    "budget": "1k_5k",
    "timeline": "this_month",
    "customer_type": "b2c",
    "comment": "Need it fast",
}
B2B = {
    **B2C,
    "customer_type": "b2b",
    "company_size": "11_50",
    "decision_role": "decision_maker",
}
ALL_KEYS = [
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
B2C_KEYS = [k for k in ALL_KEYS if k not in ("company_size", "decision_role")]


@pytest.fixture
def dialogue() -> Dialogue:
    return Dialogue(shipped())


def walk(dialogue: Dialogue, answers: dict[str, str]) -> list[str]:
    """Answer step by step (answers revealed in order, like the bot does) and record the keys asked."""
    seen: list[str] = []
    given: dict[str, str] = {}
    step = dialogue.next_step(None, given)
    while step is not None:
        seen.append(step.key)
        if step.key in answers:
            given[step.key] = answers[step.key]
        step = dialogue.next_step(step.key, given)
    return seen


def test_first_step_is_consent(dialogue: Dialogue) -> None:
    assert dialogue.first_step().key == "consent"
    assert dialogue.next_step(None, {}).key == "consent"


def test_order_b2c_skips_company_questions(dialogue: Dialogue) -> None:
    assert walk(dialogue, B2C) == B2C_KEYS


def test_order_b2b_asks_company_questions(dialogue: Dialogue) -> None:
    assert walk(dialogue, B2B) == ALL_KEYS


def test_show_if_unanswered_parent_hides_children(dialogue: Dialogue) -> None:
    # customer_type not answered yet: the company questions are not shown (and are skipped).
    assert dialogue.next_step("customer_type", {}).key == "comment"
    assert [s.key for s in dialogue.visible_steps({})] == B2C_KEYS


def test_next_step_after_last_is_summary(dialogue: Dialogue) -> None:
    assert dialogue.next_step("comment", B2B) is None


def test_next_step_unknown_key(dialogue: Dialogue) -> None:
    with pytest.raises(KeyError):
        dialogue.next_step("nope", {})


def test_previous_step_back_button(dialogue: Dialogue) -> None:
    assert dialogue.previous_step("consent", {}) is None
    assert dialogue.previous_step("name", {}) is None  # consent is never re-asked
    assert dialogue.previous_step("phone", {}).key == "name"
    assert dialogue.previous_step("comment", B2B).key == "decision_role"
    assert dialogue.previous_step("comment", B2C).key == "customer_type"
    assert dialogue.previous_step("decision_role", B2B).key == "company_size"


def test_visible_and_editable_steps(dialogue: Dialogue) -> None:
    assert [s.key for s in dialogue.visible_steps(B2B)] == ALL_KEYS
    assert [s.key for s in dialogue.visible_steps(B2C)] == B2C_KEYS
    assert [s.key for s in dialogue.editable_steps(B2C)] == B2C_KEYS[1:]
    assert dialogue.is_visible("company_size", B2B) and not dialogue.is_visible("company_size", B2C)


def test_prune_after_editing_show_if_parent(dialogue: Dialogue) -> None:
    edited = {**B2B, "customer_type": "b2c", "source_note": "kept"}
    pruned = dialogue.prune(edited)
    assert "company_size" not in pruned and "decision_role" not in pruned
    assert pruned["source_note"] == "kept"  # non-step keys are left alone
    assert pruned["customer_type"] == "b2c" and pruned["budget"] == B2B["budget"]
    assert dialogue.prune(B2B) == B2B
    assert edited["company_size"] == "11_50"  # the input is not modified


def test_progress_is_file_index(dialogue: Dialogue) -> None:
    assert [dialogue.progress(k) for k in ALL_KEYS] == list(range(len(ALL_KEYS)))


def test_is_complete(dialogue: Dialogue) -> None:
    assert dialogue.is_complete(B2C)
    assert dialogue.is_complete({k: v for k, v in B2C.items() if k not in ("email", "comment")})
    assert not dialogue.is_complete({**B2C, "budget": ""})
    assert not dialogue.is_complete({**B2C, "customer_type": "b2b"})  # company questions missing


@pytest.mark.parametrize("locale", ["en", "uk", "ru"])
def test_summary_labels_per_locale(dialogue: Dialogue, locale: str) -> None:
    f = dialogue.funnel
    rows = dialogue.summary(B2B, locale)

    def option_label(step_key: str) -> str:
        return f.step(step_key).option(B2B[step_key]).label[locale]

    expected = [
        (f.step("name").title[locale], "Ann"),
        (f.step("phone").title[locale], "+380671234567"),
        (f.step("email").title[locale], SKIPPED),
        (f.step("need").title[locale], option_label("need")),
        (f.step("budget").title[locale], option_label("budget")),
        (f.step("timeline").title[locale], option_label("timeline")),
        (f.step("customer_type").title[locale], option_label("customer_type")),
        (f.step("company_size").title[locale], option_label("company_size")),
        (f.step("decision_role").title[locale], option_label("decision_role")),
        (f.step("comment").title[locale], "Need it fast"),
    ]
    assert rows == expected


def test_summary_labels_differ_between_locales(dialogue: Dialogue) -> None:
    en = dict(dialogue.summary(B2C, "en"))
    uk = dict(dialogue.summary(B2C, "uk"))
    assert en["Timeline"] == "This month"
    assert uk["Терміни"] == "Цього місяця"
    assert dict(dialogue.summary(B2C, "ru"))["Сроки"] == "В этом месяце"
    assert dict(dialogue.summary(B2C, "de"))["Timeline"] == "This month"  # falls back to default locale


def test_summary_skips_hidden_and_unanswered_required(dialogue: Dialogue) -> None:
    answers = {"consent": "yes", "name": "Bob", "phone": "+1", "company_size": "11_50"}
    rows = dialogue.summary(answers, "en")
    titles = [t for t, _ in rows]
    assert titles == ["Name", "Phone", "Email", "Comment"]  # optional ones show the dash
    assert dict(rows)["Email"] == SKIPPED and dict(rows)["Comment"] == SKIPPED
    assert "Company size" not in titles  # hidden (customer_type not b2b)
    assert "Consent" not in titles


def test_summary_unknown_option_key_shown_raw(dialogue: Dialogue) -> None:
    assert dict(dialogue.summary({**B2C, "budget": "gone"}, "en"))["Budget"] == "gone"


def test_check_text() -> None:
    f = shipped()
    name, comment = f.step("name"), f.step("comment")
    assert check_text(name, "Ann") == "ok"
    assert check_text(name, "") == "empty"
    assert check_text(name, "   \n ") == "empty"
    assert check_text(name, None) == "empty"
    assert check_text(name, "x" * name.max_length) == "ok"
    assert check_text(name, "  " + "x" * name.max_length + "  ") == "ok"  # stripped first
    assert check_text(name, "x" * (name.max_length + 1)) == "too_long"
    assert check_text(comment, "x" * 1000) == "ok"
    assert check_text(comment, "x" * 1001) == "too_long"


def test_option_for() -> None:
    budget = shipped().step("budget")
    assert option_for(budget, "gt_20k").key == "gt_20k"
    assert option_for(budget, "nope") is None
    assert option_for(budget, None) is None
    assert option_for(shipped().step("name"), "x") is None


def test_b2b_file_has_no_show_if_and_walks_all_steps() -> None:
    f = shipped("b2b")
    d = Dialogue(f)
    assert walk(d, {}) == [s.key for s in f.steps]


def test_visibility_is_decided_once_per_combination_of_show_if_answers(dialogue: Dialogue, monkeypatch) -> None:
    from funnel import dialogue as module

    decided: list[dict[str, str]] = []
    real = Dialogue._decide_visible
    monkeypatch.setattr(Dialogue, "_decide_visible", lambda self, answers: decided.append(answers) or real(self, answers))
    fresh = Dialogue(dialogue.funnel)
    for _ in range(3):
        assert [s.key for s in fresh.visible_steps(B2B)] == ALL_KEYS
        assert [s.key for s in fresh.visible_steps({**B2C, "budget": "gt_20k", "name": "Bo"})] == B2C_KEYS
    assert len(decided) == 2  # other answers (budget, name) do not matter to visibility
    monkeypatch.setattr(module, "VISIBILITY_KEPT", 1)  # past the cap: decided every time, still right
    capped = Dialogue(dialogue.funnel)
    for _ in range(2):
        assert [s.key for s in capped.visible_steps(B2B)] == ALL_KEYS
        assert [s.key for s in capped.visible_steps(B2C)] == B2C_KEYS
    assert len(decided) == 2 + 3
