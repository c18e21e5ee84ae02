"""Routers, one per feature. Order matters: commands first, the prospect catch-all last."""
from __future__ import annotations

from aiogram import Router


def setup_routers() -> Router:
    from handlers import admin, common, dialogue, menu, staff

    root = Router(name="root")
    root.include_routers(common.router, admin.router, dialogue.router, staff.router, menu.router)
    return root
