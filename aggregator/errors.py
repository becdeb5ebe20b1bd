"""One error tree for the whole aggregator.

    AggregatorError
    ├── ConfigError        a sources.toml problem (file, line, source, key)
    │   └── ConfigErrors   every problem of one load, raised together
    ├── FetchError         a fetch failed (url, permanent?)
    ├── ParseError         a document could not be read at all
    ├── StoreError         the database refused
    └── PublishError       a file in feeds/ could not be written

Only ``cli.py`` prints these and chooses exit codes; the scheduler logs one
line per failure and carries on.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AggregatorError",
    "ConfigError",
    "ConfigErrors",
    "FetchError",
    "ParseError",
    "PublishError",
    "StoreError",
]


class AggregatorError(Exception):
    """Root of every error the aggregator raises on purpose."""


class ConfigError(AggregatorError):
    """One problem in a configuration file, pointing at file, line, source and key."""

    def __init__(
        self,
        path: str,
        line: int | None,
        source: str | None,
        key: str | None,
        problem: str,
        *,
        index: int | None = None,
    ):
        super().__init__(problem)
        self.path = path
        self.line = line
        self.source = source
        self.key = key
        self.problem = problem
        self.index = index  # 1-based position of a [[source]] that has no usable name

    def __reduce__(
        self,
    ) -> tuple[type[ConfigError], tuple[str, int | None, str | None, str | None, str], dict[str, object]]:
        """Pickled whole, as it comes back from a process that read the file (``runtime.load_config_apart``)."""
        return type(self), (self.path, self.line, self.source, self.key, self.problem), self.__dict__

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        parts = [where]
        if self.source is not None:
            parts.append(f"source '{self.source}'")
        elif self.index is not None:
            parts.append(f"source #{self.index}")
        if self.key is not None:
            parts.append(self.key)
        parts.append(self.problem)
        return ": ".join(parts)


class ConfigErrors(AggregatorError):
    """All problems found while loading one configuration, reported together."""

    def __init__(self, errors: Sequence[ConfigError]):
        super().__init__(f"{len(errors)} problem(s) in configuration")
        self.errors = tuple(errors)

    def __reduce__(self) -> tuple[type[ConfigErrors], tuple[tuple[ConfigError, ...]]]:
        return type(self), (self.errors,)

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class FetchError(AggregatorError):
    """A fetch failed; ``permanent`` tells the scheduler whether retrying can help."""

    def __init__(
        self,
        url: str,
        message: str,
        *,
        reason: str = "network",
        permanent: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.url = url
        self.message = message
        # A short machine-readable cause for metrics and status: "network",
        # "dns", "tls", "timeout", "http", "too-large", "redirects",
        # "private-address", "robots", "gone", "not-allowed".
        self.reason = reason
        self.permanent = permanent
        self.status = status
        self.retry_after = retry_after  # seconds, from Retry-After on 429/503

    def __str__(self) -> str:
        return f"{self.message} ({self.url})"


class ParseError(AggregatorError):
    """A whole document could not be read (a bad item is a Problem, not this)."""

    def __init__(self, source: str, message: str):
        super().__init__(message)
        self.source = source
        self.message = message

    def __reduce__(self) -> tuple[type[ParseError], tuple[str, str]]:
        # Raised inside the parsing process pool: must survive pickling back to the event loop.
        return (ParseError, (self.source, self.message))

    def __str__(self) -> str:
        return f"source '{self.source}': {self.message}"


class StoreError(AggregatorError):
    """The database could not be opened or written."""


class PublishError(AggregatorError):
    """A published file could not be written; the previous file stays in place."""

    def __init__(self, path: str, message: str):
        super().__init__(message)
        self.path = path
        self.message = message

    def __reduce__(self) -> tuple[type[PublishError], tuple[str, str]]:
        # Raised inside the daemon's publishing process: must survive pickling back.
        return (PublishError, (self.path, self.message))

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"
