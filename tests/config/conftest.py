"""Helpers for configuration tests: write a sources.toml in a temporary folder and load it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from aggregator.config import Config, load
from aggregator.errors import ConfigErrors


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in tmp_path so messages start with the relative name ``sources.toml``, as the CLI prints them."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def load_text(in_tmp: Path) -> Callable[[str], Config]:
    def run(text: str) -> Config:
        (in_tmp / "sources.toml").write_text(text, encoding="utf-8")
        return load(Path("sources.toml"))

    return run


@pytest.fixture
def problems(in_tmp: Path) -> Callable[[str], list[str]]:
    """problems(text) -> every message of the ConfigErrors raised for that sources.toml."""

    def run(text: str) -> list[str]:
        (in_tmp / "sources.toml").write_text(text, encoding="utf-8")
        with pytest.raises(ConfigErrors) as caught:
            load(Path("sources.toml"))
        return [str(error) for error in caught.value.errors]

    return run
