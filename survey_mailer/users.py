"""Staff accounts of the web workspace: passwords hashed with scrypt, never stored."""

from __future__ import annotations

import sqlite_utils
from werkzeug.security import check_password_hash, generate_password_hash

from .addresses import valid_email
from .clock import now
from .db import write
from .errors import SurveyError

MIN_PASSWORD = 10
# Hashed the same way whether or not the account exists, so timing does not reveal accounts.
_DUMMY_HASH = generate_password_hash("not a password", method="scrypt")


def add_user(db: sqlite_utils.Database, email: str, password: str) -> tuple[int, bool]:
    """Create a staff account or reset its password; return (id, created)."""
    email = email.strip()
    if not valid_email(email):
        raise SurveyError(f'"{email}" is not an email address')
    if len(password) < MIN_PASSWORD:
        raise SurveyError(f"the password is too short: use at least {MIN_PASSWORD} characters")
    hashed = generate_password_hash(password, method="scrypt")
    with write(db) as conn:
        row = conn.execute("SELECT id FROM staff_users WHERE email = ?", [email]).fetchone()
        if row:
            conn.execute("UPDATE staff_users SET password_hash = ? WHERE id = ?",
                         [hashed, row[0]])
            return row[0], False
        cursor = conn.execute(
            "INSERT INTO staff_users (email, password_hash, created_at) VALUES (?, ?, ?)",
            [email, hashed, now()])
        return cursor.lastrowid, True


def authenticate(db: sqlite_utils.Database, email: str, password: str) -> dict | None:
    """Return the account when the password matches, else None."""
    row = db.execute("SELECT * FROM staff_users WHERE email = ?", [email.strip()]).fetchone()
    if row is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(row["password_hash"], password):
        return None
    with write(db) as conn:
        conn.execute("UPDATE staff_users SET last_login_at = ? WHERE id = ?", [now(), row["id"]])
    return dict(row)


def get_user(db: sqlite_utils.Database, user_id: int) -> dict | None:
    row = db.execute("SELECT id, email FROM staff_users WHERE id = ?", [user_id]).fetchone()
    return dict(row) if row else None


def list_users(db: sqlite_utils.Database) -> list[dict]:
    return [dict(r) for r in db.execute("SELECT id, email FROM staff_users ORDER BY email")]
