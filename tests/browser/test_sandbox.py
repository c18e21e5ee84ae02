"""The sandbox in a real headless Chromium (Debian's, driven by Playwright; no browser download).

`python -m bot.sandbox` runs in a subprocess (the emulator, the page and the REAL bot process, on a
temporary database); the test plays a prospect through the whole dialogue on the page, works the
lead card as managers, asks the admin's figures, saves a screenshot to tests/artifacts/sandbox.png
and presses Reset.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACT = ROOT / "tests" / "artifacts" / "sandbox.png"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
START_TIMEOUT = 120.0  # the sandbox prints its address once the bot polls (imports take seconds on CI)
STEP = 20_000  # ms: one bot reply
CARD = 45_000  # ms: the card goes through the outbox, paced under the group limit


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def sandbox_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium chromium-driver)"
        )
    work = tmp_path_factory.mktemp("sandbox")
    log_path = work / "sandbox.log"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("FUNNEL_FILE", "SANDBOX_PORT", "SANDBOX_DATABASE_URL")
    }
    # the daily digest is due from DIGEST_HOUR on and is queued whenever the bot starts on an empty
    # database: left on, the admin's chat would hold one message after the reset on some hours only
    env["DIGEST"] = "off"
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "bot.sandbox",
        "--port",
        str(port),
        "--database-url",
        f"sqlite+aiosqlite:///{work}/sandbox.db",
    ]
    with log_path.open("wb") as log:
        # cwd: a temporary folder, so a developer's .env and data/ play no part
        proc = subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        url = None
        while time.monotonic() < deadline and url is None:
            if proc.poll() is not None:
                pytest.fail(
                    f"the sandbox exited with {proc.returncode}:\n{log_path.read_text(errors='replace')}"
                )
            found = re.search(r"Sandbox ready: (http://\S+)", log_path.read_text(errors="replace"))
            url = found[1] if found else None
            time.sleep(0.2)
        if url is None:
            pytest.fail(f"the sandbox did not start within {START_TIMEOUT:.0f} s:\n{log_path.read_text()}")
        assert "WARNING: the bot is not running" not in log_path.read_text(), log_path.read_text()
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        output = log_path.read_text(errors="replace")
        print(output[-8000:])  # shown by pytest when the test fails


@pytest.fixture
def page(sandbox_url: str) -> Iterator[object]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=STEP)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1680, "height": 1050}, accept_downloads=True)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(sandbox_url)
            yield page
            assert not errors, f"JavaScript errors on the page: {errors}"
        finally:
            browser.close()


class ChatPane:
    """One chat of the page, as a user sees it."""

    def __init__(self, page, pane: str) -> None:
        self.page, self.pane = page, pane
        self.root = page.locator(f"[data-testid=pane-{pane}] .chat[data-active=true]")

    def say(self, text: str) -> None:
        box = self.root.locator(f"[data-testid=input-{self.pane}]")
        box.fill(text)
        box.press("Enter")

    def bot(self, text: str):
        """The newest bot message containing `text` (waits for it)."""
        from playwright.sync_api import expect

        message = self.root.locator(".msg.bot", has_text=text).last
        expect(message).to_be_visible()
        return message

    def press(self, label: str, within=None) -> None:
        scope = within if within is not None else self.root
        button = scope.locator("[data-testid=inline-button]", has_text=label).last
        button.click()

    def answer(self, prompt: str, label: str) -> None:
        self.press(label, within=self.bot(prompt))


def test_sandbox_plays_the_whole_funnel(page) -> None:
    from playwright.sync_api import expect

    expect(page.locator("[data-testid=bot-status]")).to_have_attribute("data-state", "running")
    expect(page.locator("[data-testid=stream-state]")).to_have_attribute("data-state", "live")
    expect(page.locator("[data-testid=prospect-tab]")).to_have_count(3)

    # ---- a prospect (Anna, English) through the dialogue
    anna = ChatPane(page, "prospect")
    anna.say("/start ads_fb")
    anna.answer("Do you agree", "I agree")
    anna.bot("What's your name")
    anna.say("Anna Smith")
    anna.bot("share your phone number")
    share = anna.root.locator("[data-testid=share-contact]")
    expect(share).to_be_visible()
    share.click()  # the reply keyboard's request_contact button sends Anna's own contact
    expect(anna.root.locator(".msg.user [data-testid=contact]")).to_be_visible()
    anna.bot("Your email")
    expect(share).to_be_hidden()  # the bot removed the reply keyboard
    anna.say("anna@example.com")
    anna.answer("What are you looking for", "A product or service")
    anna.answer("What budget", "$5,000–20,000")
    anna.answer("When would you like to start", "As soon as possible")
    anna.answer("private person or on behalf of a company", "Company")
    anna.answer("How many people", "51–250")
    anna.answer("your role in the purchase decision", "I make the decision")
    anna.bot("Anything else we should know")
    hostile = 'Integrate our CRM <b>asap</b> <img src=x onerror="window.__xss=1">'
    anna.say(hostile)
    summary = anna.bot("Please check your answers")
    # the bot's HTML is formatted (entities -> elements), the prospect's own text shows literally
    expect(summary.locator("b", has_text="Name:")).to_be_visible()
    expect(summary).to_contain_text("<b>asap</b>")
    expect(anna.root.locator(".msg.user", has_text="<img src=x")).to_be_visible()
    assert page.evaluate("() => window.__xss") is None
    assert page.locator(".msg img:not([data-testid=photo])").count() == 0
    anna.press("Confirm", within=summary)
    menu = anna.bot("Thank you")
    anna.press("Price list", within=menu)  # the after-dialogue menu sends a document
    document = anna.root.locator(".msg.bot [data-testid=document]").last
    expect(document).to_be_visible()
    with page.expect_download() as download:
        document.click()
    assert Path(download.value.path()).stat().st_size > 0

    # ---- the staff group: the card, worked by the managers
    staff = ChatPane(page, "staff")
    card = staff.root.locator(".msg.bot", has_text="Lead #").first
    expect(card).to_be_visible(timeout=CARD)
    expect(card).to_contain_text("Anna Smith")
    expect(card).to_contain_text("not assigned")
    page.locator("[data-testid=act-as]").select_option(label="Maria Koval (manager)")
    staff.press("Take", within=card)
    expect(card).to_contain_text("Manager: Maria", timeout=CARD)
    expect(card.locator(".meta")).to_contain_text("edited")
    staff.press("Contacted", within=card)
    expect(card).to_contain_text("Stage: Contacted", timeout=CARD)
    anna.bot("Our manager has taken your request")  # the stage's notify_prospect text
    expect(card.locator("[data-testid=inline-button]", has_text="Take")).to_have_count(0)
    # a manager's reply to the card goes to the prospect
    card.locator("[data-testid=reply-to]").click()
    expect(staff.root.locator("[data-role=reply-bar]")).to_be_visible()
    staff.say("Hello Anna, I will call you in ten minutes.")
    expect(staff.root.locator(".msg.user", has_text="Hello Anna").locator(".quote")).to_contain_text("Lead #")
    relayed = anna.bot("I will call you in ten minutes")
    expect(relayed).to_contain_text("Maria")

    # ---- the admin's figures
    admin = ChatPane(page, "admin")
    admin.say("/stats")
    stats = admin.bot("Leads created")
    expect(stats).to_contain_text(re.compile(r"Leads created: 1\b"))
    expect(stats.locator("b").first).to_be_visible()
    admin.say("/funnel")
    chart = admin.root.locator(".msg.bot [data-testid=photo]").last
    expect(chart).to_be_visible(timeout=CARD)
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 100", arg=chart.element_handle())

    # ---- another prospect, in Ukrainian, added on the page
    page.locator("[data-testid=add-prospect]").click()
    form = page.locator("[data-testid=add-prospect-form]")
    form.locator("input[name=first_name]").fill("Petro")
    form.locator("select[name=language_code]").select_option("uk")
    form.locator("button[type=submit]").click()
    expect(page.locator("[data-testid=prospect-tab]")).to_have_count(4)
    expect(page.locator("[data-testid=prospect-tab][aria-selected=true]")).to_contain_text("Petro")
    petro = ChatPane(page, "prospect")
    petro.root.locator("[data-testid=start-button]").click()
    petro.bot("Вітаємо")

    # ---- the picture a business sees first
    page.locator("[data-testid=prospect-tab]", has_text="Anna").click()
    anna.bot("I will call you in ten minutes")
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACT), animations="disabled")
    assert ARTIFACT.stat().st_size > 10_000

    # ---- reset: everything starts clean, the bot comes back
    page.locator("[data-testid=reset]").click()
    page.locator("[data-testid=reset-confirm]").click()
    expect(page.locator("[data-testid=reset]")).to_be_enabled(timeout=120_000)
    expect(page.locator("[data-testid=bot-status]")).to_have_attribute("data-state", "running")
    expect(page.locator("[data-testid=prospect-tab]")).to_have_count(3)
    expect(page.locator(".msg")).to_have_count(0)
    anna = ChatPane(page, "prospect")
    anna.say("/start")
    anna.bot("Do you agree")  # a fresh prospect again: the database was wiped
