PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install sandbox run test test-fast bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

# the bot alone (what `make sandbox` and `make run` need)
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -e .
	touch $@

# plus the test tools
$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -e '.[dev]'
	touch $@

install: $(VENV)/.installed-dev

## The bot on its embedded defaults (SQLite), with the Bot API emulator and the browser sandbox.
sandbox: $(VENV)/.installed
	$(BIN)/python -m bot.sandbox

## The bot against Telegram (BOT_TOKEN in .env or the environment).
run: $(VENV)/.installed
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
