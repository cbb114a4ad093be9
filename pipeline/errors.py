"""The exception tree of veille; every stage translates the layer below into it.

    VeilleError
    ├── ConfigError        sources.yaml is unreadable or invalid (all problems, each by path)
    ├── LockHeld           another run holds the database lock
    ├── FetchError         one source could not be fetched (timeout, status, too-large, ...)
    ├── ParseError         fetched bytes are not a usable feed (or were refused as hostile)
    ├── StoreError         the SQLite database could not be opened, migrated or written
    └── ReviewError        a verdict cannot be recorded (unknown article or member, ...)

No httpx name leaves fetch.py and no sqlite3 name leaves store.py: callers catch
these classes only.
"""

from __future__ import annotations

from collections.abc import Sequence


class VeilleError(Exception):
    """Base class of every error veille raises on purpose."""


class ConfigError(VeilleError):
    """The configuration cannot be used. ``problems`` holds one line per problem."""

    def __init__(self, problems: Sequence[str], *, path: str = "sources.yaml") -> None:
        self.problems = list(problems)
        self.path = path
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{path}: {count} {noun}\n{lines}")


class LockHeld(VeilleError):
    """Another veille process holds the run lock."""


class FetchError(VeilleError):
    """A source could not be fetched.

    ``kind`` is one of: timeout, slow (the whole answer took longer than the total
    timeout: a trickling server, not retried within the run, since it would trickle
    again), connect, status, too-large, redirect, refused (the address policy, an
    unusable URL, or a redirect hop refused for another reason than robots.txt), robots
    (robots.txt disallows the URL, or the redirect target of an article page), encoding,
    protocol.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str,
        kind: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.kind = kind
        self.status = status
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        """Worth retrying within the same run: timeouts, refused connections, 5xx, 429."""
        if self.kind in ("timeout", "connect", "protocol"):
            return True
        return (
            self.kind == "status"
            and self.status is not None
            and (self.status >= 500 or self.status == 429)
        )


class ParseError(VeilleError):
    """Bytes that are not a usable feed, or that were refused as hostile.

    ``status``: the HTTP status of the response they came in, once the run knows it.
    """

    status: int | None = None


class StoreError(VeilleError):
    """The database could not be opened, migrated or written."""


class ReviewError(VeilleError):
    """A verdict cannot be recorded as asked: nothing was written."""
