"""leadbot: the bot's wiring, settings, database, storage, delivery and entry point."""
from bot.lazy_types import install as _lazy_types

_lazy_types()  # before anything imports aiogram: see bot/lazy_types.py
