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
        self._plain: dict[tuple[str, str], str] = {}  # texts without arguments, formatted once

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
        if not kwargs:
            text = self._plain.get((key, locale))
            if text is None:
                text = self._plain[(key, locale)] = self._format(key, locale)
            return text
        return self._format(key, locale, **kwargs)

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
