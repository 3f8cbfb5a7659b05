"""The SQLite database: connections, write transactions, and opening it from the settings."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import weakref
from collections.abc import Iterator
from pathlib import Path

import sqlite_utils

from . import clock
from . import config as config_
from .errors import ReadOnlyDatabase

MAX_ID = 2**63 - 1  # SQLite's largest integer


def parse_id(text: object) -> int | None:
    """Return text as a row id, or None unless it is ASCII digits that fit SQLite."""
    # The length first: int() refuses over 4300 digits, and "²" or "٥" pass isdigit().
    if isinstance(text, str) and 0 < len(text) <= 19 and text.isascii() and text.isdigit():
        value = int(text)
        return value if value <= MAX_ID else None
    return None


def connect(path: str | Path, *, burst_seconds: float | None = None) -> sqlite_utils.Database:
    """Open the database file with WAL, foreign keys and a busy timeout.

    `burst_seconds` is the scanner-burst window that folding clicks uses on this database
    (SURVEY_BURST_SECONDS; its default when None): whoever reads responses through this
    connection gets them folded with it.
    """
    path = Path(path)
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    with writable(path):
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable against a crash of the process (what SIGKILL tests); only an OS
        # crash or power cut can lose the last commits, which costs each commit an fsync less.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
    # The one clock in SQL, for triggers (responses.updated_at): tests that freeze the
    # clock freeze it there too.
    conn.create_function("survey_now", 0, clock.now)
    db = sqlite_utils.Database(conn, execute_plugins=False)
    db.path = str(path)
    db.burst_seconds = (config_.default("SURVEY_BURST_SECONDS") if burst_seconds is None
                        else burst_seconds)
    # Writers queue on a file lock before SQLite's: the kernel wakes the next one the moment
    # the lock is free, where SQLite's busy handler sleeps 1, 2, 5, 10... ms between tries.
    db.write_lock = None
    if str(path) != ":memory:":
        with writable(path):
            db.write_lock = os.open(f"{path}-writelock", os.O_RDWR | os.O_CREAT, 0o600)
        weakref.finalize(db, os.close, db.write_lock)  # closed with the Database object
    return db


@contextlib.contextmanager
def writable(path: str | Path, *, files: bool = True) -> Iterator[None]:
    """Turn "this process may not write the database" into one clear ReadOnlyDatabase.

    SQLite says so as SQLITE_READONLY (the file, or its folder where the -wal and -shm files
    go); the write lock beside the file says so as a PermissionError (`files`: only where
    that lock is opened, so no other file's error is blamed on the database).
    """
    try:
        yield
    except sqlite3.OperationalError as e:
        if (e.sqlite_errorcode or 0) & 0xFF != sqlite3.SQLITE_READONLY:
            raise
        raise ReadOnlyDatabase(_read_only(path, str(e))) from e
    except PermissionError as e:
        if not files:
            raise
        raise ReadOnlyDatabase(_read_only(path, f"{e.strerror}: {e.filename}")) from e


def _read_only(path: str | Path, reason: str) -> str:
    return (f"the database {path} is read-only ({reason}): survey-mailer must be able to "
            f"write the file and create files in its folder")


def open_configured(config: config_.Config) -> sqlite_utils.Database:
    """Open and migrate the database the settings name, with their burst window."""
    db = connect(config["SURVEY_DATABASE"], burst_seconds=config["SURVEY_BURST_SECONDS"])
    migrate(db)
    return db


def reconnect(db: sqlite_utils.Database) -> sqlite_utils.Database:
    """Open another connection to the same database, with the same settings."""
    return connect(db.path, burst_seconds=db.burst_seconds)


def backup(db: sqlite_utils.Database, target: str | Path) -> int:
    """Copy the live database to `target` with SQLite's online backup; return its pages.

    One step, in one read transaction: in WAL mode a reader holds a snapshot and writers go
    on beside it, so the copy is the database as of one moment and nobody waits. (Copying
    in small steps would restart whenever another process commits: under steady writes it
    might never end.) It is written beside the target and renamed into place, so a crash
    never leaves a half copy there.
    """
    target = Path(target)
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    copy = sqlite3.connect(str(partial))
    try:
        db.conn.backup(copy)
        pages = copy.execute("PRAGMA page_count").fetchone()[0]
        copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside
    finally:
        copy.close()
    os.replace(partial, target)
    return pages


def ping(db: sqlite_utils.Database) -> None:
    """Raise unless the database answers a query (the health check)."""
    db.execute("SELECT 1").fetchone()


def migrate(db: sqlite_utils.Database) -> list[str]:
    """Apply pending migrations; return the names applied.

    The write lock is taken first, so processes starting together (gunicorn's workers)
    migrate one after the other and the later ones find nothing left to do.
    """
    from .migrations import migrations

    with write(db):
        pending = [m.name for m in migrations.pending(db)]
        migrations.apply(db)  # nested in our transaction: sqlite-utils uses savepoints
    return pending


@contextlib.contextmanager
def write(db: sqlite_utils.Database) -> Iterator[sqlite3.Connection]:
    """Run a write transaction that takes the write lock up front (no deadlock on upgrade)."""
    conn = db.conn
    lock = getattr(db, "write_lock", None)
    if lock is not None:
        fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        with writable(getattr(db, "path", "?"), files=False):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
    finally:
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_UN)
