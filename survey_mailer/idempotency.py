"""Idempotency keys: a program may send a request again and get the first answer back.

A client that timed out cannot know whether its request was done; with the same
`Idempotency-Key` (per API key, within WINDOW_SECONDS) it can simply send it again. The
answer is kept in the same write transaction as what the request created, under the
table's primary key, so two requests with one key at the same moment cannot both create:
one does, the other replays its answer. A key sent again with a different request is
refused (KeyReused) rather than answered with another request's result.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from dataclasses import dataclass

import sqlite_utils

from .clock import ago, now
from .errors import Invalid, SurveyError

WINDOW_SECONDS = 24 * 3600
MAX_LENGTH = 255
# Printable ASCII, spaces inside only (HTTP drops them at the ends anyway).
KEY_RE = re.compile(r"[!-~](?:[ -~]*[!-~])?")


@dataclass(frozen=True)
class Key:
    """One request's idempotency key: whose, the key itself, and what was asked."""

    api_key_id: int
    key: str
    fingerprint: str


class Replay(SurveyError):
    """This key was answered before: `status` and `body` are that first answer."""

    def __init__(self, status: int, body: dict):
        super().__init__(f"replay of an earlier answer ({status})")
        self.status = status
        self.body = body


class KeyReused(Invalid):
    """This key came with a different request before."""

    def __init__(self, header: str = "Idempotency-Key"):
        super().__init__(header, f"this {header} was used with a different request in the "
                                 f"last 24 hours: use a new key for a new request")


def check(text: str, header: str = "Idempotency-Key") -> str:
    """Return a key as sent, or raise Invalid: 1 to 255 printable ASCII characters."""
    if len(text) > MAX_LENGTH or not KEY_RE.fullmatch(text):
        raise Invalid(header, f"{header} must be 1 to {MAX_LENGTH} printable ASCII "
                              f"characters (a UUID, say)")
    return text


def fingerprint(*parts: object) -> str:
    """Return a hash of what a request asks (method, path, body): equal requests, equal hash."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def recall(db: sqlite_utils.Database | sqlite3.Connection, key: Key) -> Replay | None:
    """Return the first answer to this key (a Replay), or None; raise KeyReused."""
    row = db.execute(
        "SELECT status, body, request_hash FROM idempotency_keys "
        "WHERE api_key_id = ? AND key = ? AND created_at > ?",
        [key.api_key_id, key.key, ago(WINDOW_SECONDS)]).fetchone()
    if row is None:
        return None
    if row[2] != key.fingerprint:
        raise KeyReused()
    return Replay(row[0], json.loads(row[1]))


def remember(conn: sqlite3.Connection, key: Key, status: int, body: dict) -> None:
    """Keep an answer, inside the caller's write transaction (with what it created)."""
    # Expired keys go first (the index on created_at makes this cheap when there are
    # none), so a key may be used again after the window and the table stays small.
    conn.execute("DELETE FROM idempotency_keys WHERE created_at <= ?", [ago(WINDOW_SECONDS)])
    # A plain INSERT: if the key is there after all, the primary key fails the whole
    # transaction, so nothing is created twice.
    conn.execute(
        "INSERT INTO idempotency_keys (api_key_id, key, status, body, request_hash, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?)",
        [key.api_key_id, key.key, status, json.dumps(body, ensure_ascii=False),
         key.fingerprint, now()])
