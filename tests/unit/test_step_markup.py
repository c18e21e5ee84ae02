"""A step's keyboard is built once per language, Back and editing (handlers.dialogue.step_markup): the
one kept must be the one that fits."""
from __future__ import annotations

from bot.i18n import Translator
from bot.services.dialogue import Conversation
from funnel import DEFAULT_FUNNEL_PATH, Dialogue, load_funnel
from handlers.dialogue import step_markup


def labels(markup) -> list[str]:
    return [button.text for row in markup.inline_keyboard for button in row]


def test_kept_keyboards_follow_the_language_back_and_editing():
    dialogue, translator = Dialogue(load_funnel(DEFAULT_FUNNEL_PATH)), Translator("en")
    choice = next(step for step in dialogue.funnel.steps if step.kind == "choice")
    previous = dialogue.previous_step(choice.key, {})
    assert previous is not None
    answers = {step.key: "x" for step in dialogue.funnel.steps[:dialogue.funnel.steps.index(choice)]}
    en, uk = translator.for_locale("en"), translator.for_locale("uk")

    first = step_markup(dialogue, choice, Conversation(answers=answers), "en", en)
    assert step_markup(dialogue, choice, Conversation(answers=answers), "en", en) is first  # kept
    assert en("nav-back") in labels(first)
    in_ukrainian = step_markup(dialogue, choice, Conversation(answers=answers), "uk", uk)
    assert uk("nav-back") in labels(in_ukrainian) and en("nav-back") not in labels(in_ukrainian)
    assert dialogue.funnel.label(choice.options[0].label, "uk") in labels(in_ukrainian)
    editing = step_markup(dialogue, choice, Conversation(answers=answers, editing=True), "en", en)
    assert en("nav-back") not in labels(editing) and en("nav-to-summary") in labels(editing)
    assert en("nav-to-summary") not in labels(first)
    name = next(step for step in dialogue.funnel.steps if step.kind == "name")  # no Back either way
    assert step_markup(dialogue, name, Conversation(), "en", en) is None
    assert labels(step_markup(dialogue, name, Conversation(editing=True), "en", en)) == [en("nav-to-summary")]
    # a second app's dialogue (another funnel, maybe) builds its own
    assert step_markup(Dialogue(dialogue.funnel), choice, Conversation(answers=answers), "en", en) is not first
