"""Errors of external environment constructors, reported as one clear ``ValueError``.

A Gymnasium or PettingZoo env's constructor receives the scenario's ``env.kwargs`` as they are and
may reject them with any exception type (``AttributeError``, its library's own errors, ...). The
adapters turn whatever it raises into a ``ValueError`` that shows the call, so the scenario
builder reports it as a bad ``env`` section instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _call(function: str, name: str | None, kwargs: Mapping[str, Any]) -> str:
    """The call as a user would read it, e.g. ``gymnasium.make('CartPole-v1', render_mode=7)``."""
    arguments = ([repr(name)] if name is not None else []) + [f"{key}={value!r}" for key, value in kwargs.items()]
    return f"{function}({', '.join(arguments)})"


def _describe(error: BaseException) -> str:
    """``error`` as ``Type: message``; the type tells a library's own error apart from a plain bad value."""
    return f"{type(error).__name__}: {error}"


class EnvConstructionError(ValueError):
    """An external environment's constructor failed for the given id and keyword arguments."""

    def __init__(self, function: str, name: str | None, kwargs: Mapping[str, Any], error: BaseException) -> None:
        super().__init__(f"{_call(function, name, kwargs)} failed: {_describe(error)}")
