"""IdentityMemo: once per owner and kind inside a scope, nothing outside it, forgotten by kind prefix."""

from __future__ import annotations

from functools import partial

from aggregator.memo import IdentityMemo


class _Owner:
    """A plain object: the memo keys by identity, never by equality."""


def test_computes_once_per_owner_and_kind_inside_a_scope_only() -> None:
    memo = IdentityMemo("test_memo_once")
    calls: list[str] = []
    first, second = _Owner(), _Owner()

    def compute(label: str) -> str:
        calls.append(label)
        return label.upper()

    assert memo.get("rss", first, lambda: compute("a")) == "A"  # no scope: computed every time
    assert memo.get("rss", first, lambda: compute("a")) == "A"
    with memo.scope():
        assert memo.get("rss", first, lambda: compute("b")) == "B"
        assert memo.get("rss", first, lambda: compute("c")) == "B"  # kept
        assert memo.get("atom", first, lambda: compute("d")) == "D"  # another kind
        assert memo.get("rss", second, lambda: compute("e")) == "E"  # another owner
    with memo.scope():
        assert memo.get("rss", first, lambda: compute("f")) == "F"  # a new scope starts empty

    assert calls == ["a", "a", "b", "d", "e", "f"]


def test_forget_drops_the_kinds_with_a_prefix_and_keeps_the_rest() -> None:
    memo = IdentityMemo("test_memo_forget")
    owner = _Owner()
    with memo.scope():
        for kind in ("rss", "rss-extra", "sort", "atom"):
            memo.get(kind, owner, partial(str, kind))

        memo.forget(("rss", "sort"))

        assert [memo.get(kind, owner, lambda: "again") for kind in ("rss", "rss-extra", "sort", "atom")] == [
            "again",
            "again",
            "again",
            "atom",
        ]


def test_a_reused_id_never_returns_another_objects_value() -> None:
    memo = IdentityMemo("test_memo_reuse")
    with memo.scope():
        assert memo.get("k", _Owner(), lambda: 1) == 1
        # The first owner was kept alive by the memo, so this one has another id; and were the id
        # reused, the stored owner would not be this object.
        assert memo.get("k", _Owner(), lambda: 2) == 2
