"""Every key exists in every locale, with the same placeholders, and every file parses cleanly."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from fluent.syntax import FluentParser, ast

from bot.i18n import LOCALES_DIR, Translator

LOCALES = sorted(p.name for p in LOCALES_DIR.iterdir() if p.is_dir())
VARIABLE = re.compile(r"\{\s*\$([a-zA-Z_][\w-]*)")


def messages(locale: str) -> dict[str, tuple[str, set[str]]]:
    out: dict[str, tuple[str, set[str]]] = {}
    parser = FluentParser()
    for path in sorted((LOCALES_DIR / locale).rglob("*.ftl")):
        resource = parser.parse(path.read_text(encoding="utf-8"))
        junk = [entry for entry in resource.body if isinstance(entry, ast.Junk)]
        assert not junk, f"{path}: cannot parse: {junk[0].content[:80]!r}"
        text = path.read_text(encoding="utf-8")
        for entry in resource.body:
            if isinstance(entry, ast.Message):
                key = entry.id.name
                assert key not in out, f"{path}: key {key} defined twice in {locale}"
                start, end = entry.span.start, entry.span.end
                out[key] = (path.name, set(VARIABLE.findall(text[start:end])))
    return out


def test_there_are_at_least_english_and_ukrainian():
    assert {"en", "uk"} <= set(LOCALES)


@pytest.mark.parametrize("locale", [loc for loc in LOCALES if loc != "en"])
def test_every_key_in_every_locale_with_the_same_placeholders(locale):
    reference, other = messages("en"), messages(locale)
    assert sorted(set(reference) - set(other)) == [], f"missing in {locale}"
    assert sorted(set(other) - set(reference)) == [], f"only in {locale}, not in en"
    for key, (_, variables) in reference.items():
        assert other[key][1] == variables, f"{locale}:{key} placeholders {other[key][1]} != en {variables}"


def test_every_message_formats_in_every_locale():
    translator = Translator("en")
    for locale in LOCALES:
        for key, (_, variables) in messages(locale).items():
            text = translator.get(key, locale, **{name: "X" for name in variables})
            assert text.strip(), f"{locale}:{key} is empty"


def test_locale_resolution():
    translator = Translator("en")
    assert translator.resolve("uk") == "uk"
    assert translator.resolve("en-US") == "en"
    assert translator.resolve("de", None) == "en"
    assert translator.resolve(None, "ru") == "ru"


def test_ftl_files_mirror_each_other():
    names = {loc: sorted(p.name for p in (LOCALES_DIR / loc).rglob("*.ftl")) for loc in LOCALES}
    assert all(files == names["en"] for files in names.values()), names


def test_no_user_text_in_python_handlers():
    """Texts live in locales/: handlers may join translated pieces, but never send words of their own."""
    call = re.compile(r"\.(answer|edit_text|send_message|reply|answer_document|answer_photo)\(\s*f?([\"'])(.*?)\2")
    words = re.compile(r"[^\W\d_]{3,}")
    offenders = []
    for path in Path(__file__).resolve().parents[2].joinpath("handlers").glob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for match in call.finditer(line):
                literal = re.sub(r"\{[^}]*\}", "", match.group(3)).replace("\\n", " ")
                if words.search(literal):
                    offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert offenders == []


def test_texts_with_no_or_numeric_arguments_are_formatted_once_and_others_every_time(monkeypatch):
    from bot import i18n

    translator = Translator("en")
    calls = []
    real = translator.core.get
    monkeypatch.setattr(translator.core, "get", lambda *args, **kwargs: calls.append(args) or real(*args, **kwargs))
    first = [translator.get("admin-only", locale) for locale in ("en", "uk", "en", "uk")]
    assert first[0] == first[2] != first[1] == first[3]
    assert calls == [("admin-only", "en"), ("admin-only", "uk")]
    calls.clear()
    slow = [translator.get("flood-slow-down", "en", seconds=s) for s in (5, 9, 5)]
    assert slow[0] == slow[2] != slow[1] and "9" in slow[1]
    assert len(calls) == 2
    calls.clear()
    # what a prospect wrote is not kept in memory (after /forget it must be gone)
    for _ in range(2):
        assert "Ann" in translator.get("edit-current-answer", "en", answer="Ann")
    assert len(calls) == 2 and not any("Ann" in repr(k) for k in translator._formatted)
    monkeypatch.setattr(i18n, "FORMATTED_KEEP", 3)  # bounded: the oldest goes first
    for s in range(10, 14):
        translator.get("flood-slow-down", "en", seconds=s)
    assert len(translator._formatted) == 3 and ("flood-slow-down", "en", ("seconds", 13)) in translator._formatted
