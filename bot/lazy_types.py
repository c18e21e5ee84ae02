"""Build aiogram's pydantic models when they are first used, not all ~480 at import.

`aiogram.types` ends with a loop that calls `model_rebuild()` on every Bot API type, and every method
class in `aiogram.methods` is built as it is defined: each gets a validator and a serializer holding its
own copy of the nested types it refers to. That is about 145 MB of RSS and 1.5-2 s of start-up, while
the bot uses a few dozen of them (`Update` and what it holds, the methods it calls, their answers).

`install()`, called before aiogram is imported (from `bot/__init__.py`):
- turns the types' loop into what it is for - making forward references resolvable - and leaves the
  build to pydantic's own deferred path (the types are declared `defer_build=True`; the first
  validation, construction or dump of a type builds it). The names the loop would pass are put into
  each `aiogram.types.*` module's globals where missing (the modules import them under `TYPE_CHECKING`
  only), because pydantic resolves a nested type's string annotations in the module it comes from;
- gives `TelegramMethod` `defer_build=True` right after `aiogram.methods.base` has run, before the
  method classes are defined.

`tests/test_lazy_types.py` proves that every type and method still builds, and that each one's JSON
schema (and its response's) is the same as when built eagerly. `LEADBOT_EAGER_TYPES=1` switches it off.
The figures are in the README's performance section.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import types
from typing import Any

_installed = False


def install() -> bool:
    """Make aiogram's type builds lazy; False when it cannot (aiogram already imported, or switched off)."""
    global _installed
    if _installed:
        return True
    if os.environ.get("LEADBOT_EAGER_TYPES", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    if "aiogram.types" in sys.modules:  # its models are built already; nothing left to save
        return False
    from pydantic import BaseModel

    eager = BaseModel.model_rebuild.__func__  # type: ignore[attr-defined]

    def model_rebuild(
        cls: type[BaseModel],
        *,
        force: bool = False,
        raise_errors: bool = True,
        _parent_namespace_depth: int = 2,
        _types_namespace: Any = None,
    ) -> bool | None:
        if (
            _types_namespace is not None
            and not force
            and cls.__module__.startswith("aiogram.types.")
            and not cls.__pydantic_complete__
        ):
            module = sys.modules.get(cls.__module__)
            if module is not None:
                for name, value in _types_namespace.items():
                    module.__dict__.setdefault(name, value)
            return None  # built by pydantic on first use, with the names above in reach
        if cls.__module__.startswith("aiogram.") and _types_namespace is None and not force:
            # pydantic's deferred build (first use) asks for the namespace of a caller five frames up,
            # which may not exist; aiogram's names are in its modules' globals (above)
            _parent_namespace_depth = 0
        else:
            _parent_namespace_depth += 1  # this wrapper is one frame more
        return eager(
            cls,
            force=force,
            raise_errors=raise_errors,
            _parent_namespace_depth=_parent_namespace_depth,
            _types_namespace=_types_namespace,
        )

    BaseModel.model_rebuild = classmethod(model_rebuild)  # type: ignore[method-assign,assignment]
    sys.meta_path.insert(0, _DeferMethods())
    _installed = True
    return True


class _DeferMethods(importlib.abc.MetaPathFinder):
    """Once `aiogram.methods.base` has run, its `TelegramMethod` gets `defer_build=True`, before the
    ~190 method classes subclass it (each would otherwise build a validator with its nested types at
    import). Removes itself after that one module."""

    TARGET = "aiogram.methods.base"

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.TARGET:
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        run = loader.exec_module

        def exec_module(module: types.ModuleType) -> None:
            run(module)
            module.TelegramMethod.model_config["defer_build"] = True

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec
