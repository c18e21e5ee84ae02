"""A Telegram Bot API emulator served over real HTTP (aiohttp).

Two faces on one port:

* the Bot API side, ``/bot{token}/{method}`` and ``/file/bot{token}/{path}``, compatible with
  ``aiogram.client.telegram.TelegramAPIServer.from_base(base_url)``;
* the control side, ``/control/...`` (JSON, no token), used by tests and the sandbox page to play
  the users, inspect what the bot did, inject faults and tune Telegram's limits.

All state lives in one :class:`Emulator`; its public methods are the control API and can be used
in-process from the same event loop as well.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import functools
import importlib.util
import inspect
import json
import math
import mimetypes
import re
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path, PurePosixPath
from typing import Any

import aiohttp
from aiohttp import web

JSON = dict[str, Any]

_TOKEN_RE = re.compile(r"(\d+):[A-Za-z0-9_-]{30,}")
_NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the same "
    "as a current content and reply markup of the message"
)
_CALLBACK_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
_CHAT_ACTIONS = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice", "upload_document",
    "choose_sticker", "find_location", "record_video_note", "upload_video_note",
})  # fmt: skip
_MEMBER_STATUSES = frozenset({"creator", "administrator", "member", "restricted", "left", "kicked"})
_ADMIN_RIGHTS = (
    "can_manage_chat", "can_delete_messages", "can_manage_video_chats", "can_restrict_members", "can_change_info",
    "can_invite_users", "can_post_stories", "can_edit_stories", "can_delete_stories", "can_send_welcome_messages",
    "can_pin_messages",
)  # fmt: skip
# Who a group admin acting anonymously is, as Telegram shows it.
_ANONYMOUS_ADMIN = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
# Parameters that arrive as JSON strings in form-encoded / multipart requests.
_JSON_FIELDS = frozenset({
    "reply_markup", "reply_parameters", "entities", "caption_entities", "allowed_updates", "commands", "scope",
    "menu_button", "link_preview_options", "media", "message_ids",
})  # fmt: skip
# Integer parameters, converted from the strings of form requests so the call log reads naturally.
_INT_FIELDS = frozenset({
    "chat_id", "from_chat_id", "message_id", "user_id", "reply_to_message_id", "message_thread_id", "offset",
    "limit", "timeout", "cache_time", "max_connections", "until_date",
})  # fmt: skip
_INT_RE = re.compile(r"-?(?:0|[1-9][0-9]{0,18})")
_INLINE_ACTIONS = frozenset({
    "url", "callback_data", "web_app", "login_url", "switch_inline_query", "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat", "copy_text", "callback_game", "pay",
})  # fmt: skip
# Update types Telegram does not send unless they are listed explicitly in allowed_updates.
_OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
# What forwardMessage / copyMessage carry over.
_CONTENT_KEYS = (
    "text", "entities", "photo", "document", "audio", "video", "voice", "animation", "sticker", "video_note",
    "caption", "caption_entities", "contact", "location", "venue",
)  # fmt: skip
_EFFECT_KEYS = frozenset(
    {"error_code", "description", "retry_after", "migrate_to_chat_id", "drop_connection", "delay"}
)
_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
    502: "Bad Gateway",
}

# kind -> (folder of file_path, default mime type, extra fields of the Bot API object)
_KINDS: dict[str, tuple[str, str, JSON]] = {
    "photo": ("photos", "image/jpeg", {"width": 800, "height": 600}),
    "document": ("documents", "application/octet-stream", {}),
    "audio": ("music", "audio/mpeg", {"duration": 1}),
    "video": ("videos", "video/mp4", {"width": 640, "height": 360, "duration": 1}),
    "voice": ("voice", "audio/ogg", {"duration": 1}),
    "animation": ("animations", "video/mp4", {"width": 320, "height": 240, "duration": 1}),
    "sticker": (
        "stickers",
        "image/webp",
        {"type": "regular", "width": 512, "height": 512, "is_animated": False, "is_video": False},
    ),
    "video_note": ("video_notes", "video/mp4", {"length": 240, "duration": 1}),
}
_NAMED_KINDS = frozenset({"document", "audio", "video", "animation"})  # objects carrying file_name
_MIME_KINDS = _NAMED_KINDS | {"voice"}  # objects carrying mime_type
_MEDIA_METHODS = {
    "sendPhoto": "photo",
    "sendDocument": "document",
    "sendAudio": "audio",
    "sendVideo": "video",
    "sendVoice": "voice",
    "sendAnimation": "animation",
    "sendSticker": "sticker",
    "sendVideoNote": "video_note",
}

_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERXRTc4UG1R"
    "V19iZ2hnPk1xeXBkeFxlZ2P/2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2Nj"
    "Y2NjY2NjY2NjY2NjY2P/wAARCAAIAAgDASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAA"
    "AgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6"
    "Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXG"
    "x8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREA"
    "AgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5"
    "OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPE"
    "xcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwCnRRRXsnkn/9k="
)
# kind -> (bytes, mime type, file name) used for media that simulated users send
_PLACEHOLDERS: dict[str, tuple[bytes, str, str | None]] = {
    "photo": (_JPEG, "image/jpeg", None),
    "document": (b"%PDF-1.4\n% telegram emulator placeholder\n%%EOF\n", "application/pdf", "document.pdf"),
    "voice": (b"OggS\x00\x02" + bytes(58), "audio/ogg", None),
    "sticker": (
        b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00",
        "image/webp",
        None,
    ),
    "video": (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "video/mp4", "video.mp4"),
}


@functools.cache
def _known_methods() -> frozenset[str]:
    """Every Bot API method name (lower-cased), to tell 'unknown' (404) from 'trivial' (true).

    Taken from the file names of ``aiogram/methods`` (``send_message.py`` -> ``sendmessage``) without
    importing aiogram, which takes seconds.
    """
    spec = importlib.util.find_spec("aiogram")
    if spec is None or spec.origin is None:
        return frozenset(_API)
    folder = Path(spec.origin).parent / "methods"
    return frozenset(
        path.stem.replace("_", "") for path in folder.glob("*.py") if not path.stem.startswith("_")
    )


# --------------------------------------------------------------------------------------------- errors


class ApiError(Exception):
    """A Bot API error, rendered exactly like Telegram renders it."""

    def __init__(self, code: int, description: str, **parameters: Any) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def body(self) -> JSON:
        body: JSON = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: {detail}")


class ControlError(Exception):
    """An error of the control API (rendered as ``{"ok": false, "error": ...}``)."""

    def __init__(self, status: int, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.extra = extra

    def response(self) -> web.Response:
        return web.json_response({"ok": False, "error": self.error, **self.extra}, status=self.status)


class _DropConnection(Exception):
    """Raised by a fault rule: close the TCP connection without answering."""


# --------------------------------------------------------------------------------------------- formatting


def _u16(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode())


def _parse_error(detail: str) -> ApiError:
    return bad_request(f"can't parse entities: {detail}")


_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)([^<>]*)>")
_ATTR_RE = re.compile(r"""([a-zA-Z-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""")
_CHAR_REF_RE = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|lt|gt|amp|quot);")
_NAMED_REFS = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def _char_ref(ref: str) -> str | None:
    if ref in _NAMED_REFS:
        return _NAMED_REFS[ref]
    digits = ref[1:]
    code = int(digits[1:], 16) if digits[0] in "xX" else int(digits)
    return chr(code) if 0 < code <= 0x10FFFF else None


def _html_entity(name: str, attrs: str, at: int) -> JSON | None:
    values = {m[1].lower(): m[2] or m[3] or m[4] or "" for m in _ATTR_RE.finditer(attrs)}
    if name == "a":
        return {"type": "text_link", "url": values["href"]} if values.get("href") else None
    if name == "span" and values.get("class") != "tg-spoiler":
        raise _parse_error(f'Unsupported start tag "span" at byte offset {at}')
    if name == "code" and values.get("class", "").startswith("language-"):
        return {"type": "code", "language": values["class"].removeprefix("language-")}
    if name == "blockquote" and re.search(r"\bexpandable\b", attrs):
        return {"type": "expandable_blockquote"}
    if name == "tg-emoji":
        return {"type": "custom_emoji", "custom_emoji_id": values.get("emoji-id", "")}
    return {"type": _HTML_TAGS[name]}


def parse_html(src: str) -> tuple[str, list[JSON]]:
    """Telegram's HTML parse mode: returns the plain text and its entities, or raises 400."""
    out: list[str] = []
    entities: list[JSON] = []
    stack: list[tuple[str, int, JSON | None]] = []  # (tag, UTF-16 offset, entity template)
    pos = i = 0
    while i < len(src):
        ch = src[i]
        if ch == "<":
            at = _byte_offset(src, i)
            match = _TAG_RE.match(src, i)
            if match is None:
                raise _parse_error(f"Unclosed start tag at byte offset {at}")
            name = match[2].lower()
            if name not in _HTML_TAGS:
                raise _parse_error(f'Unsupported start tag "{name}" at byte offset {at}')
            if not match[1]:
                stack.append((name, pos, _html_entity(name, match[3], at)))
            elif not stack:
                raise _parse_error(f"Unexpected end tag at byte offset {at}")
            else:
                tag, start, entity = stack.pop()
                if tag != name:
                    raise _parse_error(
                        f'Unmatched end tag at byte offset {at}, expected "</{tag}>", found "</{name}>"'
                    )
                language = entity.pop("language", None) if entity and name == "code" else None
                if language and stack and stack[-1][0] == "pre" and stack[-1][2] is not None:
                    stack[-1][2]["language"] = language  # <pre><code class="language-x"> is one entity
                elif entity and pos > start:
                    entities.append({**entity, "offset": start, "length": pos - start})
            i = match.end()
            continue
        i += 1
        if ch == "&" and (ref := _CHAR_REF_RE.match(src, i - 1)) and (char := _char_ref(ref[1])):
            ch, i = char, ref.end()
        out.append(ch)
        pos += _u16(ch)
    if stack:
        raise _parse_error(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


_MD_MARKERS = {"||": "spoiler", "__": "underline", "*": "bold", "_": "italic", "~": "strikethrough"}
_MD2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MD_LINK_RE = re.compile(r"\(((?:[^()\\]|\\.)*)\)")


def _find_closing(src: str, fence: str, start: int) -> int:
    end = src.find(fence, start)
    while end > 0 and (len(src[:end]) - len(src[:end].rstrip("\\"))) % 2:
        end = src.find(fence, end + 1)
    return end


def parse_markdown(src: str, v2: bool = True) -> tuple[str, list[JSON]]:
    """Telegram's MarkdownV2 (``v2=True``) or legacy Markdown parse mode."""
    out: list[str] = []
    entities: list[JSON] = []
    stack: list[tuple[str, int, int]] = []  # (marker, UTF-16 offset, byte offset)
    markers = tuple(_MD_MARKERS) if v2 else ("*", "_")
    pos = i = 0

    def emit(text: str) -> None:
        nonlocal pos
        out.append(text)
        pos += _u16(text)

    while i < len(src):
        ch, at = src[i], _byte_offset(src, i)
        if ch == "\\" and i + 1 < len(src) and (v2 or src[i + 1] in "_*`["):
            emit(src[i + 1])
            i += 2
            continue
        if ch == "`":
            fence = "```" if src.startswith("```", i) else "`"
            end = _find_closing(src, fence, i + len(fence)) if v2 else src.find(fence, i + len(fence))
            if end < 0:
                raise _parse_error(f"Can't find end of the entity starting at byte offset {at}")
            body, entity = src[i + len(fence) : end], {"type": "pre" if fence == "```" else "code"}
            if fence == "```" and "\n" in body and body.split("\n", 1)[0].strip():
                entity["language"], body = body.split("\n", 1)
            if v2:
                body = re.sub(r"\\([`\\])", r"\1", body)
            entities.append({**entity, "offset": pos, "length": _u16(body)})
            emit(body)
            i = end + len(fence)
            continue
        marker = next((m for m in markers if src.startswith(m, i)), None)
        if marker is not None:
            if stack and stack[-1][0] == marker:
                _, start, _ = stack.pop()
                if pos > start:
                    entities.append({"type": _MD_MARKERS[marker], "offset": start, "length": pos - start})
            elif any(frame[0] == marker for frame in stack):
                raise _parse_error(f"Can't find end of the entity starting at byte offset {stack[-1][2]}")
            else:
                stack.append((marker, pos, at))
            i += len(marker)
            continue
        if ch == "[":
            stack.append(("[", pos, at))
            i += 1
            continue
        if ch == "]" and stack and stack[-1][0] == "[":
            link = _MD_LINK_RE.match(src, i + 1)
            if link is None:
                raise _parse_error(f"Can't find end of a URL at byte offset {at}")
            _, start, _ = stack.pop()
            url = re.sub(r"\\(.)", r"\1", link[1])
            entities.append({"type": "text_link", "offset": start, "length": pos - start, "url": url})
            i = link.end()
            continue
        if v2 and ch == ">" and (i == 0 or src[i - 1] == "\n"):
            i += 1  # blockquote marker
            continue
        if v2 and ch in _MD2_RESERVED:
            raise _parse_error(f"Character '{ch}' is reserved and must be escaped with the preceding '\\'")
        emit(ch)
        i += 1
    if stack:
        raise _parse_error(f"Can't find end of the entity starting at byte offset {stack[-1][2]}")
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def parse_entities(text: str, parse_mode: str) -> tuple[str, list[JSON]]:
    mode = parse_mode.lower()
    if mode == "html":
        return parse_html(text)
    if mode in ("markdownv2", "markdown"):
        return parse_markdown(text, v2=mode == "markdownv2")
    raise bad_request(f"unsupported parse_mode {parse_mode!r}")


_AUTO_ENTITIES = (
    ("email", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    ("url", re.compile(r"(?:https?://|www\.)\S*[^\s.,!?;:)\]]")),
    # like Telegram's clients: not inside a word, a path or an HTML tag ("</b>" is no command)
    ("bot_command", re.compile(r"(?<![\w/<>])/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?![\w/<>])")),
    ("mention", re.compile(r"(?<![\w@])@[A-Za-z0-9_]{4,32}")),
    ("hashtag", re.compile(r"(?<![\w#])#\w+")),
)


def auto_entities(text: str) -> list[JSON]:
    """Entities Telegram's clients add to what users type (commands, links, mentions...)."""
    taken: list[tuple[int, int]] = []
    entities: list[JSON] = []
    for kind, pattern in _AUTO_ENTITIES:
        for match in pattern.finditer(text):
            if any(match.start() < end and start < match.end() for start, end in taken):
                continue
            taken.append(match.span())
            entities.append({"type": kind, "offset": _u16(text[: match.start()]), "length": _u16(match[0])})
    return sorted(entities, key=lambda e: e["offset"])


# --------------------------------------------------------------------------------------------- state


@dataclass
class Limits:
    """Telegram's limits, as modelled by the emulator. ``None`` disables a rate limit."""

    text_limit: int = 4096
    caption_limit: int = 1024
    callback_data_limit: int = 64
    callback_answer_limit: int = 200
    group_per_minute: int | None = 20
    private_per_second: int | None = None
    global_per_second: int | None = None
    webhook_retry_delay: float = 0.5


@dataclass
class Upload:
    """A file part of a multipart request."""

    filename: str
    content_type: str
    data: bytes

    def describe(self) -> JSON:
        return {"upload": self.filename, "content_type": self.content_type, "size": len(self.data)}


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    kind: str
    data: bytes
    mime_type: str
    file_name: str | None = None
    url: str | None = None

    def info(self) -> JSON:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.data),
            "file_path": self.file_path,
        }


class _Signal:
    """Wake-up-all notification for long polls."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)


class EventBus:
    """In-memory event log (bounded) with long-poll support; feeds ``/control/events`` and ``/control/wait``."""

    def __init__(self, history: int = 5000) -> None:
        self.seq = 0
        self.history: deque[JSON] = deque(maxlen=history)
        self.signal = _Signal()

    def publish(self, kind: str, **data: Any) -> int:
        self.seq += 1
        self.history.append({"seq": self.seq, "type": kind, "ts": time.time(), **data})
        self.signal.notify()
        return self.seq

    def since(self, seq: int) -> list[JSON]:
        """The events after `seq`, oldest first. Read from the newest end: a follower asks after every
        event, and scanning the whole history each time was most of the emulator's CPU under load."""
        newer: list[JSON] = []
        for event in reversed(self.history):
            if event["seq"] <= seq:
                break
            newer.append(event)
        newer.reverse()
        return newer


class Params(dict[str, Any]):
    """Bot API parameters with Telegram-like coercion (form values arrive as strings)."""

    def text(self, key: str) -> str | None:
        value = self.get(key)
        return None if value is None else str(value)

    def integer(self, key: str, default: int | None = None) -> int | None:
        value = self.get(key)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request(f'field "{key}" must be of type Integer') from None

    def required_int(self, key: str, missing: str) -> int:
        value = self.integer(key)
        if value is None:
            raise bad_request(missing)
        return value

    def number(self, key: str) -> float | None:
        value = self.get(key)
        try:
            return None if value in (None, "") else float(value)
        except (TypeError, ValueError):
            raise bad_request(f'field "{key}" must be of type Float') from None

    def flag(self, key: str) -> bool:
        return self.get(key) in (True, 1, "true", "True", "1")


def _normalize(params: dict[str, Any]) -> Params:
    """Resolve ``attach://`` references and decode JSON-encoded fields of form requests."""
    out = Params(params)
    for key, value in list(out.items()):
        if isinstance(value, str) and value.startswith("attach://"):
            out[key] = out.get(value.removeprefix("attach://"), value)
    for key, value in params.items():
        if isinstance(value, str) and value.startswith("attach://"):
            out.pop(value.removeprefix("attach://"), None)
    for key in _INT_FIELDS & out.keys():
        if isinstance(out[key], str) and _INT_RE.fullmatch(out[key]):
            out[key] = int(out[key])
    for key in _JSON_FIELDS & out.keys():
        value = out[key]
        if isinstance(value, str) and value:
            try:
                out[key] = json.loads(value)
            except ValueError:
                what = "reply keyboard markup" if key == "reply_markup" else key
                raise bad_request(f"can't parse {what} JSON object") from None
    return out


async def _read_multipart(reader: aiohttp.MultipartReader) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async for part in reader:
        if not isinstance(part, aiohttp.BodyPartReader) or not part.name:
            continue
        data = await part.read(decode=True)
        if part.filename is not None:
            ctype = part.headers.get(aiohttp.hdrs.CONTENT_TYPE, "application/octet-stream")
            out[part.name] = Upload(part.filename, ctype, bytes(data))
        else:
            out[part.name] = data.decode(part.get_charset("utf-8"))
    return out


async def _read_request_params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query)
    if not request.body_exists:
        return params
    ctype = request.content_type
    if ctype == "multipart/form-data":
        params.update(await _read_multipart(await request.multipart()))
    elif ctype == "application/x-www-form-urlencoded":
        params.update((key, value) for key, value in (await request.post()).items() if isinstance(value, str))
    else:
        try:
            body = json.loads(await request.text() or "{}")
        except ValueError:
            raise bad_request("can't parse JSON encoded request parameters") from None
        if not isinstance(body, dict):
            raise bad_request("request parameters must be a JSON object")
        params.update(body)
    return params


def _jsonable(params: dict[str, Any]) -> JSON:
    return {key: value.describe() if isinstance(value, Upload) else value for key, value in params.items()}


def _compact(data: JSON) -> JSON:
    return {key: value for key, value in data.items() if value is not None}


def _update_type(update: JSON) -> str:
    return next((key for key in update if key != "update_id"), "")


def _buttons(markup: JSON | None) -> Iterator[Any]:
    if not markup:
        return
    for row in markup.get("inline_keyboard") or markup.get("keyboard") or ():
        yield from row


# Registry of implemented Bot API methods: lower-case name -> (canonical name, handler(emulator, params)).
_API: dict[str, tuple[str, Callable[..., Any]]] = {}


def api(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(handler: Callable[..., Any]) -> Callable[..., Any]:
        _API[name.lower()] = (name, handler)
        return handler

    return register


@web.middleware
async def _control_errors(request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
    try:
        return await handler(request)
    except ControlError as exc:
        return exc.response()


def _query(request: web.Request, key: str, conv: Callable[[str], Any] = int, default: Any = None) -> Any:
    raw = request.query.get(key)
    if raw is None or raw == "":
        return default
    try:
        return conv(raw)
    except ValueError:
        raise ControlError(400, f"bad query parameter {key}={raw!r}") from None


def _path_int(request: web.Request, key: str) -> int:
    try:
        return int(request.match_info[key])
    except ValueError:
        raise ControlError(400, f"bad {key}") from None


# --------------------------------------------------------------------------------------------- emulator


class Emulator:
    """The emulated Telegram: state, Bot API handlers and the control API."""

    def __init__(
        self,
        *,
        bot_username: str = "leadbot",
        bot_first_name: str = "Lead Bot",
        limits: Limits | None = None,
    ) -> None:
        self.bot_username = bot_username
        self.bot_first_name = bot_first_name
        self.bot_id = 1_000_000  # replaced by the digits of the first token seen
        self.limits = limits or Limits()
        self.bus = EventBus()
        self.base_url: str | None = None
        self.clock: Callable[[], float] = time.monotonic  # rate-limit windows; replaceable in tests
        self._closed = False
        self._next_update_id = 1  # never reset: a running bot keeps its offset across resets
        self._serial = 0  # file ids, callback query ids
        self._call_seq = 0
        self._poll_generation = 0
        self._updates_signal = _Signal()
        self._webhook_task: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._page_dir: Path | None = None
        self._page_index = "index.html"
        self._clear()
        self.app = self._build_app()

    def _clear(self) -> None:
        self._updates: list[JSON] = []
        self._confirmed = 0
        self._allowed_updates: list[str] | None = None
        self._webhook: JSON | None = None
        self._webhook_error: tuple[int, str] | None = None
        self._chats: dict[int, JSON] = {}
        self._users: dict[int, JSON] = {}
        self._messages: dict[int, dict[int, JSON]] = defaultdict(dict)
        self._deleted: set[tuple[int, int]] = set()
        self._next_message_id: dict[int, int] = defaultdict(lambda: 1)
        self._members: dict[tuple[int, int], str] = {}
        self._blocked: set[int] = set()
        self._migrated: dict[int, int] = {}
        self._files: dict[str, StoredFile] = {}
        self._files_by_path: dict[str, StoredFile] = {}
        self._callbacks: dict[str, JSON] = {}
        self._commands: dict[tuple[str, str], JSON] = {}
        self._menu_buttons: dict[int | None, JSON] = {}
        self._keyboards: dict[int, JSON] = {}
        self._faults: list[JSON] = []
        self._calls: deque[JSON] = deque(maxlen=100_000)
        self._sends: dict[int, deque[float]] = defaultdict(deque)
        self._global_sends: deque[float] = deque()

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve the app on ``host:port`` (0 = a free port); returns and sets ``base_url``."""
        self._runner = web.AppRunner(self.app, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound = self._runner.addresses[0][1]
        self.base_url = f"http://{host}:{bound}"
        return self.base_url

    def serve_page(self, directory: Path | str, index: str = "index.html") -> None:
        """Serve a web page from ``directory``: ``GET /`` answers ``index``, ``GET /static/{path}`` the
        files (never revalidated from cache, so an edited page shows at once). Without a page ``GET /``
        answers the emulator's state as JSON (also at ``/control/state``)."""
        folder = Path(directory).resolve()
        if not (folder / index).is_file():
            raise ValueError(f"no {index} in {folder}")
        self._page_dir, self._page_index = folder, index

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _on_shutdown(self, _app: web.Application) -> None:
        self._closed = True
        self._updates_signal.notify()
        self.bus.signal.notify()
        self._stop_webhook()

    async def _on_cleanup(self, _app: web.Application) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    # ------------------------------------------------------------------ identities and lookups

    @property
    def bot_user(self) -> JSON:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    def _next_serial(self) -> int:
        self._serial += 1
        return self._serial

    def _remember_user(self, user: JSON) -> JSON:
        if not isinstance(user, dict):
            raise ControlError(400, f'user must be an object such as {{"id": 42, "first_name": "Ann"}}, not {user!r}')
        if "id" not in user:
            raise ControlError(400, "user.id is required")
        try:
            user_id = int(user["id"])
        except (TypeError, ValueError):
            raise ControlError(400, f"user.id must be an integer, not {user['id']!r}") from None
        stored = {"is_bot": False, "first_name": "User", **user, "id": user_id}
        self._users[stored["id"]] = stored
        return stored

    def _chat_id(self, p: Params, key: str = "chat_id") -> int:
        value = p.get(key)
        if value is None or value == "":
            raise bad_request(f"{key} is empty")
        if isinstance(value, str) and value.startswith("@"):
            wanted = value[1:].lower()
            for chat in self._chats.values():
                if str(chat.get("username", "")).lower() == wanted:
                    return int(chat["id"])
            raise bad_request("chat not found")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request("chat not found") from None

    def _chat(self, p: Params, *, write: bool = False, key: str = "chat_id") -> JSON:
        """The chat a Bot API call targets; ``write`` also checks that the bot may post there."""
        chat_id = self._chat_id(p, key)
        if chat_id in self._migrated:
            raise ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                migrate_to_chat_id=self._migrated[chat_id],
            )
        chat = self._chats.get(chat_id)
        if chat is None:
            if chat_id in self._users:
                raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
            raise bad_request("chat not found")
        if write:
            self._check_can_write(chat)
        return chat

    def _check_can_write(self, chat: JSON) -> None:
        if chat["type"] == "private":
            if chat["id"] in self._blocked:
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            return
        kind = {"supergroup": "supergroup chat", "channel": "channel chat"}.get(chat["type"], "group chat")
        status = self._status(chat["id"], self.bot_id)
        if status == "kicked":
            raise ApiError(403, f"Forbidden: bot was kicked from the {kind}")
        if status == "left":
            raise ApiError(403, f"Forbidden: bot is not a member of the {kind}")

    def _status(self, chat_id: int, user_id: int) -> str:
        if (chat_id, user_id) in self._members:
            return self._members[chat_id, user_id]
        chat = self._chats.get(chat_id)
        if chat is not None and chat["type"] == "private":
            if user_id == self.bot_id:
                return "kicked" if chat_id in self._blocked else "member"
            return "member" if user_id == chat_id else "left"
        return "administrator" if user_id == self.bot_id else "left"

    def _member(self, chat_id: int, user_id: int) -> JSON:
        return self._chat_member(self._status(chat_id, user_id), self._user_or_stub(user_id))

    def _user_or_stub(self, user_id: int) -> JSON:
        if user_id == self.bot_id:
            return self.bot_user
        return self._users.get(user_id) or {
            "id": user_id,
            "is_bot": False,
            "first_name": f"User {user_id}",
        }

    @staticmethod
    def _chat_member(status: str, user: JSON) -> JSON:
        """A ChatMember of ``status`` as the Bot API shows it."""
        member: JSON = {"status": status, "user": user}
        if status == "creator":
            member["is_anonymous"] = False
        elif status == "administrator":
            member.update(is_anonymous=False, can_be_edited=False, can_promote_members=False)
            member.update(dict.fromkeys(_ADMIN_RIGHTS, True))
        elif status == "kicked":
            member["until_date"] = 0
        elif status == "restricted":
            member.update(is_member=True, until_date=0)
        return member

    def _get_message(self, chat_id: int, message_id: int | None) -> JSON | None:
        if message_id is None or (chat_id, message_id) in self._deleted:
            return None
        return self._messages.get(chat_id, {}).get(message_id)

    @staticmethod
    def _view(message: JSON) -> JSON:
        """A stored message as the Bot API shows it (only inline keyboards are part of a Message)."""
        view = dict(message)
        markup = view.get("reply_markup")
        if markup is not None and "inline_keyboard" not in markup:
            del view["reply_markup"]
        return view

    # ------------------------------------------------------------------ messages, updates, files

    def _new_message(
        self,
        chat: JSON,
        sender: JSON,
        content: JSON,
        *,
        reply_to: JSON | None = None,
        markup: JSON | None = None,
        message_id: int | None = None,
        date: int | None = None,
    ) -> JSON:
        chat_id = chat["id"]
        if message_id is None:
            message_id = self._next_message_id[chat_id]
        self._next_message_id[chat_id] = max(self._next_message_id[chat_id], message_id + 1)
        message: JSON = {
            "message_id": message_id,
            "from": sender,
            "chat": dict(chat),
            "date": int(date if date is not None else time.time()),
            **content,
        }
        if reply_to is not None:
            message["reply_to_message"] = {
                k: v for k, v in self._view(reply_to).items() if k != "reply_to_message"
            }
        if markup is not None:
            message["reply_markup"] = markup
        self._messages[chat_id][message_id] = message
        self._deleted.discard((chat_id, message_id))
        self._publish_message("message", message)
        return message

    def _publish_message(self, kind: str, message: JSON) -> int:
        return self.bus.publish(
            kind,
            chat_id=message["chat"]["id"],
            from_bot=bool(message.get("from", {}).get("is_bot")),
            message=copy.deepcopy(message),
        )

    def _queue_update(self, update: JSON) -> tuple[int, int]:
        """Queue an update (assigning update_id if missing); returns (update_id, event seq)."""
        update = dict(update)
        if "update_id" not in update:
            update["update_id"] = self._next_update_id
        self._next_update_id = max(self._next_update_id, int(update["update_id"]) + 1)
        self._updates.append(update)
        self._updates.sort(key=lambda u: u["update_id"])
        self._updates_signal.notify()
        return update["update_id"], self.bus.publish("update", update=copy.deepcopy(update))

    def _confirm(self, offset: int | None) -> None:
        if offset is None:
            return
        if offset < 0:
            self._updates = self._updates[offset:]
            return
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        self._confirmed = max(self._confirmed, offset)
        # A client ahead of us (e.g. the emulator restarted under a running bot) must not lose updates.
        self._next_update_id = max(self._next_update_id, offset)

    def _wanted(self, update: JSON) -> bool:
        kind = _update_type(update)
        return kind in self._allowed_updates if self._allowed_updates else kind not in _OPT_IN_UPDATES

    def _deliverable(self, limit: int) -> list[JSON]:
        self._updates = [u for u in self._updates if self._wanted(u)]  # Telegram drops what was not asked for
        return self._updates[:limit]

    def _store_file(
        self,
        data: bytes,
        kind: str,
        file_name: str | None = None,
        mime: str | None = None,
        url: str | None = None,
    ) -> StoredFile:
        n = self._next_serial()
        folder, default_mime, _ = _KINDS[kind]
        if not mime or mime == "application/octet-stream":
            mime = (file_name and mimetypes.guess_type(file_name)[0]) or mime or default_mime
        suffix = PurePosixPath(file_name).suffix if file_name else mimetypes.guess_extension(mime) or ""
        stored = StoredFile(
            file_id=f"emu-{kind}-{n:06d}",
            file_unique_id=f"U{n:06d}",
            file_path=f"{folder}/file_{n}{suffix}",
            kind=kind,
            data=data,
            mime_type=mime,
            file_name=file_name,
            url=url,
        )
        self._files[stored.file_id] = self._files_by_path[stored.file_path] = stored
        return stored

    def _file_from_ref(self, ref: Any, kind: str) -> StoredFile:
        if isinstance(ref, Upload):
            return self._store_file(ref.data, kind, ref.filename, ref.content_type)
        ref = str(ref)
        if ref.startswith(("http://", "https://")):
            name = ref.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or None
            return self._store_file(b"", kind, name, url=ref)
        stored = self._files.get(ref)
        if stored is None:
            raise bad_request("wrong file identifier/HTTP URL specified")
        return stored

    def _media_object(self, kind: str, stored: StoredFile) -> Any:
        obj: JSON = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            **_KINDS[kind][2],
        }
        if kind in _NAMED_KINDS and stored.file_name:
            obj["file_name"] = stored.file_name
        if kind in _MIME_KINDS:
            obj["mime_type"] = stored.mime_type
        if kind != "photo":
            return obj
        thumb = self._store_file(stored.data, "photo", mime=stored.mime_type)
        return [{**obj, **thumb.info(), "width": 90, "height": 68}, obj]

    def _user_media(self, kind: str, spec: Any) -> Any:
        data, mime, name = _PLACEHOLDERS.get(kind, (b"", None, None))
        overrides = dict(spec) if isinstance(spec, dict) else {}
        content = overrides.pop("content", None)
        if content is not None:
            data = content.encode() if isinstance(content, str) else bytes(content)
        name, mime = overrides.pop("file_name", name), overrides.pop("mime_type", mime)
        obj = self._media_object(kind, self._store_file(data, kind, name, mime))
        if kind == "sticker":
            overrides.setdefault("emoji", "👍")
        if isinstance(obj, dict):
            obj.update(overrides)
        return obj

    # ------------------------------------------------------------------ Bot API dispatch

    def _authorize(self, token: str) -> None:
        match = _TOKEN_RE.fullmatch(token)
        if match is None:
            raise ApiError(401, "Unauthorized")
        bot_id = int(match[1])
        if bot_id != self.bot_id:
            # the bot's memberships set before its first call (e.g. removed from a group) carry over
            for (chat_id, user_id), status in list(self._members.items()):
                if user_id == self.bot_id:
                    del self._members[chat_id, user_id]
                    self._members.setdefault((chat_id, bot_id), status)
            self.bot_id = bot_id

    async def call_api(
        self, method: str, params: dict[str, Any] | None = None, *, token: str | None = None
    ) -> tuple[int, JSON]:
        """Execute one Bot API call (as the HTTP side does); returns (HTTP status, response body)."""
        started = time.time()
        entry = _API.get(method.lower())
        name = entry[0] if entry else method
        p, fault = Params(params or {}), None
        try:
            if token is not None:
                self._authorize(token)
            p = _normalize(p)
            fault = self._take_fault(name, p)
            if fault is not None:
                await self._apply_fault(fault)
            if entry is None and method.lower() not in _known_methods():
                raise ApiError(404, "Not Found")
            result = entry[1](self, p) if entry else True
            if inspect.isawaitable(result):
                result = await result
            status, body = 200, {"ok": True, "result": result}
        except ApiError as exc:
            status, body = exc.code, exc.body()
        except _DropConnection:
            self._record(name, p, 0, None, fault, started)
            raise
        self._record(name, p, status, body, fault, started)
        return status, body

    def _record(
        self,
        method: str,
        params: dict[str, Any],
        status: int,
        body: JSON | None,
        fault: JSON | None,
        started: float,
    ) -> None:
        self._call_seq += 1
        self._calls.append(
            {
                "seq": self._call_seq,
                "ts": started,
                "method": method,
                "params": _jsonable(params),
                "status": status,
                "response": body,
                "fault": copy.deepcopy(fault),
                "duration": round(time.time() - started, 4),
            }
        )

    def _take_fault(self, method: str, p: Params) -> JSON | None:
        for rule in self._faults:
            if rule["method"] and str(rule["method"]).lower() != method.lower():
                continue
            if rule["chat_id"] is not None and str(rule["chat_id"]) != str(p.get("chat_id")):
                continue
            rule["fired"] += 1
            if 0 < rule["count"] <= rule["fired"]:
                self._faults.remove(rule)
            return rule
        return None

    @staticmethod
    async def _apply_fault(rule: JSON) -> None:
        effect = rule["effect"]
        if effect.get("delay"):
            await asyncio.sleep(float(effect["delay"]))
        if effect.get("drop_connection"):
            raise _DropConnection
        if effect.get("error_code"):
            code = int(effect["error_code"])
            parameters = {k: effect[k] for k in ("retry_after", "migrate_to_chat_id") if k in effect}
            if code == 429:
                parameters.setdefault("retry_after", 1)
                default = f"Too Many Requests: retry after {parameters['retry_after']}"
            else:
                default = _DEFAULT_DESCRIPTIONS.get(code, "Error")
            raise ApiError(code, effect.get("description") or default, **parameters)

    # ------------------------------------------------------------------ shared pieces of the handlers

    def _formatted(
        self, p: Params, key: str, entities_key: str, *, limit: int, too_long: str, empty: str | None = None
    ) -> JSON:
        raw = p.text(key) or ""
        mode = p.text("parse_mode")
        text, entities = parse_entities(raw, mode) if mode else (raw, p.get(entities_key) or [])
        if not text.strip():
            if empty:
                raise bad_request(empty)
            return {}
        if len(text) > limit:
            raise bad_request(too_long)
        return _compact({key: text, entities_key: entities or None})

    def _text(self, p: Params) -> JSON:
        return self._formatted(
            p,
            "text",
            "entities",
            limit=self.limits.text_limit,
            too_long="message is too long",
            empty="message text is empty",
        )

    def _caption(self, p: Params) -> JSON:
        return self._formatted(
            p,
            "caption",
            "caption_entities",
            limit=self.limits.caption_limit,
            too_long="message caption is too long",
        )

    def _markup(self, p: Params, *, inline_only: bool = False) -> JSON | None:
        markup = p.get("reply_markup")
        if markup is None or markup == "":
            return None
        if not isinstance(markup, dict):
            raise bad_request("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            return self._check_inline_keyboard(markup)
        if inline_only:
            raise bad_request("inline keyboard expected")
        if "keyboard" in markup:
            rows = markup["keyboard"]
            if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
                raise bad_request('field "keyboard" must be an Array of Array')
            for button in _buttons(markup):
                if not isinstance(button, str) and not (isinstance(button, dict) and button.get("text")):
                    raise bad_request('can\'t parse keyboard button: Field "text" must be of type String')
            return markup
        if markup.get("remove_keyboard") or markup.get("force_reply"):
            return markup
        raise bad_request("can't parse reply keyboard markup JSON object")

    def _check_inline_keyboard(self, markup: JSON) -> JSON | None:
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request('field "inline_keyboard" must be an Array of Array')
        for button in _buttons(markup):
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise bad_request('can\'t parse inline keyboard button: Field "text" must be of type String')
            if not _INLINE_ACTIONS & button.keys():
                raise bad_request(
                    "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
                )
            if "callback_data" in button:
                size = len(str(button["callback_data"]).encode())
                if not 1 <= size <= self.limits.callback_data_limit:
                    raise bad_request("BUTTON_DATA_INVALID")
            if "url" in button and not re.fullmatch(r"(https?|tg)://\S+", str(button["url"])):
                raise bad_request(f"inline keyboard button URL '{button['url']}' is invalid: Wrong HTTP URL")
        return markup if any(rows) else None

    def _reply_target(self, chat: JSON, p: Params) -> JSON | None:
        parameters = p.get("reply_parameters") or {}
        if not isinstance(parameters, dict):
            raise bad_request("can't parse reply parameters JSON object")
        message_id = parameters.get("message_id") or p.integer("reply_to_message_id")
        if not message_id:
            return None
        target = self._get_message(int(parameters.get("chat_id", chat["id"])), int(message_id))
        if target is None and not (
            parameters.get("allow_sending_without_reply") or p.flag("allow_sending_without_reply")
        ):
            raise bad_request("message to be replied not found")
        return target

    def _check_rate(self, chat_id: int) -> None:
        now, limits = self.clock(), self.limits
        windows = [
            (self._global_sends, limits.global_per_second, 1.0),
            (
                self._sends[chat_id],
                *((limits.group_per_minute, 60.0) if chat_id < 0 else (limits.private_per_second, 1.0)),
            ),
        ]
        for sent, cap, window in windows:
            while sent and sent[0] <= now - window:
                sent.popleft()
            if cap is not None and len(sent) >= cap:
                retry = max(1, math.ceil(sent[0] + window - now))
                raise ApiError(429, f"Too Many Requests: retry after {retry}", retry_after=retry)

    def _send(self, p: Params, content: JSON) -> JSON:
        """The common path of every send* method: checks, limits, storing, keyboard tracking."""
        chat = self._chat(p, write=True)
        markup = self._markup(p)
        reply_to = self._reply_target(chat, p)
        self._check_rate(chat["id"])
        message = self._new_message(chat, self.bot_user, content, reply_to=reply_to, markup=markup)
        now = self.clock()
        self._sends[chat["id"]].append(now)
        self._global_sends.append(now)
        if markup and "keyboard" in markup:
            self._keyboards[chat["id"]] = markup
        elif markup and markup.get("remove_keyboard"):
            self._keyboards.pop(chat["id"], None)
        return self._view(message)

    def _send_media(self, p: Params, kind: str) -> JSON:
        ref = p.get(kind)
        if ref is None or ref == "":
            raise bad_request(f"there is no {kind} in the request")
        content: JSON = {kind: self._media_object(kind, self._file_from_ref(ref, kind))}
        if kind != "sticker":
            content.update(self._caption(p))
        return self._send(p, content)

    def _editable(self, p: Params) -> JSON:
        if p.get("inline_message_id"):
            raise bad_request("message to edit not found")
        chat = self._chat(p, write=True)
        message = self._get_message(
            chat["id"], p.required_int("message_id", "message identifier is not specified")
        )
        if message is None:
            raise bad_request("message to edit not found")
        if not message.get("from", {}).get("is_bot"):
            raise bad_request("message can't be edited")
        return message

    def _apply_edit(self, message: JSON, changes: JSON) -> JSON:
        if all(message.get(key) == value for key, value in changes.items()):
            raise bad_request(_NOT_MODIFIED)
        for key, value in changes.items():
            if value is None:
                message.pop(key, None)
            else:
                message[key] = value
        message["edit_date"] = int(time.time())
        self._publish_message("edit", message)
        return self._view(message)

    def _source_message(self, p: Params, verb: str) -> JSON:
        chat = self._chat(p, key="from_chat_id")
        message = self._get_message(
            chat["id"], p.required_int("message_id", "message identifier is not specified")
        )
        if message is None:
            raise bad_request(f"message to {verb} not found")
        return message

    # ------------------------------------------------------------------ Bot API methods

    @api("getMe")
    def _get_me(self, p: Params) -> JSON:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    @api("logOut")
    @api("close")
    def _true(self, p: Params) -> bool:
        return True

    @api("getUpdates")
    async def _get_updates(self, p: Params) -> list[JSON]:
        if self._webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete "
                "the webhook first",
            )
        limit = min(max(p.integer("limit", 100) or 100, 1), 100)
        deadline = time.monotonic() + max(p.integer("timeout", 0) or 0, 0)
        if isinstance(p.get("allowed_updates"), list):
            self._allowed_updates = p["allowed_updates"] or None
        self._confirm(p.integer("offset"))
        self._poll_generation += 1
        generation = self._poll_generation
        while True:
            batch = self._deliverable(limit)
            remaining = deadline - time.monotonic()
            if batch or remaining <= 0 or self._closed:
                return copy.deepcopy(batch)
            await self._updates_signal.wait(remaining)
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot "
                    "instance is running",
                )

    @api("setWebhook")
    def _set_webhook(self, p: Params) -> bool:
        url = p.text("url") or ""
        if not url:
            return self._delete_webhook(p)
        if not url.startswith(("http://", "https://")):
            raise bad_request("bad webhook: invalid webhook URL specified")
        secret = p.text("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise bad_request("secret token contains unallowed characters")
        if p.flag("drop_pending_updates"):
            self._updates.clear()
        if isinstance(p.get("allowed_updates"), list):
            self._allowed_updates = p["allowed_updates"] or None
        self._webhook = {
            "url": url,
            "secret_token": secret,
            "max_connections": p.integer("max_connections", 40),
        }
        self._webhook_error = None
        self._stop_webhook()
        self._webhook_task = asyncio.get_running_loop().create_task(self._webhook_worker())
        return True

    @api("deleteWebhook")
    def _delete_webhook(self, p: Params) -> bool:
        if p.flag("drop_pending_updates"):
            self._updates.clear()
        self._webhook = None
        self._stop_webhook()
        return True

    @api("getWebhookInfo")
    def _get_webhook_info(self, p: Params) -> JSON:
        info: JSON = {"url": "", "has_custom_certificate": False, "pending_update_count": len(self._updates)}
        if self._webhook is not None:
            info.update(url=self._webhook["url"], max_connections=self._webhook["max_connections"])
            info["ip_address"] = "127.0.0.1"
            if self._allowed_updates:
                info["allowed_updates"] = self._allowed_updates
        if self._webhook_error is not None:
            info["last_error_date"], info["last_error_message"] = self._webhook_error
        return info

    @api("sendMessage")
    def _send_message(self, p: Params) -> JSON:
        return self._send(p, self._text(p))

    @api("sendLocation")
    def _send_location(self, p: Params) -> JSON:
        location = _compact({"latitude": p.number("latitude"), "longitude": p.number("longitude")})
        if len(location) < 2:
            raise bad_request("latitude and longitude are required")
        return self._send(p, {"location": location})

    @api("sendContact")
    def _send_contact(self, p: Params) -> JSON:
        contact = _compact({k: p.text(k) for k in ("phone_number", "first_name", "last_name", "vcard")})
        if not contact.get("phone_number") or not contact.get("first_name"):
            raise bad_request("phone_number and first_name are required")
        return self._send(p, {"contact": contact})

    @api("forwardMessage")
    def _forward_message(self, p: Params) -> JSON:
        source = self._source_message(p, "forward")
        origin: JSON = {"type": "user", "sender_user": source["from"], "date": source["date"]}
        if "from" not in source:
            origin = {"type": "chat", "sender_chat": source["chat"], "date": source["date"]}
        content = {key: source[key] for key in _CONTENT_KEYS if key in source}
        return self._send(Params({**p, "reply_markup": None}), {"forward_origin": origin, **content})

    @api("copyMessage")
    def _copy_message(self, p: Params) -> JSON:
        source = self._source_message(p, "copy")
        content = {key: source[key] for key in _CONTENT_KEYS if key in source}
        if p.get("caption") is not None:
            content = {k: v for k, v in content.items() if not k.startswith("caption")} | self._caption(p)
        return {"message_id": self._send(p, content)["message_id"]}

    @api("getFile")
    def _get_file(self, p: Params) -> JSON:
        stored = self._files.get(p.text("file_id") or "")
        if stored is None:
            raise bad_request("invalid file_id")
        return stored.info()

    @api("editMessageText")
    def _edit_message_text(self, p: Params) -> JSON:
        message = self._editable(p)
        if "text" not in message:
            raise bad_request("there is no text in the message to edit")
        changes = {
            "text": None,
            "entities": None,
            **self._text(p),
            "reply_markup": self._markup(p, inline_only=True),
        }
        return self._apply_edit(message, changes)

    @api("editMessageCaption")
    def _edit_message_caption(self, p: Params) -> JSON:
        message = self._editable(p)
        if not _KINDS.keys() & message.keys():
            raise bad_request("there is no caption in the message to edit")
        changes = {"caption": None, "caption_entities": None, **self._caption(p)}
        return self._apply_edit(message, {**changes, "reply_markup": self._markup(p, inline_only=True)})

    @api("editMessageReplyMarkup")
    def _edit_message_reply_markup(self, p: Params) -> JSON:
        return self._apply_edit(self._editable(p), {"reply_markup": self._markup(p, inline_only=True)})

    @api("deleteMessage")
    def _delete_message(self, p: Params) -> bool:
        chat = self._chat(p)
        message_id = p.required_int("message_id", "message identifier is not specified")
        if self._get_message(chat["id"], message_id) is None:
            raise bad_request("message to delete not found")
        self._deleted.add((chat["id"], message_id))
        self.bus.publish("delete", chat_id=chat["id"], message_id=message_id)
        return True

    @api("deleteMessages")
    def _delete_messages(self, p: Params) -> bool:
        chat = self._chat(p)
        for message_id in p.get("message_ids") or []:
            if self._get_message(chat["id"], int(message_id)) is not None:
                self._deleted.add((chat["id"], int(message_id)))
                self.bus.publish("delete", chat_id=chat["id"], message_id=int(message_id))
        return True

    @api("answerCallbackQuery")
    def _answer_callback_query(self, p: Params) -> bool:
        query_id = p.text("callback_query_id") or ""
        query = self._callbacks.get(query_id)
        if query is None or query["answer"] is not None:
            raise bad_request(_CALLBACK_TOO_OLD)
        text = p.text("text")
        if text is not None and len(text) > self.limits.callback_answer_limit:
            raise bad_request("MESSAGE_TOO_LONG")
        answer = {
            "text": text,
            "show_alert": p.flag("show_alert"),
            "url": p.text("url"),
            "cache_time": p.integer("cache_time", 0),
        }
        query["answer"] = answer
        self.bus.publish(
            "callback_answer", callback_query_id=query_id, chat_id=query["chat_id"], answer=answer
        )
        return True

    @api("getChat")
    def _get_chat(self, p: Params) -> JSON:
        chat = self._chat(p)
        gifts = dict.fromkeys(
            (
                "unlimited_gifts",
                "limited_gifts",
                "unique_gifts",
                "premium_subscription",
                "gifts_from_channels",
            ),
            False,
        )
        return {**chat, "accent_color_id": 0, "max_reaction_count": 11, "accepted_gift_types": gifts}

    @api("getChatMember")
    def _get_chat_member(self, p: Params) -> JSON:
        chat = self._chat(p)
        return self._member(chat["id"], p.required_int("user_id", "user not found"))

    @api("getChatAdministrators")
    def _get_chat_administrators(self, p: Params) -> list[JSON]:
        chat = self._chat(p)
        if chat["type"] == "private":
            raise bad_request("there are no administrators in the private chat")
        user_ids = [uid for (cid, uid) in self._members if cid == chat["id"]] + [self.bot_id]
        members = [self._member(chat["id"], uid) for uid in dict.fromkeys(user_ids)]
        admins = [m for m in members if m["status"] in ("creator", "administrator")]
        return sorted(admins, key=lambda m: m["status"] != "creator")

    @api("getChatMemberCount")
    def _get_chat_member_count(self, p: Params) -> int:
        chat = self._chat(p)
        if chat["type"] == "private":
            return 2
        user_ids = {uid for (cid, uid) in self._members if cid == chat["id"]} | {self.bot_id}
        return sum(self._status(chat["id"], uid) not in ("left", "kicked") for uid in user_ids)

    @staticmethod
    def _commands_key(p: Params) -> tuple[str, str]:
        scope = p.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), p.text("language_code") or ""

    @api("setMyCommands")
    def _set_my_commands(self, p: Params) -> bool:
        commands = p.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad_request("can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict) or not re.fullmatch(
                r"[a-z0-9_]{1,32}", str(command.get("command"))
            ):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description") or "")) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        scope_json, language = self._commands_key(p)
        self._commands[scope_json, language] = {
            "scope": json.loads(scope_json),
            "language_code": language,
            "commands": commands,
        }
        return True

    @api("getMyCommands")
    def _get_my_commands(self, p: Params) -> list[JSON]:
        return self._commands.get(self._commands_key(p), {}).get("commands", [])

    @api("deleteMyCommands")
    def _delete_my_commands(self, p: Params) -> bool:
        self._commands.pop(self._commands_key(p), None)
        return True

    @api("sendChatAction")
    def _send_chat_action(self, p: Params) -> bool:
        chat = self._chat(p, write=True)
        action = p.text("action")
        if action not in _CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        self.bus.publish("chat_action", chat_id=chat["id"], action=action)
        return True

    @api("setChatMenuButton")
    def _set_chat_menu_button(self, p: Params) -> bool:
        chat_id = self._chat(p)["id"] if p.get("chat_id") not in (None, "") else None
        self._menu_buttons[chat_id] = p.get("menu_button") or {"type": "default"}
        return True

    @api("getChatMenuButton")
    def _get_chat_menu_button(self, p: Params) -> JSON:
        chat_id = self._chat(p)["id"] if p.get("chat_id") not in (None, "") else None
        return self._menu_buttons.get(chat_id) or self._menu_buttons.get(None) or {"type": "default"}

    # ------------------------------------------------------------------ webhook delivery

    def _stop_webhook(self) -> None:
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            self._webhook_task = None

    async def _webhook_worker(self) -> None:
        while self._webhook is not None and not self._closed:
            batch = self._deliverable(1)
            if not batch:
                await self._updates_signal.wait(None)
            elif await self._deliver(self._webhook, batch[0]):
                self._confirm(batch[0]["update_id"] + 1)
            else:
                await asyncio.sleep(self.limits.webhook_retry_delay)

    async def _deliver(self, hook: JSON, update: JSON) -> bool:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        headers = {"X-Telegram-Bot-Api-Secret-Token": hook["secret_token"]} if hook["secret_token"] else {}
        try:
            async with self._http.post(
                hook["url"], json=update, headers=headers, timeout=aiohttp.ClientTimeout(total=10)
            ) as resp:
                if resp.status // 100 != 2:
                    self._webhook_error = (
                        int(time.time()),
                        f"Wrong response from the webhook: {resp.status} {resp.reason}",
                    )
                    return False
                reply = await self._webhook_reply(resp)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._webhook_error = (int(time.time()), f"Connection failed: {type(exc).__name__}")
            return False
        if reply and reply.get("method"):  # a Bot API call returned in the webhook response
            await self.call_api(str(reply.pop("method")), reply)
        return True

    @staticmethod
    async def _webhook_reply(resp: aiohttp.ClientResponse) -> dict[str, Any] | None:
        if resp.content_type == "multipart/form-data":
            return await _read_multipart(aiohttp.MultipartReader.from_response(resp))
        if resp.content_type == "application/json":
            body = await resp.json()
            return body if isinstance(body, dict) else None
        return None

    # ------------------------------------------------------------------ control API (also usable in-process)

    def reset(self, limits: bool = False) -> None:
        """Forget everything (update ids, call and event sequence numbers stay monotonic)."""
        self._stop_webhook()
        self._clear()
        if limits:
            self.limits = Limits()
        self._updates_signal.notify()
        self.bus.publish("reset")

    def add_user(self, user: JSON) -> JSON:
        """Make a user known (name, language...) before they write, e.g. for ``getChatMember``."""
        return self._remember_user(user)

    def inject_update(self, update: JSON) -> JSON:
        if not isinstance(update, dict):
            raise ControlError(400, "an update must be a JSON object")
        update_id, seq = self._queue_update(update)
        return {"update_id": update_id, "event_seq": seq}

    def _chat_for(self, user: JSON, chat_id: int | None) -> JSON:
        if chat_id is None or int(chat_id) == user["id"]:
            private = _compact(
                {
                    "id": user["id"],
                    "type": "private",
                    "first_name": user.get("first_name"),
                    "last_name": user.get("last_name"),
                    "username": user.get("username"),
                }
            )
            self._chats[user["id"]] = private
            return private
        chat_id = int(chat_id)
        if chat_id in self._migrated:
            raise ControlError(400, f"chat {chat_id} was migrated to {self._migrated[chat_id]}")
        if chat_id not in self._chats:
            if chat_id > 0:
                raise ControlError(400, f"user {user['id']} cannot write to private chat {chat_id}")
            self.create_chat(id=chat_id)
        self._members.setdefault((chat_id, user["id"]), "member")
        return self._chats[chat_id]

    def inject_message(
        self,
        user: JSON,
        text: str | None = None,
        *,
        chat_id: int | None = None,
        contact: JSON | None = None,
        sticker: bool | JSON = False,
        photo: bool | JSON = False,
        voice: bool | JSON = False,
        video: bool | JSON = False,
        document: bool | JSON = False,
        location: JSON | None = None,
        caption: str | None = None,
        reply_to_message_id: int | None = None,
        message_id: int | None = None,
        date: int | None = None,
        extra: JSON | None = None,
    ) -> JSON:
        """A user writes to the bot: builds a realistic Message, stores it and queues an update."""
        sender = self._remember_user(user)
        chat = self._chat_for(sender, chat_id)
        existing = self._get_message(chat["id"], message_id)
        if existing is not None:  # the same message delivered again under a new update_id
            update_id, seq = self._queue_update({"message": self._view(existing)})
            return {"update_id": update_id, "message_id": existing["message_id"], "event_seq": seq}
        content: JSON = {}
        if text is not None:
            content = _compact({"text": text, "entities": auto_entities(text) or None})
        if contact is not None:
            content["contact"] = {"first_name": sender["first_name"], **contact}
        if location is not None:
            content["location"] = location
        media = {"sticker": sticker, "photo": photo, "voice": voice, "video": video, "document": document}
        content.update({kind: self._user_media(kind, spec) for kind, spec in media.items() if spec})
        if caption:
            content.update(_compact({"caption": caption, "caption_entities": auto_entities(caption) or None}))
        content.update(extra or {})
        if not content:
            raise ControlError(400, "a message needs text, media, a contact or a location")
        reply_to = None
        if reply_to_message_id is not None:
            reply_to = self._get_message(chat["id"], int(reply_to_message_id))
            if reply_to is None:
                raise ControlError(404, f"message {reply_to_message_id} not found in chat {chat['id']}")
        message = self._new_message(
            chat, sender, content, reply_to=reply_to, message_id=message_id, date=date
        )
        update_id, seq = self._queue_update({"message": self._view(message)})
        return {"update_id": update_id, "message_id": message["message_id"], "event_seq": seq}

    def inject_callback(self, user: JSON, chat_id: int, message_id: int, data: str) -> JSON:
        """A user presses an inline button (callback_data ``data``) under a stored message."""
        sender = self._remember_user(user)
        message = self._get_message(int(chat_id), int(message_id))
        if message is None:
            raise ControlError(404, f"message {message_id} not found in chat {chat_id}")
        query_id = str(4_000_000_000_000_000 + self._next_serial())
        self._callbacks[query_id] = {
            "id": query_id,
            "chat_id": int(chat_id),
            "message_id": int(message_id),
            "data": data,
            "user_id": sender["id"],
            "answer": None,
        }
        query = {
            "id": query_id,
            "from": sender,
            "message": self._view(message),
            "chat_instance": str(abs(int(chat_id)) * 7919 % 10**12),
            "data": data,
        }
        update_id, seq = self._queue_update({"callback_query": query})
        return {"update_id": update_id, "callback_query_id": query_id, "event_seq": seq}

    def press(self, user: JSON, chat_id: int, text: str, message_id: int | None = None) -> JSON:
        """Press the inline button labelled ``text`` (exact, else substring) on the newest bot message."""
        candidates = [m for m in reversed(self.messages(int(chat_id))) if m.get("from", {}).get("is_bot")]
        if message_id is not None:
            candidates = [m for m in candidates if m["message_id"] == int(message_id)]
        buttons = [
            (m, b)
            for m in candidates
            for b in _buttons(m.get("reply_markup"))
            if "inline_keyboard" in m["reply_markup"]
        ]
        found = next((mb for mb in buttons if mb[1]["text"] == text), None) or next(
            (mb for mb in buttons if text in mb[1]["text"]), None
        )
        if found is None:
            raise ControlError(404, f"no inline button {text!r} in chat {chat_id}")
        message, button = found
        if "callback_data" not in button:
            raise ControlError(400, f"button {button['text']!r} has no callback_data", button=button)
        result = self.inject_callback(user, int(chat_id), message["message_id"], button["callback_data"])
        return {**result, "message_id": message["message_id"], "data": button["callback_data"]}

    def create_chat(
        self, id: int, type: str = "supergroup", title: str | None = "Staff", **extra: Any
    ) -> JSON:
        chat_id, chat_type = int(id), type
        if chat_type not in ("private", "group", "supergroup", "channel"):
            raise ControlError(400, f"bad chat type {chat_type!r}")
        if (chat_type == "private") != (chat_id > 0):
            raise ControlError(400, "private chats have positive ids, groups negative ones")
        if chat_type == "private":
            user = self._users.get(chat_id) or self._remember_user(
                {"id": chat_id, "first_name": title or "User"}
            )
            chat = _compact(
                {
                    "id": chat_id,
                    "type": "private",
                    "first_name": user["first_name"],
                    "username": user.get("username"),
                    **extra,
                }
            )
        else:
            chat = {"id": chat_id, "type": chat_type, "title": title or "Group", **extra}
        self._chats[chat_id] = chat
        return chat

    def set_member(self, chat_id: int, user_id: int, status: str) -> None:
        if status not in _MEMBER_STATUSES:
            raise ControlError(400, f"bad status {status!r}")
        self._members[int(chat_id), int(user_id)] = status

    def block(self, user_id: int, blocked: bool = True) -> None:
        """The user blocks (or unblocks) the bot; queues a my_chat_member update like Telegram does."""
        user_id = int(user_id)
        if (user_id in self._blocked) == blocked:
            return
        (self._blocked.add if blocked else self._blocked.discard)(user_id)
        chat = self._chats.get(user_id)
        if chat is None:
            return
        old, new = ("member", "kicked") if blocked else ("kicked", "member")
        user = self._users.get(user_id, {"id": user_id, "is_bot": False, "first_name": "User"})
        self._queue_bot_member_change(chat, user, old, new)

    def remove_bot(
        self, chat_id: int, removed: bool = True, by: int | None = None, status: str | None = None
    ) -> None:
        """The bot is removed from (or added back to) a group by user ``by`` (default: the group's creator,
        else an anonymous admin); queues a my_chat_member update like Telegram does. ``status``: "kicked"
        (default) or "left" when removed, "member" (default) or "administrator" when added back."""
        chat_id = int(chat_id)
        chat = self._chats.get(chat_id)
        if chat is None:
            raise ControlError(404, f"chat {chat_id} not found")
        if chat["type"] == "private":
            raise ControlError(400, "a private chat: use block")
        new = status or ("kicked" if removed else "member")
        if new not in (("kicked", "left") if removed else ("member", "administrator")):
            raise ControlError(400, f"bad status {new!r} for removed={removed}")
        old = self._status(chat_id, self.bot_id)
        if (old in ("kicked", "left")) == removed:
            return  # already out (or already in): Telegram sends nothing
        self._members[chat_id, self.bot_id] = new
        if by is None:
            by = next((uid for (cid, uid), s in self._members.items() if cid == chat_id and s == "creator"), None)
        user = dict(_ANONYMOUS_ADMIN) if by is None else self._user_or_stub(int(by))
        self._queue_bot_member_change(chat, user, old, new)

    def _queue_bot_member_change(self, chat: JSON, user: JSON, old: str, new: str) -> None:
        change = {
            "chat": chat,
            "from": user,
            "date": int(time.time()),
            "old_chat_member": self._chat_member(old, self.bot_user),
            "new_chat_member": self._chat_member(new, self.bot_user),
        }
        self._queue_update({"my_chat_member": change})

    def migrate(self, chat_id: int, to_chat_id: int) -> JSON:
        """Upgrade a group to a supergroup with a new id; the old id then answers 'migrate_to_chat_id'."""
        chat_id, to_chat_id = int(chat_id), int(to_chat_id)
        chat = self._chats.get(chat_id)
        if chat is None:
            raise ControlError(404, f"chat {chat_id} not found")
        self._chats[to_chat_id] = {**chat, "id": to_chat_id, "type": "supergroup"}
        self._migrated[chat_id] = to_chat_id
        for (cid, uid), status in list(self._members.items()):
            if cid == chat_id:
                self._members[to_chat_id, uid] = status
        return self._chats[to_chat_id]

    def add_faults(self, rules: list[JSON]) -> list[JSON]:
        """Append fault rules: ``{"method", "chat_id", "count" (<=0: forever), effect...}``."""
        for raw in rules:
            effect = dict(raw.get("effect") or {k: v for k, v in raw.items() if k in _EFFECT_KEYS})
            if not {"error_code", "drop_connection", "delay"} & effect.keys():
                raise ControlError(400, f"fault rule without an effect: {raw}")
            rule = {
                "method": raw.get("method"),
                "chat_id": raw.get("chat_id"),
                "count": int(raw.get("count", 1)),
            }
            self._faults.append({**rule, "fired": 0, "effect": effect})
        return self.faults()

    def clear_faults(self) -> None:
        self._faults.clear()

    def faults(self) -> list[JSON]:
        return copy.deepcopy(self._faults)

    def set_limits(self, **changes: Any) -> JSON:
        known = {f.name for f in fields(Limits)}
        if unknown := changes.keys() - known:
            raise ControlError(400, f"unknown limits: {sorted(unknown)}")
        for key, value in changes.items():
            setattr(self.limits, key, value)
        return asdict(self.limits)

    def messages(self, chat_id: int, include_deleted: bool = False) -> list[JSON]:
        """All messages of a chat (user and bot), in order, in their current state."""
        out = []
        for message_id, message in sorted(self._messages.get(int(chat_id), {}).items()):
            deleted = (int(chat_id), message_id) in self._deleted
            if include_deleted or not deleted:
                out.append({**copy.deepcopy(message), **({"deleted": True} if deleted else {})})
        return out

    def chat(self, chat_id: int) -> JSON:
        chat = self._chats.get(int(chat_id))
        if chat is None:
            raise ControlError(404, f"chat {chat_id} not found")
        return {
            "chat": chat,
            "reply_keyboard": self._keyboards.get(int(chat_id)),
            "migrated_to": self._migrated.get(int(chat_id)),
            "blocked": int(chat_id) in self._blocked,
        }

    def calls(self, since: int = 0, method: str | None = None) -> list[JSON]:
        return [
            copy.deepcopy(call)
            for call in self._calls
            if call["seq"] > since and (method is None or call["method"].lower() == method.lower())
        ]

    def callback_answer(self, callback_query_id: str) -> JSON | None:
        query = self._callbacks.get(callback_query_id)
        return None if query is None else query["answer"]

    def commands(self) -> list[JSON]:
        return copy.deepcopy(list(self._commands.values()))

    def file(self, file_id: str) -> StoredFile | None:
        return self._files.get(file_id)

    def pending_updates(self) -> list[JSON]:
        return copy.deepcopy(self._updates)

    def pending_count(self) -> int:
        """Updates still waiting for delivery/confirmation (those the bot did not ask for don't count)."""
        return sum(map(self._wanted, self._updates))

    def state(self) -> JSON:
        return {
            "bot": self.bot_user,
            "pending_updates": len(self._updates),
            "confirmed_offset": self._confirmed,
            "next_update_id": self._next_update_id,
            "webhook": self._get_webhook_info(Params()),
            "chats": len(self._chats),
            "messages": sum(len(chat) for chat in self._messages.values()),
            "calls": self._call_seq,
            "polls": self._poll_generation,  # getUpdates requests started (a call is logged when it returns)
            "faults": len(self._faults),
            "event_seq": self.bus.seq,
            "limits": asdict(self.limits),
        }

    async def wait_bot_messages(
        self,
        chat_id: int | None,
        *,
        since: int | None = None,
        after_message_id: int | None = None,
        timeout: float = 5.0,
    ) -> JSON:
        """Long-poll for bot messages/edits in a chat after event ``since`` (default: now).

        With ``after_message_id`` (and no ``since``) bot messages newer than it that already exist
        are returned at once. Returns ``{"messages", "events", "last_seq"}``.
        """
        if chat_id is None:
            raise ControlError(400, "chat_id is required")
        if since is None:
            since = self.bus.seq
            if after_message_id is not None:
                newer = [
                    m
                    for m in self.messages(chat_id)
                    if m["message_id"] > after_message_id and m.get("from", {}).get("is_bot")
                ]
                if newer:
                    return {"messages": newer, "events": [], "last_seq": since}
        deadline = time.monotonic() + timeout
        while True:
            events = self.bus.since(since)
            since = events[-1]["seq"] if events else since
            found = [
                e
                for e in events
                if e["type"] in ("message", "edit") and e["chat_id"] == chat_id and e["from_bot"]
            ]
            remaining = deadline - time.monotonic()
            if found or remaining <= 0 or self._closed:
                return {"messages": [e["message"] for e in found], "events": found, "last_seq": since}
            await self.bus.signal.wait(remaining)

    # ------------------------------------------------------------------ HTTP layer

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[_control_errors])
        app.on_shutdown.append(self._on_shutdown)
        app.on_cleanup.append(self._on_cleanup)
        router = app.router
        router.add_route("*", "/bot{token}/{method}", self._http_api)
        router.add_get("/file/bot{token}/{path:.+}", self._http_file)
        router.add_get("/", self._http_index)
        router.add_get("/static/{path:.+}", self._http_static)
        posts: dict[str, Callable[..., Any]] = {
            "reset": self.reset,
            "message": self.inject_message,
            "callback": self.inject_callback,
            "press": self.press,
            "chats": self.create_chat,
            "users": self.add_user,
            "members": self.set_member,
            "block": self.block,
            "remove_bot": self.remove_bot,
            "migrate": self.migrate,
            "faults": self.add_faults,
            "limits": self.set_limits,
        }
        for name, fn in posts.items():
            router.add_post(f"/control/{name}", self._json_endpoint(fn))
        router.add_post("/control/update", self._json_endpoint(self.inject_update, whole_body=True))
        router.add_delete("/control/faults", self._json_endpoint(self.clear_faults))
        gets: dict[str, Callable[[web.Request], Any]] = {
            "calls": lambda r: {
                "calls": self.calls(_query(r, "since", int, 0), r.query.get("method")),
                "last_seq": self._call_seq,
            },
            "chats/{chat_id}/messages": lambda r: self.messages(
                _path_int(r, "chat_id"), _query(r, "include_deleted", _truthy, False)
            ),
            "chats/{chat_id}": lambda r: self.chat(_path_int(r, "chat_id")),
            "callback_answers/{query_id}": self._http_callback_answer,
            "faults": lambda r: self.faults(),
            "limits": lambda r: asdict(self.limits),
            "commands": lambda r: self.commands(),
            "updates": lambda r: self.pending_updates(),
            "state": lambda r: self.state(),
            "wait": lambda r: self.wait_bot_messages(
                _query(r, "chat_id"),
                since=_query(r, "since"),
                after_message_id=_query(r, "after_message_id"),
                timeout=min(_query(r, "timeout", float, 5.0), 60.0),
            ),
        }
        for path, getter in gets.items():
            router.add_get(f"/control/{path}", self._get_endpoint(getter))
        router.add_get("/control/files/{file_id}", self._http_control_file)
        router.add_get("/control/events", self._http_events)
        return app

    def _json_endpoint(self, fn: Callable[..., Any], *, whole_body: bool = False) -> Callable[..., Any]:
        async def handler(request: web.Request) -> web.Response:
            try:
                body = json.loads(await request.text() or "{}")
            except ValueError:
                raise ControlError(400, "invalid JSON body") from None
            if whole_body:
                result = fn(body)
            else:
                if not isinstance(body, dict):
                    raise ControlError(400, "a JSON object is expected")
                try:
                    inspect.signature(fn).bind(**body)
                except TypeError as exc:
                    raise ControlError(400, str(exc)) from None
                result = fn(**body)
            if inspect.isawaitable(result):
                result = await result
            return web.json_response({"ok": True} if result is None else result)

        return handler

    @staticmethod
    def _get_endpoint(getter: Callable[[web.Request], Any]) -> Callable[..., Any]:
        async def handler(request: web.Request) -> web.StreamResponse:
            result = getter(request)
            if inspect.isawaitable(result):
                result = await result
            return result if isinstance(result, web.StreamResponse) else web.json_response(result)

        return handler

    async def _http_api(self, request: web.Request) -> web.StreamResponse:
        token, method = request.match_info["token"], request.match_info["method"]
        try:
            params = await _read_request_params(request)
        except ApiError as exc:
            self._record(method, {}, exc.code, exc.body(), None, time.time())
            return web.json_response(exc.body(), status=exc.code)
        try:
            status, body = await self.call_api(method, params, token=token)
        except _DropConnection:
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)
        return web.json_response(body, status=status)

    async def _http_file(self, request: web.Request) -> web.StreamResponse:
        if _TOKEN_RE.fullmatch(request.match_info["token"]) is None:
            return web.json_response(ApiError(401, "Unauthorized").body(), status=401)
        stored = self._files_by_path.get(request.match_info["path"])
        if stored is None:
            return web.json_response(ApiError(404, "Not Found").body(), status=404)
        return web.Response(body=stored.data, content_type=stored.mime_type)

    async def _http_control_file(self, request: web.Request) -> web.StreamResponse:
        stored = self._files.get(request.match_info["file_id"])
        if stored is None:
            raise ControlError(404, "file not found")
        return web.Response(body=stored.data, content_type=stored.mime_type)

    def _http_callback_answer(self, request: web.Request) -> JSON:
        answer = self.callback_answer(request.match_info["query_id"])
        if answer is None:
            raise ControlError(404, "callback query not answered (or unknown)")
        return answer

    async def _http_index(self, request: web.Request) -> web.StreamResponse:
        if self._page_dir is not None:
            return self._page_file(self._page_dir / self._page_index)
        return web.json_response({"emulator": "telegram-bot-api", "base_url": self.base_url, **self.state()})

    async def _http_static(self, request: web.Request) -> web.StreamResponse:
        if self._page_dir is None:
            raise web.HTTPNotFound()
        path = (self._page_dir / request.match_info["path"]).resolve()
        if not path.is_relative_to(self._page_dir) or not path.is_file():
            raise web.HTTPNotFound()
        return self._page_file(path)

    @staticmethod
    def _page_file(path: Path) -> web.StreamResponse:
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    async def _http_events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: one JSON ``data:`` line per bus event (``?since=`` / Last-Event-ID resume)."""
        since = _query(request, "since", int, None)
        if since is None:
            since = int(request.headers.get("Last-Event-ID") or self.bus.seq)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        with contextlib.suppress(ConnectionResetError):
            await response.write(b": connected\n\n")
            while not self._closed:
                events = self.bus.since(since)
                if not events:
                    await self.bus.signal.wait(15.0)
                    if not self.bus.since(since) and not self._closed:
                        await response.write(b": ping\n\n")
                    continue
                await response.write("".join(  # one write for all that is new, not one each
                    f"id: {event['seq']}\ndata: {json.dumps(event)}\n\n" for event in events).encode())
                since = events[-1]["seq"]
        return response


def _truthy(value: str) -> bool:
    return value.lower() in ("1", "true", "yes")


def _media_handler(emulator: Emulator, p: Params, *, kind: str) -> JSON:
    return emulator._send_media(p, kind)


for _name, _kind in _MEDIA_METHODS.items():
    _API[_name.lower()] = (_name, functools.partial(_media_handler, kind=_kind))


@asynccontextmanager
async def run_emulator(host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> AsyncIterator[Emulator]:
    """Start an :class:`Emulator` on ``host:port`` (0 = free port); yields it with ``base_url`` set."""
    emulator = Emulator(**kwargs)
    await emulator.start(host, port)
    try:
        yield emulator
    finally:
        await emulator.stop()
