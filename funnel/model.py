"""The funnel file model: pydantic models, loading and validation.

A *funnel file* (TOML) describes everything business-specific about the bot: the languages, the
prospect-facing texts, the dialogue steps with their answer options, the sales stages and the
allowed moves between them, the menu, and the scoring rules.  This module turns such a file into a
validated :class:`Funnel`; every problem is reported as a one-line :class:`FunnelError` naming the
file, the field and the problem.

Only the standard library and pydantic are used here.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

__all__ = [
    "DEFAULT_FUNNEL_PATH",
    "EXAMPLE_FUNNELS",
    "FILES_DIR",
    "QUICK_ANSWERS_SIGNAL",
    "REQUIRED_TEXTS",
    "Band",
    "Funnel",
    "FunnelError",
    "MenuItem",
    "Option",
    "Scoring",
    "Stage",
    "Step",
    "Text",
    "load_funnel",
    "parse_funnel",
    "substitute",
]

FILES_DIR: Path = Path(__file__).resolve().parent / "files"
DEFAULT_FUNNEL_PATH: Path = FILES_DIR / "default.toml"
EXAMPLE_FUNNELS: dict[str, Path] = {
    "default": DEFAULT_FUNNEL_PATH,
    "b2c_aida": FILES_DIR / "b2c_aida.toml",
    "b2b": FILES_DIR / "b2b.toml",
}

#: Texts every funnel file must define (in every locale).
REQUIRED_TEXTS: tuple[str, ...] = (
    "greeting",
    "privacy",
    "consent_declined",
    "thanks",
    "returning",
    "summary_title",
    "menu_title",
)

#: Signal recorded automatically when the whole dialogue was finished quickly.
QUICK_ANSWERS_SIGNAL = "quick_answers"

#: locale -> text; must contain every locale listed in ``Funnel.locales``.
Text = dict[str, str]

_KEY_RE = re.compile(r"[a-z0-9_]{1,32}")
_PLACEHOLDER_RE = re.compile(r"\{\s*\$([A-Za-z_][A-Za-z0-9_-]*)\s*\}")


class FunnelError(ValueError):
    """A funnel file cannot be used.  ``str(e)`` is one line: file, field path, problem."""

    def __init__(self, source: str, where: str = "", problem: str | None = None) -> None:
        if problem is None:  # FunnelError("a ready message")
            self.source, self.where, self.problem = "", "", " ".join(str(source).split())
            super().__init__(self.problem)
            return
        self.source = source
        self.where = where
        self.problem = " ".join(str(problem).split())
        prefix = f"funnel file {source}: "
        message = f"{prefix}{where}: {self.problem}" if where else f"{prefix}{self.problem}"
        super().__init__(message)


class _Problem(ValueError):
    """Raised inside validation with an already readable field path; becomes a FunnelError."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}")


def _check_key(value: str) -> str:
    if not _KEY_RE.fullmatch(value):
        raise ValueError(f"must be 1-32 characters of a-z, 0-9 and _ (got {value!r})")
    return value


Key = Annotated[str, AfterValidator(_check_key)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Option(_Model):
    """One answer of a choice question (also used for lost reasons)."""

    key: Key
    label: Text
    fit: int = 0  # points added to the fit score when this answer is chosen
    intent: int = 0  # points added to the intent score when this answer is chosen


StepKind = Literal["consent", "name", "phone", "email", "choice", "text"]


class Step(_Model):
    """One dialogue step (a question)."""

    key: Key
    kind: StepKind
    prompt: Text
    title: Text
    optional: bool = False
    options: list[Option] = Field(default_factory=list)
    max_length: int = 1000
    show_if: dict[str, list[str]] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _name_max_length(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("kind") == "name" and "max_length" not in data:
            data = {**data, "max_length": 100}
        return data

    @field_validator("max_length")
    @classmethod
    def _positive_length(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"must be at least 1 (got {v})")
        return v

    def option(self, key: str) -> Option | None:
        for option in self.options:
            if option.key == key:
                return option
        return None


class Stage(_Model):
    """One sales-funnel stage."""

    key: Key
    title: Text
    probability: int
    sla_hours: float | None = None
    to: list[str] = Field(default_factory=list)
    terminal: bool = False
    outcome: Literal["won", "lost"] | None = None
    active: bool = True
    playbook: Text | None = None
    notify_prospect: Text | None = None

    @field_validator("probability")
    @classmethod
    def _probability_range(cls, v: int) -> int:
        if not 0 <= v <= 100:
            raise ValueError(f"must be between 0 and 100 (got {v})")
        return v

    @field_validator("sla_hours")
    @classmethod
    def _sla_positive(cls, v: float | None) -> float | None:
        if v is not None and v <= 0:
            raise ValueError(f"must be a positive number of hours (got {v:g})")
        return v


MenuAction = Literal["price_list", "book_demo", "ask_question", "manager", "link"]


class MenuItem(_Model):
    """One entry of the prospect menu."""

    key: Key
    label: Text
    action: MenuAction
    signal: Key | None = None
    document: Path | None = None
    reply: Text | None = None
    url: str | None = None


class Band(_Model):
    """A score band (e.g. cold / warm / hot): applies from ``min_score`` up to the next band."""

    key: Key
    title: Text
    min_score: int


class Scoring(_Model):
    """Scoring rules.  Contact/source points count to *fit*, signals to *intent*."""

    phone_verified: int
    phone_unverified: int
    email: int
    sources: dict[str, int] = Field(default_factory=dict)
    signals: dict[str, int] = Field(default_factory=dict)
    quick_answer_seconds: int = 120
    fit_weight: float = 1.0
    intent_weight: float = 1.0
    bands: list[Band]
    threshold: int

    @field_validator("fit_weight", "intent_weight")
    @classmethod
    def _weight(cls, v: float) -> float:
        if v < 0:
            raise ValueError(f"must not be negative (got {v})")
        return v

    @field_validator("quick_answer_seconds")
    @classmethod
    def _seconds(cls, v: int) -> int:
        if v < 0:
            raise ValueError(f"must not be negative (got {v})")
        return v

    def band(self, total: float) -> Band:
        """The highest band whose ``min_score`` is <= ``total`` (the first band below 0)."""
        chosen = self.bands[0]
        for band in self.bands:
            if band.min_score <= total:
                chosen = band
        return chosen


class Funnel(_Model):
    """A complete, validated funnel."""

    name: str
    description: Text | None = None
    locales: list[str]
    default_locale: str
    texts: dict[str, Text]
    steps: list[Step]
    stages: list[Stage]
    initial_stage: str
    qualified_stage: str
    nurture_stage: str
    lost_reasons: list[Option] = Field(default_factory=list)
    menu: list[MenuItem] = Field(default_factory=list)
    signal_moves: dict[str, str] = Field(default_factory=dict)
    scoring: Scoring

    @model_validator(mode="after")
    def _validate_funnel(self, info: ValidationInfo) -> Funnel:
        context = info.context if isinstance(info.context, Mapping) else {}
        base_dir = context.get("base_dir")
        _check_funnel(self, Path(base_dir) if base_dir is not None else FILES_DIR)
        return self

    # ------------------------------------------------------------------ lookups

    def step(self, key: str) -> Step:
        for step in self.steps:
            if step.key == key:
                return step
        raise KeyError(f"unknown step {key!r}")

    def has_step(self, key: str) -> bool:
        return any(step.key == key for step in self.steps)

    def step_of_kind(self, kind: str) -> Step | None:
        """The first step of the given kind (e.g. ``"phone"``), or None."""
        for step in self.steps:
            if step.kind == kind:
                return step
        return None

    def stage(self, key: str) -> Stage:
        for stage in self.stages:
            if stage.key == key:
                return stage
        raise KeyError(f"unknown stage {key!r}")

    def has_stage(self, key: str) -> bool:
        return any(stage.key == key for stage in self.stages)

    def stage_index(self, key: str) -> int:
        for index, stage in enumerate(self.stages):
            if stage.key == key:
                return index
        raise KeyError(f"unknown stage {key!r}")

    def menu_item(self, key: str) -> MenuItem:
        for item in self.menu:
            if item.key == key:
                return item
        raise KeyError(f"unknown menu item {key!r}")

    def lost_reason(self, key: str) -> Option | None:
        for reason in self.lost_reasons:
            if reason.key == key:
                return reason
        return None

    @property
    def won_stage(self) -> Stage | None:
        """The first stage with outcome "won" (where a manager closes a deal)."""
        return next((s for s in self.stages if s.outcome == "won"), None)

    @property
    def lost_stage(self) -> Stage | None:
        """The first stage with outcome "lost"."""
        return next((s for s in self.stages if s.outcome == "lost"), None)

    @property
    def known_signals(self) -> frozenset[str]:
        """Signals that can occur: those recorded by menu items plus ``quick_answers``."""
        return frozenset({QUICK_ANSWERS_SIGNAL} | {m.signal for m in self.menu if m.signal})

    # ------------------------------------------------------------------ texts

    def _locale_chain(self, locale: str | None) -> list[str]:
        chain: list[str] = []
        if locale:
            chain.append(locale)
            base = locale.replace("_", "-").split("-")[0].lower()
            chain.append(base)
        chain.append(self.default_locale)
        return chain

    def label(self, text: Text | None, locale: str | None) -> str:
        """Pick ``locale`` from a Text, falling back to the base language and the default locale."""
        if not text:
            return ""
        for candidate in self._locale_chain(locale):
            if candidate in text:
                return text[candidate]
        return next(iter(text.values()))

    def text(self, key: str, locale: str | None, **kw: Any) -> str:
        """A funnel text in ``locale`` with ``{ $name }`` placeholders replaced from ``kw``.

        Placeholders without a matching keyword are left untouched.  Unknown keys raise KeyError.
        """
        if key not in self.texts:
            raise KeyError(f"unknown text {key!r}")
        return substitute(self.label(self.texts[key], locale), **kw)

    def resolve_locale(self, locale: str | None) -> str:
        """The supported locale used for ``locale`` (e.g. ``"uk-UA"`` -> ``"uk"``, ``"de"`` -> default)."""
        for candidate in self._locale_chain(locale):
            if candidate in self.locales:
                return candidate
        return self.default_locale


def substitute(template: str, **kw: Any) -> str:
    """Replace ``{ $name }`` placeholders with keyword values; unknown placeholders stay as they are."""

    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        return str(kw[name]) if name in kw else match.group(0)

    return _PLACEHOLDER_RE.sub(repl, template)


# ---------------------------------------------------------------------------- validation


def _at(section: str, key: str, field: str | None = None) -> str:
    where = f"{section} '{key}'"
    return f"{where} .{field}" if field else where


def _iter_texts(f: Funnel) -> Iterator[tuple[str, Text | None]]:
    yield "description", f.description
    for key, text in f.texts.items():
        yield f"texts.{key}", text
    for step in f.steps:
        yield _at("steps", step.key, "title"), step.title
        yield _at("steps", step.key, "prompt"), step.prompt
        for option in step.options:
            yield _at("steps", step.key, f"options '{option.key}' .label"), option.label
    for stage in f.stages:
        yield _at("stages", stage.key, "title"), stage.title
        yield _at("stages", stage.key, "playbook"), stage.playbook
        yield _at("stages", stage.key, "notify_prospect"), stage.notify_prospect
    for reason in f.lost_reasons:
        yield _at("lost_reasons", reason.key, "label"), reason.label
    for item in f.menu:
        yield _at("menu", item.key, "label"), item.label
        yield _at("menu", item.key, "reply"), item.reply
    for band in f.scoring.bands:
        yield _at("scoring.bands", band.key, "title"), band.title


def _check_unique(section: str, keys: list[str]) -> None:
    seen: dict[str, int] = {}
    for index, key in enumerate(keys):
        if key in seen:
            raise _Problem(
                f"{section}[{index}] '{key}' .key",
                f"duplicate key (already used by {section}[{seen[key]}])",
            )
        seen[key] = index


def _check_funnel(f: Funnel, base_dir: Path) -> None:
    # --- languages
    if not f.locales:
        raise _Problem("locales", "at least one locale is required")
    _check_unique_plain("locales", f.locales)
    if f.default_locale not in f.locales:
        raise _Problem("default_locale", f"{f.default_locale!r} is not one of locales {f.locales}")

    # --- required texts, then every translation
    for key in REQUIRED_TEXTS:
        if key not in f.texts:
            raise _Problem(f"texts.{key}", "required text is missing")
    for where, text in _iter_texts(f):
        if text is None:
            continue
        for locale in f.locales:
            if locale not in text:
                raise _Problem(where, f"missing translation for {locale!r}")
            if not text[locale].strip():
                raise _Problem(where, f"empty translation for {locale!r}")
        for locale in text:
            if locale not in f.locales:
                raise _Problem(where, f"unknown locale {locale!r} (locales are {f.locales})")

    # --- unique keys
    _check_unique("steps", [s.key for s in f.steps])
    for step in f.steps:
        _check_unique(_at("steps", step.key, "options"), [o.key for o in step.options])
    _check_unique("stages", [s.key for s in f.stages])
    _check_unique("lost_reasons", [r.key for r in f.lost_reasons])
    _check_unique("menu", [m.key for m in f.menu])
    _check_unique("scoring.bands", [b.key for b in f.scoring.bands])

    _check_steps(f)
    _check_stages(f)

    # --- menu
    for item in f.menu:
        if item.action == "price_list" and item.document is None:
            raise _Problem(_at("menu", item.key, "document"), "a price_list item needs a document")
        if item.document is not None:
            path = item.document if item.document.is_absolute() else base_dir / item.document
            if not path.is_file():
                raise _Problem(_at("menu", item.key, "document"), f"file not found: {path}")
            item.document = path.resolve()
        if item.action == "link" and not item.url:
            raise _Problem(_at("menu", item.key, "url"), "a link item needs a url")
        if item.url is not None and not re.match(r"(https?|tg)://", item.url):
            raise _Problem(
                _at("menu", item.key, "url"), f"must start with https://, http:// or tg:// (got {item.url!r})"
            )

    # --- signals
    signals = f.known_signals
    for signal, stage_key in f.signal_moves.items():
        if signal not in signals:
            raise _Problem(
                f"signal_moves.{signal}", f"unknown signal {signal!r} (known: {', '.join(sorted(signals))})"
            )
        if not f.has_stage(stage_key):
            raise _Problem(f"signal_moves.{signal}", f"unknown stage {stage_key!r}")

    _check_scoring(f, signals)


def _check_unique_plain(where: str, values: list[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise _Problem(where, f"duplicate value {value!r}")
        seen.add(value)


def _check_steps(f: Funnel) -> None:
    if not f.steps:
        raise _Problem("steps", "at least one step is required")
    if f.steps[0].kind != "consent":
        raise _Problem(_at("steps", f.steps[0].key, "kind"), "the first step must be a consent step")
    counts = {kind: sum(1 for s in f.steps if s.kind == kind) for kind in ("name", "phone", "email")}
    if counts["name"] != 1:
        raise _Problem("steps", f"exactly one name step is required (found {counts['name']})")
    if counts["phone"] != 1:
        raise _Problem("steps", f"exactly one phone step is required (found {counts['phone']})")
    if counts["email"] > 1:
        raise _Problem("steps", f"at most one email step is allowed (found {counts['email']})")

    positions = {step.key: index for index, step in enumerate(f.steps)}
    for index, step in enumerate(f.steps):
        if step.kind == "consent" and index:
            raise _Problem(_at("steps", step.key, "kind"), "only the first step may be a consent step")
        if step.kind == "consent" and step.optional:
            raise _Problem(_at("steps", step.key, "optional"), "the consent step cannot be optional")
        if step.kind == "choice" and not step.options:
            raise _Problem(_at("steps", step.key, "options"), "a choice question needs at least one answer")
        if step.kind != "choice" and step.options:
            raise _Problem(_at("steps", step.key, "options"), "only choice questions have options")
        if step.show_if and step.kind in ("consent", "name", "phone"):
            raise _Problem(_at("steps", step.key, "show_if"), f"a {step.kind} step is always shown")
        for parent_key, option_keys in step.show_if.items():
            where = _at("steps", step.key, f"show_if.{parent_key}")
            if parent_key not in positions:
                raise _Problem(where, f"unknown step {parent_key!r}")
            if positions[parent_key] >= index:
                raise _Problem(where, f"step {parent_key!r} must come before {step.key!r}")
            parent = f.steps[positions[parent_key]]
            if parent.kind != "choice":
                raise _Problem(where, f"step {parent_key!r} is not a choice question")
            if not option_keys:
                raise _Problem(where, "list at least one answer")
            for option_key in option_keys:
                if parent.option(option_key) is None:
                    raise _Problem(where, f"unknown answer {option_key!r} of step {parent_key!r}")


def _check_stages(f: Funnel) -> None:
    if not f.stages:
        raise _Problem("stages", "at least one stage is required")
    by_key = {stage.key: stage for stage in f.stages}
    for stage in f.stages:
        _check_unique_plain(_at("stages", stage.key, "to"), stage.to)
        for target in stage.to:
            if target not in by_key:
                raise _Problem(_at("stages", stage.key, "to"), f"unknown stage {target!r}")
            if target == stage.key:
                raise _Problem(_at("stages", stage.key, "to"), "a stage cannot move to itself")
        if stage.terminal and stage.to:
            raise _Problem(_at("stages", stage.key, "to"), "a terminal stage cannot move anywhere")
        if stage.outcome is not None and not stage.terminal:
            # A closed stage may continue only into stages with the same outcome
            # (e.g. won "deal" -> won "post_sale_support").
            for target in stage.to:
                if by_key[target].outcome != stage.outcome:
                    raise _Problem(
                        _at("stages", stage.key, "to"),
                        f"a {stage.outcome} stage can only move to {stage.outcome} stages "
                        f"({target!r} is not)",
                    )
    for field in ("initial_stage", "qualified_stage", "nurture_stage"):
        key = getattr(f, field)
        if key not in by_key:
            raise _Problem(field, f"unknown stage {key!r}")
        if by_key[key].terminal or by_key[key].outcome is not None:
            raise _Problem(field, f"stage {key!r} is closed (terminal or has an outcome)")
    if any(s.outcome == "lost" for s in f.stages) and not f.lost_reasons:
        raise _Problem("lost_reasons", "at least one lost reason is required when a stage has outcome 'lost'")


def _check_scoring(f: Funnel, signals: frozenset[str]) -> None:
    scoring = f.scoring
    for signal in scoring.signals:
        if signal not in signals:
            raise _Problem(
                f"scoring.signals.{signal}",
                f"unknown signal {signal!r} (known: {', '.join(sorted(signals))})",
            )
    if not scoring.bands:
        raise _Problem("scoring.bands", "at least one band is required")
    first = scoring.bands[0]
    if first.min_score != 0:
        raise _Problem(
            _at("scoring.bands", first.key, "min_score"),
            f"the first band must start at 0 (got {first.min_score})",
        )
    for previous, band in zip(scoring.bands, scoring.bands[1:], strict=False):
        if band.min_score <= previous.min_score:
            raise _Problem(
                _at("scoring.bands", band.key, "min_score"),
                f"bands must be sorted ascending by min_score ({band.min_score} after {previous.min_score})",
            )


# ---------------------------------------------------------------------------- errors & loading

_SIMPLE_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "unknown field",
}


def _render_loc(loc: tuple[int | str, ...], data: Any) -> str:
    """('stages', 3, 'probability') -> "stages[3] 'proposal' .probability" (key taken from ``data``)."""
    out = ""
    node = data
    after_key = False
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            after_key = False
            if isinstance(node, Mapping) and isinstance(node.get("key"), str):
                out += f" '{node['key']}'"
                after_key = True
        else:
            sep = "" if not out else (" ." if after_key else ".")
            out += f"{sep}{part}"
            after_key = False
            node = node.get(part) if isinstance(node, Mapping) else None
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _from_validation_error(exc: ValidationError, data: Any, source: str) -> FunnelError:
    errors = exc.errors(include_url=False)
    if not errors:  # pragma: no cover - pydantic always reports at least one
        return FunnelError(source, "", str(exc))
    err = errors[0]
    ctx = err.get("ctx") or {}
    cause = ctx.get("error")
    if isinstance(cause, _Problem):
        return FunnelError(source, cause.where, cause.problem)
    where = _render_loc(tuple(err["loc"]), data)
    kind = err["type"]
    if kind in _SIMPLE_MESSAGES:
        problem = _SIMPLE_MESSAGES[kind]
    elif isinstance(cause, Exception):
        problem = str(cause)
    else:
        problem = err["msg"]
        value = err.get("input")
        if not isinstance(value, (dict, list)) and "got" not in problem:
            problem += f" (got {_short(value)})"
    return FunnelError(source, where, problem)


def parse_funnel(
    data: Mapping[str, Any], *, source: str = "<funnel>", base_dir: Path | None = None
) -> Funnel:
    """Validate an already parsed funnel file (a dict).

    ``base_dir`` is the directory relative paths (the price list document) are resolved against;
    None means the directory of the shipped funnel files.
    """
    if not isinstance(data, Mapping):
        raise FunnelError(source, "", f"expected a table at the top level (got {type(data).__name__})")
    try:
        return Funnel.model_validate(dict(data), context={"base_dir": base_dir if base_dir else FILES_DIR})
    except ValidationError as exc:
        raise _from_validation_error(exc, data, source) from None
    except _Problem as exc:  # pragma: no cover - pydantic wraps ValueErrors; kept for safety
        raise FunnelError(source, exc.where, exc.problem) from None


def load_funnel(path: str | os.PathLike[str]) -> Funnel:
    """Read and validate a funnel TOML file; every problem is raised as :class:`FunnelError`."""
    path = Path(path)
    source = path.name or str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FunnelError(source, "", f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise FunnelError(source, "", f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise FunnelError(source, "", f"invalid TOML: {exc}") from None
    return parse_funnel(data, source=source, base_dir=path.resolve().parent)
