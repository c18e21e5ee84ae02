"""The Dockerfile (read-only checks): a slim Python base, a non-root user, a data volume, the README's
install (`pip install -e .`), `python -m bot` as the command, and every COPY source present."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, backslash continuations joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        line, pending = pending + line, ""
        if not line.strip():
            continue
        keyword, _, args = line.partition(" ")
        out.append((keyword.upper(), args.strip()))
    if pending.strip():
        keyword, _, args = pending.strip().partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def words(args: str) -> list[str]:
    """The arguments of an instruction in JSON (exec) form or shell form."""
    if args.startswith("["):
        value = json.loads(args)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value)
        return value
    return shlex.split(args)


@pytest.fixture(scope="module")
def parsed() -> list[tuple[str, str]]:
    assert DOCKERFILE.is_file(), "the Dockerfile is missing at the repository root"
    return instructions(DOCKERFILE.read_text())


def _all(parsed: list[tuple[str, str]], keyword: str) -> list[str]:
    return [args for kw, args in parsed if kw == keyword]


def test_parser_handles_continuations_and_forms() -> None:
    text = '# c\nFROM a AS b\nRUN one \\\n  # inner comment\n  && two\nCMD ["x", "y"]\n'
    assert instructions(text) == [("FROM", "a AS b"), ("RUN", "one && two"), ("CMD", '["x", "y"]')]
    assert words('["python", "-m", "bot"]') == ["python", "-m", "bot"] == words("python -m bot")


def test_slim_python_base(parsed: list[tuple[str, str]]) -> None:
    bases = _all(parsed, "FROM")
    assert bases, "no FROM"
    final = words(bases[-1])[0]  # the image that runs
    if "--platform" in final:
        final = words(bases[-1])[1]
    assert re.fullmatch(
        r"(docker\.io/)?(library/)?python:3\.(1[1-9]|[2-9]\d)[\w.-]*-slim[\w.-]*(@sha256:\w+)?", final
    ), f"the final image should be a slim Python 3.11+ base, not {final!r}"


def test_runs_as_a_non_root_user(parsed: list[tuple[str, str]]) -> None:
    users = _all(parsed, "USER")
    assert users, "no USER: the bot would run as root"
    last = users[-1].split(":")[0].strip()
    assert last not in ("root", "0"), f"the last USER is {last!r}"
    # the USER line comes after the install (which needs root) and before CMD
    order = [kw for kw, _ in parsed]
    assert max(i for i, kw in enumerate(order) if kw == "USER") < max(
        i for i, kw in enumerate(order) if kw == "CMD"
    )
    if not re.fullmatch(r"\d+", last):  # a named user must be created in the image
        created = " ".join(_all(parsed, "RUN"))
        assert re.search(rf"\b(useradd|adduser)\b[^&;]*\b{re.escape(last)}\b", created), (
            f"user {last!r} is never created"
        )


def test_data_volume(parsed: list[tuple[str, str]]) -> None:
    volumes = [v for args in _all(parsed, "VOLUME") for v in words(args)]
    assert volumes, "no VOLUME for the data (the SQLite file would live in the container layer)"
    env = " ".join(_all(parsed, "ENV"))
    database = re.search(r"DATABASE_URL=(\S+)", env)
    if database:  # the embedded database lives on the volume
        path = database[1].split(":///", 1)[-1]
        assert any(("/" + path.lstrip("/")).startswith(v.rstrip("/") + "/") for v in volumes), (
            f"DATABASE_URL {database[1]} is not on a VOLUME {volumes}"
        )


def test_install_mirrors_the_readme(parsed: list[tuple[str, str]]) -> None:
    readme = (ROOT / "README.md").read_text()
    assert "pip install -e" in readme
    runs = _all(parsed, "RUN")
    assert any(re.search(r"\bpip install (--\S+ )*-e \.(?=\s|$|&|;)", run) for run in runs), (
        f"no `pip install -e .` among the RUN lines: {runs}"
    )
    # the sources are copied before they are installed
    order = [(kw, args) for kw, args in parsed if kw in ("COPY", "RUN")]
    install = next(i for i, (kw, args) in enumerate(order) if kw == "RUN" and "pip install" in args)
    copied = " ".join(args for kw, args in order[:install] if kw == "COPY")
    for needed in ("pyproject.toml", "bot", "handlers", "funnel", "locales"):
        assert re.search(rf"(^|\s|/){needed}(\s|/|$)", copied), f"{needed} is not copied before `pip install`"


def test_cmd_runs_the_bot(parsed: list[tuple[str, str]]) -> None:
    commands = _all(parsed, "CMD")
    assert commands, "no CMD"
    assert words(commands[-1])[-3:] == ["python", "-m", "bot"] or words(commands[-1]) == ["leadbot"], (
        commands[-1]
    )
    entrypoints = _all(parsed, "ENTRYPOINT")
    assert not entrypoints, "an ENTRYPOINT would change what CMD means"


def test_every_copy_source_exists(parsed: list[tuple[str, str]]) -> None:
    for args in _all(parsed, "COPY") + _all(parsed, "ADD"):
        parts = [w for w in words(args) if not w.startswith("--")]
        if any(w.startswith("--from") for w in words(args)):
            continue  # from another build stage
        *sources, _destination = parts
        assert sources, f"COPY without a source: {args}"
        for source in sources:
            matches = list(ROOT.glob(source)) if any(c in source for c in "*?[") else [ROOT / source]
            assert matches and all(m.exists() for m in matches), f"COPY source {source!r} does not exist"
