"""Command menus per role (setMyCommands with scopes), in every locale:

* everyone (default scope): the prospect commands;
* the staff chat (BotCommandScopeChat): the manager commands;
* each admin's private chat (BotCommandScopeChat): the analytics commands plus the prospect ones.

Each menu is set once without `language_code` (the default locale, for every other language) and once
per locale.  A failure is logged and never stops the start."""
from __future__ import annotations

import logging
from typing import Any

from aiogram.types import BotCommand, BotCommandScopeChat, BotCommandScopeDefault

log = logging.getLogger(__name__)

PROSPECT_COMMANDS = ("start", "help", "manager", "language", "mydata", "forget", "cancel", "restart")
STAFF_COMMANDS = ("lead", "mine", "note", "amount", "help")
ADMIN_COMMANDS = ("stats", "sources", "managers", "dropoff", "funnel", "trend", "export")
DESCRIPTION_KEYS = {("staff", "help"): "cmd-staff-help"}


def menu(role: str, t: Any) -> list[BotCommand]:
    if role == "staff":
        names: tuple[str, ...] = STAFF_COMMANDS
    elif role == "admin":
        names = ADMIN_COMMANDS + PROSPECT_COMMANDS
    else:
        names = PROSPECT_COMMANDS
    return [BotCommand(command=name, description=t(DESCRIPTION_KEYS.get((role, name), f"cmd-{name}"))[:256])
            for name in names]


async def set_commands(app: Any) -> int:
    """Install the menus; returns how many setMyCommands calls succeeded."""
    try:
        translator = app.translator
        targets: list[tuple[str, Any]] = [("prospect", BotCommandScopeDefault())]
        if app.staff.id is not None:
            targets.append(("staff", BotCommandScopeChat(chat_id=app.staff.id)))
        targets += [("admin", BotCommandScopeChat(chat_id=admin)) for admin in sorted(app.settings.admin_ids)]
        languages: list[str | None] = [None, *translator.locales]
    except Exception:
        log.exception("could not prepare the command menus")
        return 0
    done = 0
    for role, scope in targets:
        for language in languages:
            t = translator.for_locale(language or translator.default_locale)
            try:
                await app.bot.set_my_commands(menu(role, t), scope=scope, language_code=language)
                done += 1
            except Exception as exc:  # noqa: BLE001 - the menu is a convenience, the bot works without it
                log.warning("setMyCommands failed for the %s menu (%s): %s: %s", role, language or "default",
                            type(exc).__name__, exc)
    return done
