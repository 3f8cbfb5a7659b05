"""Staff accounts of the web workspace: passwords hashed with scrypt, never stored.

A session names an account by its id and its session token (`session_id`); logging out or
a new password draws a new token, which ends every session that named the old one. Login
attempts are counted per email in the database, so a lock holds across processes.
"""

from __future__ import annotations

import hmac
import math
import secrets

import sqlite_utils
from werkzeug.security import check_password_hash, generate_password_hash

from .addresses import valid_email
from .clock import now, parse, shift, utcnow
from .db import write
from .errors import SurveyError

MIN_PASSWORD = 10
# Hashed the same way whether or not the account exists, so timing does not reveal accounts.
_DUMMY_HASH = generate_password_hash("not a password", method="scrypt")

LOCK_AFTER = 5  # failed logins with one email within FAILURE_WINDOW lock it...
FAILURE_WINDOW = 15 * 60
LOCK_SECONDS = 15 * 60  # ...for this long, even for the right password


class AccountLocked(SurveyError):
    """Too many failed logins with this email: no password is checked until `until`."""

    def __init__(self, email: str, until: str):
        super().__init__(f'too many failed logins with "{email}"')
        self.email = email
        self.until = until

    def seconds_left(self) -> int:
        """Return the whole seconds until the lock ends (at least 1)."""
        return max(1, math.ceil((parse(self.until) - utcnow()).total_seconds()))

    def minutes_left(self) -> int:
        """Return the minutes until the lock ends, rounded up."""
        return math.ceil(self.seconds_left() / 60)


def _new_token() -> str:
    return secrets.token_hex(16)


def add_user(db: sqlite_utils.Database, email: str, password: str) -> tuple[int, bool]:
    """Create a staff account or reset its password (ending its sessions); return (id, created)."""
    email = email.strip()
    if not valid_email(email):
        raise SurveyError(f'"{email}" is not an email address')
    if len(password) < MIN_PASSWORD:
        raise SurveyError(f"the password is too short: use at least {MIN_PASSWORD} characters")
    hashed = generate_password_hash(password, method="scrypt")
    with write(db) as conn:
        row = conn.execute("SELECT id FROM staff_users WHERE email = ?", [email]).fetchone()
        if row:
            conn.execute("UPDATE staff_users SET password_hash = ?, session_token = ? "
                         "WHERE id = ?", [hashed, _new_token(), row[0]])
            return row[0], False
        cursor = conn.execute(
            "INSERT INTO staff_users (email, password_hash, session_token, created_at) "
            "VALUES (?, ?, ?, ?)", [email, hashed, _new_token(), now()])
        return cursor.lastrowid, True


def _lock_key(email: str) -> str:
    return email.strip().casefold()


def _count_attempt(db: sqlite_utils.Database, key: str) -> None:
    """Count a login attempt with this email before its password is checked.

    Counted first, in one write transaction, so workers checking passwords at the same
    time cannot together check more than LOCK_AFTER; a success takes the count back.
    """
    moment = now()
    with write(db) as conn:
        # Old windows and ended locks go, so the table holds only emails tried lately.
        conn.execute("DELETE FROM staff_login_failures WHERE locked_until <= ? OR "
                     "(locked_until IS NULL AND window_start <= ?)",
                     [moment, shift(moment, -FAILURE_WINDOW)])
        row = conn.execute("SELECT failures, locked_until FROM staff_login_failures "
                           "WHERE email = ?", [key]).fetchone()
        if row is None:
            conn.execute("INSERT INTO staff_login_failures (email, failures, window_start) "
                         "VALUES (?, 1, ?)", [key, moment])
            return
        if row["locked_until"] is not None:
            raise AccountLocked(key, row["locked_until"])
        failures = row["failures"] + 1
        conn.execute("UPDATE staff_login_failures SET failures = ?, locked_until = ? "
                     "WHERE email = ?",
                     [failures, shift(moment, LOCK_SECONDS) if failures >= LOCK_AFTER
                      else None, key])


def authenticate(db: sqlite_utils.Database, email: str, password: str) -> dict | None:
    """Return the account when the password matches, else None; raise AccountLocked.

    After LOCK_AFTER failures with one email (any case, known or not) within
    FAILURE_WINDOW, every attempt with it is refused for LOCK_SECONDS.
    """
    key = _lock_key(email)
    _count_attempt(db, key)
    row = db.execute("SELECT * FROM staff_users WHERE email = ?", [email.strip()]).fetchone()
    if row is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(row["password_hash"], password):
        return None
    with write(db) as conn:
        conn.execute("UPDATE staff_users SET last_login_at = ? WHERE id = ?", [now(), row["id"]])
        conn.execute("DELETE FROM staff_login_failures WHERE email = ?", [key])
    return dict(row)


def session_id(user: dict) -> str:
    """Return what a session stores to name this account: its id and session token."""
    return f"{user['id']}:{user['session_token']}"


def from_session(db: sqlite_utils.Database, stored: str) -> dict | None:
    """Return the account a session names, or None when its token has been replaced."""
    user_id, _, token = stored.partition(":")
    if not (user_id.isascii() and user_id.isdigit() and len(user_id) < 19 and token):
        return None
    row = db.execute("SELECT id, email, session_token FROM staff_users WHERE id = ?",
                     [int(user_id)]).fetchone()
    if row is None or not hmac.compare_digest(row["session_token"].encode(), token.encode()):
        return None
    return dict(row)


def end_sessions(db: sqlite_utils.Database, user_id: int) -> None:
    """End every session of an account (logging out ends them all, on every device)."""
    with write(db) as conn:
        conn.execute("UPDATE staff_users SET session_token = ? WHERE id = ?",
                     [_new_token(), user_id])


def list_users(db: sqlite_utils.Database) -> list[dict]:
    """Return every account's id and email, by email."""
    return [dict(r) for r in db.execute("SELECT id, email FROM staff_users ORDER BY email")]
