"""Keys of the JSON API: random, shown once, kept only as a hash, revocable at once.

A key may stand for one campaign (`campaign_id`): Delighted's "project" on /delighted/v1,
and on /api/v1 a key that reaches that campaign's surveys and responses only.
"""

from __future__ import annotations

import hashlib
import secrets

import sqlite_utils

from .clock import now
from .db import write
from .errors import NotFound


def _key_hash(key: str) -> str:
    # Keys are long random strings, so a plain SHA-256 suffices (no password stretching).
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(db: sqlite_utils.Database, name: str,
                   campaign_id: int | None = None) -> str:
    """Create an API key (for one campaign, or all); return it, shown this once."""
    key = "sm_" + secrets.token_urlsafe(32)
    with write(db) as conn:
        if campaign_id is not None and conn.execute(
                "SELECT 1 FROM campaigns WHERE id = ?", [campaign_id]).fetchone() is None:
            raise NotFound("campaign", campaign_id)
        conn.execute("INSERT INTO api_keys (name, prefix, key_hash, created_at, campaign_id) "
                     "VALUES (?, ?, ?, ?, ?)",
                     [name, key[:7], _key_hash(key), now(), campaign_id])
    return key


def check_api_key(db: sqlite_utils.Database, key: str) -> dict | None:
    """Return the key (id, name, campaign_id) when valid and not revoked; note its use."""
    row = db.execute("SELECT id, name, campaign_id, last_used_at FROM api_keys "
                     "WHERE key_hash = ? AND revoked_at IS NULL", [_key_hash(key)]).fetchone()
    if row is None:
        return None
    stamp = now()
    # At most one write a minute per key: a busy integration should not cost a commit a call.
    if row["last_used_at"] is None or row["last_used_at"][:16] != stamp[:16]:
        with write(db) as conn:
            conn.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", [stamp, row["id"]])
    return {"id": row["id"], "name": row["name"], "campaign_id": row["campaign_id"]}


def list_api_keys(db: sqlite_utils.Database) -> list[dict]:
    """Return every API key's record (never the key itself), oldest first."""
    return [dict(r) for r in db.execute(
        "SELECT id, name, prefix, campaign_id, created_at, last_used_at, revoked_at "
        "FROM api_keys "
        "ORDER BY id")]


def revoke_api_key(db: sqlite_utils.Database, key_id: int) -> bool:
    """Revoke a key at once; return False when it was already revoked."""
    with write(db) as conn:
        if conn.execute("SELECT 1 FROM api_keys WHERE id = ?", [key_id]).fetchone() is None:
            raise NotFound("API key", key_id)
        return bool(conn.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            [now(), key_id]).rowcount)
