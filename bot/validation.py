"""Contact validation with phonenumbers and email-validator (kept out of the pure domain)."""
from __future__ import annotations

import re

import phonenumbers
from email_validator import EmailNotValidError, validate_email

# a prospect typing a local number is most likely in the country of their language
LOCALE_REGIONS = {"uk": "UA", "ru": None, "en": None}
PAYLOAD_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def normalize_phone(raw: str, locale: str | None = None) -> str | None:
    """E.164 (`+380671234567`) for a valid number, else None. Contacts may come without a `+`."""
    text = raw.strip()
    if not text or len(text) > 40:
        return None
    candidates = [text]
    if not text.startswith("+") and text[:1].isdigit() and len(re.sub(r"\D", "", text)) >= 11:
        candidates.append("+" + text)
    region = LOCALE_REGIONS.get(locale or "")
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region if not candidate.startswith("+") else None)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


def normalize_email(raw: str) -> str | None:
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        return None


def deep_link_source(payload: str | None) -> str:
    """The lead's source from a /start payload; anything not allowed by Telegram is `direct`."""
    if payload and PAYLOAD_RE.match(payload):
        return payload
    return "direct"
