"""Async client for the emulator's control API, for tests and scripts.

It plays the users (``send_text``, ``press_button``...) and inspects what the bot did. The client keeps
a *cursor* in the emulator's event log: every user action it performs moves the cursor there, and
:meth:`EmulatorClient.wait_for_bot_message` returns the first bot message (or edit) after the cursor –
so a reply that arrives before the wait starts is not missed, and consecutive waits return consecutive
messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import aiohttp

JSON = dict[str, Any]


class EmulatorError(Exception):
    """The control API answered with an error status."""

    def __init__(self, status: int, payload: Any) -> None:
        super().__init__(f"{status}: {payload}")
        self.status = status
        self.payload = payload


def make_user(
    id: int, first_name: str = "Alice", language_code: str = "en", username: str | None = None
) -> JSON:
    """A Telegram User object for a simulated person."""
    user: JSON = {"id": id, "is_bot": False, "first_name": first_name, "language_code": language_code}
    if username:
        user["username"] = username
    return user


class EmulatorClient:
    def __init__(self, base_url: str, *, session: aiohttp.ClientSession | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._own_session = session is None
        self.cursor = 0  # event seq after which wait_for_bot_message looks

    async def __aenter__(self) -> Self:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self.cursor = (await self.state())["event_seq"]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ plumbing

    async def _request(self, method: str, path: str, *, json: Any = None, params: JSON | None = None) -> Any:
        if self._session is None:
            raise RuntimeError("use 'async with EmulatorClient(...)'")
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        async with self._session.request(method, self.base_url + path, json=json, params=query) as resp:
            payload = await resp.json(content_type=None) if resp.content_length != 0 else None
            if resp.status >= 400:
                raise EmulatorError(resp.status, payload)
            return payload

    async def _get(self, path: str, **params: Any) -> Any:
        return await self._request("GET", path, params=params)

    async def _post(self, path: str, body: Any = None) -> Any:
        return await self._request("POST", path, json=body if body is not None else {})

    async def _act(self, path: str, body: JSON) -> JSON:
        """A user action: moves the cursor to it."""
        result: JSON = await self._post(path, {k: v for k, v in body.items() if v is not None})
        self.cursor = max(self.cursor, result.get("event_seq", 0))
        return result

    # ------------------------------------------------------------------ users act

    async def reset(self, limits: bool = False) -> None:
        await self._post("/control/reset", {"limits": limits})
        self.cursor = (await self.state())["event_seq"]

    async def send_update(self, update: JSON) -> JSON:
        return await self._act("/control/update", update)

    async def send_text(self, user: JSON, text: str, chat_id: int | None = None, **kw: Any) -> JSON:
        return await self._act("/control/message", {"user": user, "text": text, "chat_id": chat_id, **kw})

    async def send_command(self, user: JSON, command: str, payload: str | None = None, **kw: Any) -> JSON:
        return await self.send_text(user, f"{command} {payload}" if payload else command, **kw)

    async def share_contact(self, user: JSON, phone: str, own: bool = True, **kw: Any) -> JSON:
        """Share a contact: your own (``contact.user_id`` = your id) or someone else's."""
        contact: JSON = {"phone_number": phone, "first_name": user.get("first_name", "User")}
        contact["user_id"] = user["id"] if own else user["id"] + 1
        if not own:
            contact["first_name"] = "Bob"
        return await self._act("/control/message", {"user": user, "contact": contact, **kw})

    async def _send_media(self, user: JSON, kind: str, spec: Any = True, **kw: Any) -> JSON:
        return await self._act("/control/message", {"user": user, kind: spec, **kw})

    async def send_sticker(self, user: JSON, **kw: Any) -> JSON:
        return await self._send_media(user, "sticker", **kw)

    async def send_photo(self, user: JSON, **kw: Any) -> JSON:
        return await self._send_media(user, "photo", **kw)

    async def send_voice(self, user: JSON, **kw: Any) -> JSON:
        return await self._send_media(user, "voice", **kw)

    async def send_document(self, user: JSON, document: JSON | bool = True, **kw: Any) -> JSON:
        return await self._send_media(user, "document", document, **kw)

    async def send_location(
        self, user: JSON, latitude: float = 52.52, longitude: float = 13.405, **kw: Any
    ) -> JSON:
        return await self._send_media(user, "location", {"latitude": latitude, "longitude": longitude}, **kw)

    async def press(self, user: JSON, chat_id: int, message_id: int, data: str) -> JSON:
        body = {"user": user, "chat_id": chat_id, "message_id": message_id, "data": data}
        return await self._act("/control/callback", body)

    async def press_button(self, user: JSON, chat_id: int, text: str, message_id: int | None = None) -> JSON:
        body = {"user": user, "chat_id": chat_id, "text": text, "message_id": message_id}
        return await self._act("/control/press", body)

    # ------------------------------------------------------------------ inspect

    async def state(self) -> JSON:
        return await self._get("/control/state")

    async def messages(self, chat_id: int, include_deleted: bool = False) -> list[JSON]:
        return await self._get(f"/control/chats/{chat_id}/messages", include_deleted=int(include_deleted))

    async def bot_messages(self, chat_id: int) -> list[JSON]:
        return [m for m in await self.messages(chat_id) if m.get("from", {}).get("is_bot")]

    async def last_bot_message(self, chat_id: int) -> JSON | None:
        messages = await self.bot_messages(chat_id)
        return messages[-1] if messages else None

    async def chat(self, chat_id: int) -> JSON:
        return await self._get(f"/control/chats/{chat_id}")

    async def wait_for_bot_message(
        self,
        chat_id: int,
        predicate: Callable[[JSON], bool] | None = None,
        timeout: float = 10.0,
        *,
        since: int | None = None,
    ) -> JSON:
        """The first bot message or edit in ``chat_id`` after the cursor (or event ``since``) that
        matches ``predicate``; raises ``TimeoutError`` after ``timeout`` seconds."""
        if self._session is None:
            raise RuntimeError("use 'async with EmulatorClient(...)'")
        cursor = self.cursor if since is None else since
        loop_time = asyncio.get_running_loop().time
        deadline = loop_time() + timeout
        while (remaining := deadline - loop_time()) > 0:
            result = await self._get(
                "/control/wait", chat_id=chat_id, since=cursor, timeout=min(remaining, 5.0)
            )
            for event in result["events"]:
                cursor = event["seq"]
                if predicate is None or predicate(event["message"]):
                    self.cursor = max(self.cursor, cursor)
                    return event["message"]
            cursor = max(cursor, result["last_seq"])
        raise TimeoutError(f"no matching bot message in chat {chat_id} within {timeout} s")

    async def calls(self, method: str | None = None, since: int = 0) -> list[JSON]:
        return (await self._get("/control/calls", method=method, since=since))["calls"]

    async def callback_answer(self, callback_query_id: str) -> JSON | None:
        try:
            return await self._get(f"/control/callback_answers/{callback_query_id}")
        except EmulatorError as exc:
            if exc.status == 404:
                return None
            raise

    async def commands(self) -> list[JSON]:
        return await self._get("/control/commands")

    async def file_bytes(self, file_id: str) -> bytes:
        if self._session is None:
            raise RuntimeError("use 'async with EmulatorClient(...)'")
        async with self._session.get(f"{self.base_url}/control/files/{file_id}") as resp:
            if resp.status >= 400:
                raise EmulatorError(resp.status, await resp.text())
            return await resp.read()

    # ------------------------------------------------------------------ the world

    async def create_chat(
        self, chat_id: int, type: str = "supergroup", title: str = "Staff", **extra: Any
    ) -> JSON:
        return await self._post("/control/chats", {"id": chat_id, "type": type, "title": title, **extra})

    async def add_user(self, user: JSON) -> JSON:
        """Make a user known (name, language) before they write."""
        return await self._post("/control/users", {"user": user})

    async def set_member(self, chat_id: int, user_id: int, status: str) -> None:
        await self._post("/control/members", {"chat_id": chat_id, "user_id": user_id, "status": status})

    async def block(self, user_id: int, blocked: bool = True) -> None:
        await self._post("/control/block", {"user_id": user_id, "blocked": blocked})

    async def remove_bot(
        self, chat_id: int, removed: bool = True, by: int | None = None, status: str | None = None
    ) -> None:
        """The bot is removed from (``removed=False``: added back to) a group; queues a my_chat_member update."""
        await self._post("/control/remove_bot", {"chat_id": chat_id, "removed": removed, "by": by, "status": status})

    async def migrate(self, chat_id: int, to_chat_id: int) -> JSON:
        return await self._post("/control/migrate", {"chat_id": chat_id, "to_chat_id": to_chat_id})

    async def add_faults(self, *rules: JSON) -> list[JSON]:
        return await self._post("/control/faults", {"rules": list(rules)})

    async def clear_faults(self) -> None:
        await self._request("DELETE", "/control/faults")

    async def faults(self) -> list[JSON]:
        return await self._get("/control/faults")

    async def set_limits(self, **limits: Any) -> JSON:
        return await self._post("/control/limits", limits)
