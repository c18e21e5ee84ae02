"""Fluent translations from `locales/<lang>/*.ftl`, loaded through aiogram-i18n's Fluent core.

Handlers get a `Texts` bound to the user's language; cards and workers build one with
`translator.for_locale(...)`. Missing keys fall back to the default locale, then raise.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from aiogram_i18n.cores import FluentRuntimeCore
from aiogram_i18n.exceptions import KeyNotFoundError

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
FORMATTED_KEEP = 4096  # formatted texts kept (see Translator.get)
LANGUAGE_NAMES = {"en": "English", "uk": "Українська", "ru": "Русский"}


class Texts:
    """Texts of one locale: `t("key", name="Ann")`."""

    __slots__ = ("locale", "translator")

    def __init__(self, translator: Translator, locale: str) -> None:
        self.translator = translator
        self.locale = locale

    def __call__(self, key: str, /, **kwargs: Any) -> str:
        return self.translator.get(key, self.locale, **kwargs)


class Translator:
    def __init__(self, default_locale: str = "en", path: Path = LOCALES_DIR) -> None:
        self.core = FluentRuntimeCore(path=path, default_locale=default_locale, raise_key_error=True)
        self.core.locales.update(self.core.find_locales())
        if default_locale not in self.core.locales:
            raise ValueError(f"DEFAULT_LOCALE {default_locale!r} has no folder in {path}")
        self.default_locale = default_locale
        self._texts: dict[str, Texts] = {}
        self._formatted: dict[tuple[Any, ...], str] = {}

    @property
    def locales(self) -> tuple[str, ...]:
        return tuple(sorted(self.core.locales))

    def resolve(self, *candidates: str | None) -> str:
        """First supported locale among candidates (`en-US` counts as `en`), else the default."""
        for candidate in candidates:
            if not candidate:
                continue
            code = candidate.lower().replace("_", "-")
            if code in self.core.locales:
                return code
            base = code.split("-")[0]
            if base in self.core.locales:
                return base
        return self.default_locale

    def get(self, key: str, locale: str, /, **kwargs: Any) -> str:
        """Formatting a Fluent pattern was about 5 % of an update's CPU: a text without arguments, or with
        numbers only (the same "question 3 of 8"), is formatted once per locale and arguments, the latest
        `FORMATTED_KEEP` kept. Texts with other arguments (a name, an answer) are formatted every time,
        so nothing a prospect wrote stays in memory after /forget."""
        if not all(type(value) in (int, float) for value in kwargs.values()):
            return self._format(key, locale, **kwargs)
        cache_key = (key, locale, *sorted(kwargs.items()))
        text = self._formatted.get(cache_key)
        if text is None:
            text = self._format(key, locale, **kwargs)
            while len(self._formatted) >= FORMATTED_KEEP:
                del self._formatted[next(iter(self._formatted))]  # the oldest
            self._formatted[cache_key] = text
        return text

    def _format(self, key: str, locale: str, /, **kwargs: Any) -> str:
        try:
            return self.core.get(key, locale if locale in self.core.locales else self.default_locale, **kwargs)
        except KeyNotFoundError:
            if locale == self.default_locale:
                raise
            return self.core.get(key, self.default_locale, **kwargs)

    def for_locale(self, locale: str) -> Texts:
        texts = self._texts.get(locale)
        if texts is None:
            texts = self._texts[locale] = Texts(self, locale if locale in self.core.locales else self.default_locale)
        return texts
