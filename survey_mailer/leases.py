"""Leases: work a process claims for a few seconds at a time, renewed while it works.

A claim names its owner (`owner()`: host, process id and a token drawn once per process)
and holds until its lease runs out. While the owner works, a `Heartbeat` renews its leases
every few seconds on a connection of its own, however long one send takes. A lease that
is not renewed ends within LEASE_SECONDS; a claim whose owner is a process on this host
that no longer runs ends at once (`alive`). So whatever a killed process had claimed is
picked up again in seconds, and a live one keeps its work.
"""

from __future__ import annotations

import os
import secrets
import socket
import sqlite3
import threading
from collections.abc import Callable

import sqlite_utils

from . import db as db_

LEASE_SECONDS = 10.0

_identity: tuple[int, str] | None = None


def owner() -> str:
    """Return this process's owner tag, `host:pid:token`."""
    global _identity
    pid = os.getpid()
    if _identity is None or _identity[0] != pid:  # a forked child is another owner
        _identity = (pid, f"{socket.gethostname()}:{pid}:{secrets.token_hex(4)}")
    return _identity[1]


def alive(tag: str | None) -> bool:
    """Return False when a tag's owner is surely gone: a process of this host that has ended.

    A tag starts with an owner tag; whatever follows (a claimer's own token) is ignored.

    Owners on other hosts (or other containers), and untagged claims, cannot be checked:
    they are alive until their lease ends. The token tells an ended process apart from a
    later one that got the same pid (a container's pid 1 after a restart).
    """
    host, pid_text, token = [*(tag or "").split(":"), "", ""][:3]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    pid = int(pid_text)
    if pid == os.getpid():
        return token == owner().split(":")[2]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process, or not a pid here
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    # A killed child its parent has not reaped yet still answers kill(pid, 0).
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


class Heartbeat:
    """Call `renew(db)` every `every` seconds (a third of the lease), on a connection of its
    own, until the block ends.

    A renewal that meets a busy database is tried again at the next beat; the owner checks
    it still holds a claim before each hand-off, so an expired lease never sends twice.
    """

    def __init__(self, db: sqlite_utils.Database, renew: Callable[[sqlite_utils.Database], None],
                 every: float | None = None):
        self.db, self.renew = db, renew
        self.every = LEASE_SECONDS / 3 if every is None else every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        if getattr(self.db, "path", ":memory:") != ":memory:":  # one process: nobody to wait
            self._thread = threading.Thread(target=self._beat, name="lease-heartbeat",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _beat(self) -> None:
        own = None
        try:
            while not self._stop.wait(self.every):
                try:
                    own = own or db_.reconnect(self.db)
                    self.renew(own)
                except sqlite3.Error:
                    pass  # busy or locked for longer than the timeout: the next beat tries
        finally:
            if own is not None:
                own.close()
