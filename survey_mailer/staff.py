"""The staff workspace's data: accounts, follow-up cases, testimonial moderation, API keys."""

from __future__ import annotations

import hashlib
import re
import secrets

import sqlite_utils
from werkzeug.security import check_password_hash, generate_password_hash

from . import humans
from .db import now, write
from .errors import NotFound, SurveyError
from .nps import counted_sql, segment

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 10
STATUSES = ("new", "contacted", "resolved")
# Hashed the same way whether or not the account exists, so timing does not reveal accounts.
_DUMMY_HASH = generate_password_hash("not a password", method="scrypt")


# Accounts ---------------------------------------------------------------------------------


def add_user(db: sqlite_utils.Database, email: str, password: str) -> tuple[int, bool]:
    """Create a staff account or reset its password; return (id, created)."""
    email = email.strip()
    if not EMAIL_RE.match(email):
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


# Follow-up cases: every counted detractor response is one ----------------------------------

CASE_SQL = """
    SELECT r.id, r.score, r.comment, r.contact_ok, r.responded_at, r.campaign_id,
           c.email, c.name, c.company, c.language, cp.name AS campaign_name,
           coalesce(k.status, 'new') AS status, k.assignee_id, u.email AS assignee,
           k.updated_at
    FROM responses r
    JOIN contacts c ON c.id = r.contact_id
    JOIN campaigns cp ON cp.id = r.campaign_id
    LEFT JOIN cases k ON k.response_id = r.id
    LEFT JOIN staff_users u ON u.id = k.assignee_id
"""


def list_cases(db: sqlite_utils.Database, policy: str, *, status: str | None = None,
               assignee_id: int | None = None, unassigned: bool = False,
               campaign_id: int | None = None, limit: int = 200) -> list[dict]:
    """Return follow-up cases, newest first, filtered."""
    where = [counted_sql(policy), "r.score <= 6"]
    params: list = []
    if status:
        where.append("coalesce(k.status, 'new') = ?")
        params.append(status)
    if unassigned:
        where.append("k.assignee_id IS NULL")
    elif assignee_id is not None:
        where.append("k.assignee_id = ?")
        params.append(assignee_id)
    if campaign_id is not None:
        where.append("r.campaign_id = ?")
        params.append(campaign_id)
    rows = db.execute(
        f"{CASE_SQL} WHERE {' AND '.join(where)} ORDER BY r.responded_at DESC, r.id DESC "
        f"LIMIT ?", [*params, limit])
    return [dict(r) for r in rows]


def case_counts(db: sqlite_utils.Database, policy: str,
                detractors: int | None = None) -> dict[str, int]:
    """Return how many cases are new, contacted and resolved.

    Only cases someone touched have a row; the rest are new. `detractors`, when the caller
    knows it from a report, saves counting them again.
    """
    if detractors is None:
        detractors = db.execute(f"SELECT count(*) FROM responses r "
                                f"WHERE {counted_sql(policy)} AND r.score <= 6").fetchone()[0]
    counts = dict.fromkeys(STATUSES, 0)
    counts.update({r[0]: r[1] for r in db.execute(
        f"SELECT k.status, count(*) FROM cases k JOIN responses r ON r.id = k.response_id "
        f"WHERE {counted_sql(policy)} AND r.score <= 6 GROUP BY k.status")})
    counts["new"] = detractors - counts["contacted"] - counts["resolved"]
    return counts


def campaign_names(db: sqlite_utils.Database) -> list[dict]:
    """Return every campaign's id and name, newest first (a menu, without counting)."""
    return [dict(r) for r in db.execute("SELECT id, name FROM campaigns ORDER BY id DESC")]


def get_case(db: sqlite_utils.Database, response_id: int, policy: str) -> dict:
    """Return one case with its notes, oldest note first."""
    row = db.execute(f"{CASE_SQL} WHERE r.id = ? AND r.score <= 6 AND {counted_sql(policy)}",
                     [response_id]).fetchone()
    if row is None:
        raise NotFound("case", response_id)
    case = dict(row)
    case["notes"] = [dict(n) for n in db.execute(
        "SELECT n.id, n.body, n.created_at, coalesce(u.email, 'deleted account') AS author "
        "FROM case_notes n LEFT JOIN staff_users u ON u.id = n.author_id "
        "WHERE n.response_id = ? ORDER BY n.created_at, n.id", [response_id])]
    return case


def update_case(db: sqlite_utils.Database, response_id: int, *, by: int, status: str,
                assignee_id: int | None, note: str = "") -> list[str]:
    """Set a case's status and assignee and add a note; return what changed, in words."""
    if status not in STATUSES:
        raise SurveyError(f'status "{status}" is not one of {", ".join(STATUSES)}')
    stamp = now()
    with write(db) as conn:
        before = conn.execute("SELECT status, assignee_id FROM cases WHERE response_id = ?",
                              [response_id]).fetchone()
        old_status, old_assignee = (before[0], before[1]) if before else ("new", None)
        conn.execute(
            """
            INSERT INTO cases (response_id, status, assignee_id, updated_at, updated_by)
            VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (response_id) DO UPDATE SET status = excluded.status,
                assignee_id = excluded.assignee_id, updated_at = excluded.updated_at,
                updated_by = excluded.updated_by
            """, [response_id, status, assignee_id, stamp, by])
        changes = []
        if status != old_status:
            changes.append(f"status {old_status} -> {status}")
        if assignee_id != old_assignee:
            name = conn.execute("SELECT email FROM staff_users WHERE id = ?",
                                [assignee_id]).fetchone() if assignee_id else None
            changes.append(f"assigned to {name[0]}" if name else "unassigned")
        if note.strip():
            conn.execute("INSERT INTO case_notes (response_id, author_id, body, created_at) "
                         "VALUES (?, ?, ?, ?)", [response_id, by, note.strip(), stamp])
            changes.append("note added")
    return changes


# Testimonials: promoters who consented, published only once approved ---------------------

TESTIMONIAL_SQL = """
    SELECT r.id, r.score, r.comment, r.display_name AS given_name, r.responded_at,
           c.email, c.name, c.company, coalesce(t.status, 'pending') AS status,
           t.display_name, t.quote, t.reviewed_at, u.email AS reviewer
    FROM responses r
    JOIN contacts c ON c.id = r.contact_id
    LEFT JOIN testimonials t ON t.response_id = r.id
    LEFT JOIN staff_users u ON u.id = t.reviewed_by
    WHERE r.testimonial_consent = 1 AND r.score >= 9
"""


def list_testimonials(db: sqlite_utils.Database, status: str | None = None) -> list[dict]:
    """Return consenting promoters for moderation, newest first.

    A quote changed by its author after approval shows `changed` and is republished only
    once approved again; until then the approved words stay published.
    """
    rows = db.execute(TESTIMONIAL_SQL + (" AND coalesce(t.status, 'pending') = ?"
                                         if status else "") +
                      " ORDER BY r.responded_at DESC", [status] if status else [])
    result = []
    for row in rows:
        row = dict(row)
        row["changed"] = row["status"] == "approved" and row["quote"] != row["comment"]
        if not row["display_name"]:
            row["display_name"] = row["given_name"] or row["name"]
        result.append(row)
    return result


def moderate(db: sqlite_utils.Database, response_id: int, *, by: int, action: str,
             display_name: str) -> None:
    """Approve (publishing the current words under display_name) or reject a testimonial."""
    if action not in ("approve", "reject", "rename"):
        raise SurveyError(f'action "{action}" is not approve, reject or rename')
    row = db.execute("SELECT comment FROM responses WHERE id = ? AND testimonial_consent = 1 "
                     "AND score >= 9", [response_id]).fetchone()
    if row is None:
        raise NotFound("testimonial", response_id)
    stamp = now()
    with write(db) as conn:
        if action == "rename":
            conn.execute(
                "INSERT INTO testimonials (response_id, display_name) VALUES (?, ?) "
                "ON CONFLICT (response_id) DO UPDATE SET display_name = excluded.display_name",
                [response_id, display_name.strip()])
            return
        conn.execute(
            """
            INSERT INTO testimonials (response_id, status, display_name, quote, reviewed_by,
                                      reviewed_at)
            VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (response_id) DO UPDATE SET status = excluded.status,
                display_name = excluded.display_name,
                quote = CASE WHEN excluded.status = 'approved' THEN excluded.quote
                             ELSE testimonials.quote END,
                reviewed_by = excluded.reviewed_by, reviewed_at = excluded.reviewed_at
            """,
            [response_id, "approved" if action == "approve" else "rejected",
             display_name.strip(), row[0], by, stamp])


def published(db: sqlite_utils.Database, limit: int = 50) -> list[dict]:
    """Return approved testimonials whose authors still consent, newest approval first."""
    rows = db.execute(
        """
        SELECT t.response_id AS id, t.display_name AS name, t.quote, r.score, c.company,
               t.reviewed_at AS approved_at
        FROM testimonials t
        JOIN responses r ON r.id = t.response_id
        JOIN contacts c ON c.id = r.contact_id
        WHERE t.status = 'approved' AND r.testimonial_consent = 1 AND r.score >= 9
          AND t.quote != ''
        ORDER BY t.reviewed_at DESC, t.response_id DESC LIMIT ?
        """, [limit])
    return [dict(r) for r in rows]


# Responses table --------------------------------------------------------------------------


def search_responses(db: sqlite_utils.Database, policy: str, *, query: str = "",
                     campaign_id: int | None = None, automated: bool = False,
                     limit: int = 100, offset: int = 0) -> list[dict]:
    """Return responses, newest first, matching a search in email, name, company or comment."""
    where, params = ["1"], []
    if query:
        like = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append("(c.email LIKE ? ESCAPE '\\' OR c.name LIKE ? ESCAPE '\\' "
                     "OR c.company LIKE ? ESCAPE '\\' OR r.comment LIKE ? ESCAPE '\\')")
        params += [like] * 4
    if campaign_id is not None:
        where.append("r.campaign_id = ?")
        params.append(campaign_id)
    if automated:
        where.append("r.automated = 1 AND r.confirmed = 0")
    rows = db.execute(
        f"""
        SELECT r.id, r.score, r.comment, r.confirmed, r.automated, r.testimonial_consent,
               r.responded_at, r.campaign_id, c.email, c.name, c.company, c.language,
               {counted_sql(policy)} AS counted
        FROM responses r JOIN contacts c ON c.id = r.contact_id
        WHERE {' AND '.join(where)}
        ORDER BY r.responded_at DESC, r.id DESC LIMIT ? OFFSET ?
        """, [*params, limit, offset])
    result = []
    for row in rows:
        row = dict(row)
        row["segment"] = segment(row["score"])
        result.append(row)
    return result


def restore_as_human(db: sqlite_utils.Database, response_id: int, staff_email: str) -> None:
    """Count a response that the click heuristics filtered as automated (issue 4's rule)."""
    humans.restore(db, response_id, staff=staff_email)


# API keys ---------------------------------------------------------------------------------


def _key_hash(key: str) -> str:
    # Keys are long random strings, so a plain SHA-256 suffices (no password stretching).
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(db: sqlite_utils.Database, name: str) -> str:
    """Create an API key; return it (only its hash is kept, so it is shown once)."""
    key = "sm_" + secrets.token_urlsafe(32)
    with write(db) as conn:
        conn.execute("INSERT INTO api_keys (name, prefix, key_hash, created_at) "
                     "VALUES (?, ?, ?, ?)", [name, key[:7], _key_hash(key), now()])
    return key


def check_api_key(db: sqlite_utils.Database, key: str) -> dict | None:
    """Return the key's row when it is valid and not revoked; note when it was last used."""
    row = db.execute("SELECT id, name, last_used_at FROM api_keys "
                     "WHERE key_hash = ? AND revoked_at IS NULL", [_key_hash(key)]).fetchone()
    if row is None:
        return None
    stamp = now()
    # At most one write a minute per key: a busy integration should not cost a commit a call.
    if row["last_used_at"] is None or row["last_used_at"][:16] != stamp[:16]:
        with write(db) as conn:
            conn.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", [stamp, row["id"]])
    return {"id": row["id"], "name": row["name"]}


def list_api_keys(db: sqlite_utils.Database) -> list[dict]:
    """Return every API key's record (never the key itself), oldest first."""
    return [dict(r) for r in db.execute(
        "SELECT id, name, prefix, created_at, last_used_at, revoked_at FROM api_keys "
        "ORDER BY id")]


def revoke_api_key(db: sqlite_utils.Database, key_id: int) -> bool:
    """Revoke a key at once; return False when it was already revoked."""
    with write(db) as conn:
        if conn.execute("SELECT 1 FROM api_keys WHERE id = ?", [key_id]).fetchone() is None:
            raise NotFound("API key", key_id)
        return bool(conn.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            [now(), key_id]).rowcount)
