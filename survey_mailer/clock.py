"""The one clock: UTC time stamps as stored (sortable text) and as shown (ISO 8601).

Stored stamps are `YYYY-MM-DD HH:MM:SS.ffffff` in UTC: they sort as text, SQLite's date
functions read them, and microseconds keep a delivery's clicks in order. Everything a person
or a program reads (pages, CSV, JSON, emails) shows `YYYY-MM-DDTHH:MM:SSZ` instead (`iso`).
Every module takes the time from here, so a test can move it for all of them (`frozen`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta


def _system() -> datetime:
    return datetime.now(UTC)


_source: Callable[[], datetime] = _system


def utcnow() -> datetime:
    """Return the current time, aware, in UTC."""
    return _source()


def system_seconds() -> float:
    """Return the system's unix time, never frozen: for a library that keeps its own time
    (the `limits` windows behind the API's rate limit)."""
    return _system().timestamp()


def now() -> str:
    """Return the current time as a stored stamp."""
    # isoformat rather than strftime: about 2.2 instead of 3.4 us, and this runs per click.
    return _source().isoformat(" ", "microseconds")[:26]


def stamp(moment: datetime) -> str:
    """Return a datetime (aware, or naive in UTC) as a stored stamp."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(" ", "microseconds")


def parse(stored: str) -> datetime:
    """Return a stored stamp (or any ISO 8601 text) as an aware datetime in UTC."""
    moment = datetime.fromisoformat(stored.replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def shift(stored: str, seconds: float) -> str:
    """Return a stored stamp moved by some seconds."""
    # fromisoformat/isoformat rather than strptime/strftime: ten times faster, same text.
    moved = datetime.fromisoformat(stored) + timedelta(seconds=seconds)
    return moved.isoformat(sep=" ", timespec="microseconds")


def ago(seconds: float) -> str:
    """Return the stored stamp of some seconds before now (after, when negative)."""
    return stamp(_source() - timedelta(seconds=seconds))


def iso(stored: str | None) -> str | None:
    """Return a stored stamp as shown everywhere: ISO 8601 in UTC, no microseconds."""
    if not stored:
        return None
    if len(stored) >= 19 and stored[10] in " T" and "+" not in stored[19:]:
        return stored[:10] + "T" + stored[11:19] + "Z"
    return parse(stored).strftime("%Y-%m-%dT%H:%M:%SZ")


@contextlib.contextmanager
def frozen(moment: datetime | Callable[[], datetime]) -> Iterator[None]:
    """Make every module see `moment` (or what the callable returns) as the time."""
    global _source
    previous = _source
    _source = moment if callable(moment) else (lambda: moment)
    try:
        yield
    finally:
        _source = previous


class Stopped:
    """A clock that stands still until moved, for `frozen(...)`: tests set `time` or call
    `advance`, and never sleep through a window."""

    def __init__(self, start: datetime | None = None):
        self.time = start if start is not None else utcnow()

    def __call__(self) -> datetime:
        return self.time

    def advance(self, seconds: float) -> None:
        self.time += timedelta(seconds=seconds)
