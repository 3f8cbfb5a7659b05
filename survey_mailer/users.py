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
from .errors import NotFound, SurveyError

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


# Each role may do what the ones before it may (SPEC 12): support staff read and follow up,
# marketers also run contacts and campaigns, admins also manage accounts and API keys.
ROLES = ("support", "marketer", "admin")


def check_role(role: str) -> str:
    if role not in ROLES:
        raise SurveyError(f'role "{role}" is not one of {", ".join(ROLES)}')
    return role


def allows(role: str, needed: str) -> bool:
    """Return whether an account of `role` may open what needs `needed`."""
    return ROLES.index(role) >= ROLES.index(needed)


def add_user(db: sqlite_utils.Database, email: str, password: str,
             role: str | None = None) -> tuple[int, bool]:
    """Create a staff account or reset its password (ending its sessions); return (id, created).

    A new account gets `role` (support when None); the first account is an admin whatever is
    asked, so someone can manage the others. An existing one keeps its role unless given.
    """
    email = email.strip()
    if not valid_email(email):
        raise SurveyError(f'"{email}" is not an email address')
    if role is not None:
        check_role(role)
    if len(password) < MIN_PASSWORD:
        raise SurveyError(f"the password is too short: use at least {MIN_PASSWORD} characters")
    hashed = generate_password_hash(password, method="scrypt")
    with write(db) as conn:
        row = conn.execute("SELECT id FROM staff_users WHERE email = ?", [email]).fetchone()
        if row:
            conn.execute("UPDATE staff_users SET password_hash = ?, session_token = ?,"
                         " role = coalesce(?, role) WHERE id = ?",
                         [hashed, _new_token(), role, row[0]])
            return row[0], False
        first = conn.execute("SELECT count(*) FROM staff_users").fetchone()[0] == 0
        cursor = conn.execute(
            "INSERT INTO staff_users (email, password_hash, session_token, created_at, role) "
            "VALUES (?, ?, ?, ?, ?)",
            [email, hashed, _new_token(), now(), "admin" if first else role or "support"])
        return cursor.lastrowid, True


class LastAdmin(SurveyError):
    """The change would leave the workspace without an admin."""


def _keep_an_admin(conn, user_id: int) -> None:
    others = conn.execute("SELECT count(*) FROM staff_users WHERE role = 'admin' AND id != ?",
                          [user_id]).fetchone()[0]
    if not others:
        raise LastAdmin("the workspace needs an admin: make another account admin first")


def set_role(db: sqlite_utils.Database, user_id: int, role: str) -> None:
    """Change an account's role (never the last admin's away); its sessions end."""
    check_role(role)
    with write(db) as conn:
        if conn.execute("SELECT 1 FROM staff_users WHERE id = ?", [user_id]).fetchone() is None:
            raise NotFound("staff account", user_id)
        if role != "admin":
            _keep_an_admin(conn, user_id)
        conn.execute("UPDATE staff_users SET role = ?, session_token = ? WHERE id = ?",
                     [role, _new_token(), user_id])


def remove_user(db: sqlite_utils.Database, user_id: int) -> str:
    """Remove an account (never the last admin); return its email. Its cases stay, unassigned."""
    with write(db) as conn:
        row = conn.execute("SELECT email FROM staff_users WHERE id = ?", [user_id]).fetchone()
        if row is None:
            raise NotFound("staff account", user_id)
        _keep_an_admin(conn, user_id)
        conn.execute("UPDATE cases SET assignee_id = NULL WHERE assignee_id = ?", [user_id])
        conn.execute("UPDATE cases SET updated_by = NULL WHERE updated_by = ?", [user_id])
        conn.execute("UPDATE case_notes SET author_id = NULL WHERE author_id = ?", [user_id])
        conn.execute("UPDATE testimonials SET reviewed_by = NULL WHERE reviewed_by = ?",
                     [user_id])
        conn.execute("DELETE FROM staff_users WHERE id = ?", [user_id])
    return row[0]


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
    row = db.execute("SELECT id, email, session_token, role FROM staff_users WHERE id = ?",
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
    """Return every account's id, email, role and last login, by email."""
    return [dict(r) for r in db.execute(
        "SELECT id, email, role, created_at, last_login_at FROM staff_users ORDER BY email")]
