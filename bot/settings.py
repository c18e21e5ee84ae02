"""Typed settings, read from the environment or `.env` (see `.env.example`)."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.db.engine import POOL_SIZE
from funnel.model import DEFAULT_FUNNEL_PATH

TOKEN_RE = re.compile(r"^\d{3,20}:[A-Za-z0-9_-]{30,}$")
IdList = Annotated[list[int], NoDecode]


def parse_id_list(value: object) -> list[int]:
    """Accept `111,222`, `[111, 222]`, a single id, an empty string or a list."""
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text.startswith("["):
            value = json.loads(text)
        else:
            value = [part for part in re.split(r"[,\s;]+", text) if part]
    if isinstance(value, list | tuple | set):
        return [int(item) for item in value]
    raise ValueError("expected a list of numeric ids such as 111,222 or [111, 222]")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Telegram
    bot_token: SecretStr
    telegram_api_url: str = "https://api.telegram.org"
    webhook_url: str | None = None  # when set, the bot runs a webhook server instead of long polling
    webhook_secret: SecretStr | None = None
    webhook_host: str = "0.0.0.0"
    webhook_port: int = 8080
    webhook_path: str = "/telegram/webhook"

    # Storage
    database_url: str = "sqlite+aiosqlite:///data/leadbot.db"
    # PostgreSQL: connections kept open (an update holds one from its first read to its commit); none is
    # opened beyond them, updates wait their turn instead
    database_pool_size: int = Field(default=POOL_SIZE, ge=1, le=500)
    redis_url: str | None = None  # conversation state shared across replicas

    # People and places
    staff_chat_id: int | None = None
    admin_ids: IdList = Field(default_factory=list)
    manager_ids: IdList = Field(default_factory=list)

    # Funnel, language, time
    funnel_file: Path = DEFAULT_FUNNEL_PATH
    default_locale: str = "en"
    timezone: str = "UTC"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    # Behaviour
    delivery_worker: bool = True  # with several replicas, exactly one should send the outbox
    digest: Literal["off", "daily", "weekly"] = "daily"
    digest_hour: int = Field(default=9, ge=0, le=23)
    flood_messages: int = Field(default=8, ge=1)  # more than this many messages ...
    flood_window_seconds: float = Field(default=4.0, gt=0)  # ... within this window is a flood
    flood_mute_seconds: float = Field(default=15.0, ge=0)
    member_cache_seconds: float = Field(default=60.0, ge=0)
    outbox_group_per_minute: int = Field(default=20, ge=1)
    outbox_chat_per_second: float = Field(default=1.0, gt=0)
    outbox_global_per_second: float = Field(default=30.0, gt=0)
    polling_timeout: int = Field(default=25, ge=0)
    max_concurrent_updates: int = Field(default=64, ge=1)

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        if not TOKEN_RE.match(value.get_secret_value().strip()):
            raise ValueError("malformed bot token: expected '<digits>:<at least 30 letters, digits, _ or ->'")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("admin_ids", "manager_ids", mode="before")
    @classmethod
    def _ids(cls, value: object) -> list[int]:
        return parse_id_list(value)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("telegram_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def describe_error(exc: ValidationError) -> str:
    """One line naming the first bad variable, e.g. `BOT_TOKEN: field required`."""
    err = exc.errors()[0]
    name = str(err["loc"][0]).upper() if err.get("loc") else "settings"
    message = err.get("msg", "invalid value")
    if err.get("type") == "missing":
        message = "is required but not set (put it in the environment or .env)"
    return f"configuration error: {name}: {message}"
