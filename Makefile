PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install sandbox run test test-fast bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[dev]'

install: $(BIN)/python

## The bot on its embedded defaults (SQLite), with the Bot API emulator and the browser sandbox.
sandbox: install
	$(BIN)/python -m bot.sandbox

## The bot against Telegram (BOT_TOKEN in .env or the environment).
run: install
	$(BIN)/python -m bot

## Every test: unit, flow, end-to-end (the real process against the emulator), browser.
test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not e2e and not browser"

bench: install
	$(BIN)/python -m tests.bench

lint: install
	$(BIN)/ruff check bot handlers funnel tests

clean:
	rm -rf $(VENV) data .pytest_cache .hypothesis
