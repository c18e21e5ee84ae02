"""End to end in webhook mode: the emulator POSTs updates (with the secret header) to the bot's own
aiohttp server, which answers only after the handler has committed."""
from __future__ import annotations

import signal
import socket

import pytest

from tests.conftest import user
from tests.e2e.test_bot_process import Prospect, wait_for

pytestmark = pytest.mark.e2e
DORA = user(4001, "Dora", "en")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_the_bot_serves_a_dialogue_over_a_webhook(emulator, client, bot_process):
    port = free_port()
    process = bot_process(webhook_url=f"http://127.0.0.1:{port}", webhook_host="127.0.0.1",
                          webhook_port=port, webhook_secret="s3cret-token")
    await wait_for(lambda: emulator.state()["webhook"].get("url", "") != "" or process.proc.poll() is not None,
                   timeout=60)
    assert process.proc.poll() is None, process.output()
    info = emulator.state()["webhook"]
    assert info["url"] == f"http://127.0.0.1:{port}/telegram/webhook"
    assert not emulator.calls(method="getUpdates"), "no polling while a webhook is set"
    dora = Prospect(client, DORA, emulator)
    first = await dora.command("/start", "webinar")
    assert "Do you agree" in first["text"]
    assert "name" in (await dora.press("I agree"))["text"]
    assert await process.kill(signal.SIGTERM) == 0
