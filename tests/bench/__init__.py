"""`make bench` / `python -m tests.bench`: throughput, latency, memory and growth of the bot, side by side
with a bare aiogram echo bot, against the project's Bot API emulator over real HTTP.

A benchmark is not a test: nothing here is collected by pytest (no file is named test_*.py) and nothing in
the test suite depends on timing. See `tests/bench/__main__.py` for the options and the README's performance
section for the figures (the last full run is kept in `tests/bench/results.json`).
"""
