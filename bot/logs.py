"""Logging set-up with personal data masked: phone numbers and e-mail addresses never reach the logs."""
from __future__ import annotations

import logging
import re

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
# "+" numbers, and numbers written with separators; plain digit runs (update and user ids) stay readable
_PHONE = re.compile(r"\+\d[\d ()-]{5,}\d|\(?\d{2,4}\)?[ -]\d{2,4}[ -]\d{2,4}(?:[ -]\d{1,4})?")


def mask(text: str) -> str:
    text = _EMAIL.sub("<email>", text)
    return _PHONE.sub(lambda m: "<phone>" if sum(c.isdigit() for c in m.group()) >= 7 else m.group(), text)


class MaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # at DEBUG the SQLite driver logs every statement with its parameters (names, phones)
    logging.getLogger("aiosqlite").setLevel(max(logging.getLevelName(level), logging.INFO))
    logging.getLogger("aiogram.event").setLevel(max(logging.getLevelName(level), logging.WARNING))
