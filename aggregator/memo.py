"""A memo keyed by object identity that lives only inside one ``with`` block.

Publishing touches the same stored item in up to four scopes (merged, its source, its
tags) and de-duplicates it several times: inside one publish its keys and fragments are
computed once. Outside a block nothing is kept, so memory stays bounded by one publish's
input however many cycles the daemon runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

__all__ = ["IdentityMemo"]

T = TypeVar("T")


class IdentityMemo:
    """``get(kind, owner, compute)`` computes once per owner object and kind inside ``scope()``."""

    def __init__(self, name: str) -> None:
        self._memo: ContextVar[dict[tuple[str, int], tuple[Any, Any]] | None] = ContextVar(name, default=None)

    @contextmanager
    def scope(self) -> Iterator[None]:
        token = self._memo.set({})
        try:
            yield
        finally:
            self._memo.reset(token)

    def get(self, kind: str, owner: object, compute: Callable[[], T]) -> T:
        """Keyed by identity (records hash deeply, identity is cheap); the memo keeps the owner
        alive and checks it, so a reused id can never return another item's value."""
        memo = self._memo.get()
        if memo is None:
            return compute()
        key = (kind, id(owner))
        entry = memo.get(key)
        if entry is not None and entry[0] is owner:
            value: T = entry[1]
            return value
        value = compute()
        memo[key] = (owner, value)
        return value

    def forget(self, kinds: tuple[str, ...]) -> None:
        """Drop the values whose kind starts with one of ``kinds`` (e.g. a format done)."""
        memo = self._memo.get()
        if memo is None:
            return
        for key in [key for key in memo if key[0].startswith(kinds)]:
            del memo[key]
