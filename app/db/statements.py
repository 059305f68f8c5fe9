"""Statements built once per process.

Building a SQLAlchemy statement (columns, comparisons, bound parameters) costs more Python
time than compiling it, which SQLAlchemy caches anyway; the statements every create runs are
therefore built once, with named bound parameters, and executed with the values of the call.
A statement is keyed by its shape (the dialect, a flag); the values never go into the key.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

_T = TypeVar("_T")
_BUILT: dict[Hashable, Any] = {}


def built(key: Hashable, build: Callable[[], _T]) -> _T:
    """The statement of ``key``, built by ``build`` the first time it is asked for."""
    found = _BUILT.get(key)
    if found is None:
        found = _BUILT[key] = build()
    return found
