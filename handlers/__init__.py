"""Routers, one per feature. Order matters: commands first, the prospect catch-all last (the bot's own
membership updates, `my_chat_member`, go to `membership` alone)."""
from __future__ import annotations

from aiogram import Router


def setup_routers() -> Router:
    from handlers import admin, common, dialogue, membership, menu, staff

    routers = [membership.router, common.router, admin.router, dialogue.router, staff.router, menu.router]
    for router in routers:
        # routers are module-level (aiogram's convention); building a second app in the same process
        # (tests, the sandbox's reset) moves them to the new root
        parent = router.parent_router
        if parent is not None:
            parent.sub_routers.remove(router)
            router._parent_router = None
    root = Router(name="root")
    root.include_routers(*routers)
    return root
