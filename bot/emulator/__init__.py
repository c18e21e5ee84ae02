"""The project's own Telegram Bot API emulator (real HTTP, aiohttp) and its test client."""

from bot.emulator.server import ApiError, ControlError, Emulator, Limits, run_emulator

__all__ = ["ApiError", "ControlError", "Emulator", "Limits", "run_emulator"]
