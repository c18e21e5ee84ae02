"""Filters shared by the routers."""
from __future__ import annotations

from aiogram.types import Message


def looks_like_command(message: Message) -> bool:
    """What aiogram's `Command` filter could match (text or caption starting with "/"), as a router-level
    filter in front of a router of commands: checking each `Command` parses the message once per handler,
    for every answer a prospect types."""
    text = message.text or message.caption
    return text is not None and text.startswith("/")
