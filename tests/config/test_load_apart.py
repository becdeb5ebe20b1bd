"""A large sources.toml is read in a process of its own, and what it gives or raises comes back whole.

Reading 10,000 sources left the daemon's heap 21 MB bigger for good; the Config unpickled from a
process that read it takes 8 MB (``runtime.load_config_apart``).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from aggregator.config import load
from aggregator.errors import ConfigError, ConfigErrors
from aggregator.runtime import APART_CONFIG_BYTES, load_config_apart


def _sources(count: int, *, broken: int | None = None) -> str:
    """``count`` sources, each with its tags and a note; number ``broken`` with an interval that is not one."""
    blocks = []
    for n in range(count):
        interval = "every so often" if n == broken else "2h"
        blocks.append(
            f'[[source]]\nname = "cluster-{n:05d}"\nurl = "https://cluster-{n}.example.eu/news.xml"\n'
            f'interval = "{interval}"\ntags = ["mobility", "hydrogen", "region-{n % 40}"]\n'
            f"# {'Automotive, plastics and hydrogen cluster of the region, with its events. ' * 2}\n"
        )
    return "[defaults]\nallow_private = true\n\n" + "\n".join(blocks)


def test_a_large_file_read_apart_gives_the_same_configuration(tmp_path: Path) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(_sources(1_500), encoding="utf-8")
    assert path.stat().st_size > APART_CONFIG_BYTES
    apart = load_config_apart(path, data_dir=tmp_path / "state")
    assert apart == load(path, data_dir=tmp_path / "state")
    assert len(apart.sources) == 1_500
    assert apart.sources[1_499].name == "cluster-01499"
    assert apart.sources[7].tags == ("mobility", "hydrogen", "region-7")
    assert apart.data_dir == tmp_path / "state"


def test_the_problems_of_a_large_file_come_back_with_file_line_source_and_key(tmp_path: Path) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(_sources(1_500, broken=1_234), encoding="utf-8")
    with pytest.raises(ConfigErrors) as raised:
        load_config_apart(path)
    # Raised in the process that read the file: its traceback comes along as the cause.
    assert type(raised.value.__cause__).__name__ == "_RemoteTraceback"
    with pytest.raises(ConfigErrors) as here:
        load(path)
    assert [str(e) for e in raised.value.errors] == [str(e) for e in here.value.errors]
    (error,) = raised.value.errors
    assert (error.path, error.source, error.key) == (str(path), "cluster-01234", "interval")
    assert error.line == path.read_text(encoding="utf-8").splitlines().index('name = "cluster-01234"') + 3


def test_a_small_file_is_read_here(tmp_path: Path) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(_sources(3, broken=1), encoding="utf-8")
    with pytest.raises(ConfigErrors) as raised:
        load_config_apart(path)
    assert raised.value.__cause__ is None
    assert raised.value.errors[0].source == "cluster-00001"


def test_configuration_errors_survive_pickling() -> None:
    nameless = ConfigError("sources.toml", 12, None, None, "a [[source]] needs a name", index=3)
    errors = ConfigErrors([nameless, ConfigError("sources.toml", 20, "eccp", "url", "not a URL")])
    copy = pickle.loads(pickle.dumps(errors))
    assert str(copy) == str(errors)
    assert [(e.path, e.line, e.source, e.key, e.problem, e.index) for e in copy.errors] == [
        ("sources.toml", 12, None, None, "a [[source]] needs a name", 3),
        ("sources.toml", 20, "eccp", "url", "not a URL", None),
    ]
