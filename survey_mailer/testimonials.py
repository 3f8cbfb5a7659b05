"""Testimonials: promoters who consented, published only once staff approve them."""

from __future__ import annotations

import sqlite_utils

from .clock import now
from .db import write
from .errors import NotFound, SurveyError
from .scores import PROMOTER_SQL

STATUSES = ("pending", "approved", "rejected")

TESTIMONIAL_SQL = f"""
    SELECT r.id, r.score, r.comment, r.display_name AS given_name, r.responded_at,
           c.email, c.name, c.company, coalesce(t.status, 'pending') AS status,
           t.display_name, t.quote, t.reviewed_at, u.email AS reviewer
    FROM responses r
    JOIN contacts c ON c.id = r.contact_id
    LEFT JOIN testimonials t ON t.response_id = r.id
    LEFT JOIN staff_users u ON u.id = t.reviewed_by
    WHERE r.testimonial_consent = 1 AND {PROMOTER_SQL}
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
        # The public name is one the promoter typed (or staff chose), never the contact's
        # full name from the CRM: a person consents to be quoted as they wrote it.
        if not row["display_name"]:
            row["display_name"] = row["given_name"]
        result.append(row)
    return result


def moderate(db: sqlite_utils.Database, response_id: int, *, by: int, action: str,
             display_name: str) -> None:
    """Approve (publishing the current words under display_name) or reject a testimonial."""
    if action not in ("approve", "reject", "rename"):
        raise SurveyError(f'action "{action}" is not approve, reject or rename')
    row = db.execute(f"SELECT comment FROM responses r WHERE id = ? AND testimonial_consent = 1"
                     f" AND {PROMOTER_SQL}", [response_id]).fetchone()
    if row is None:
        raise NotFound("testimonial", response_id)
    if action == "approve" and not display_name.strip():
        raise SurveyError("a testimonial is published only under a name: type the name "
                          "its author gave, or reject it")
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
        f"""
        SELECT t.response_id AS id, t.display_name AS name, t.quote, r.score, c.company,
               t.reviewed_at AS approved_at
        FROM testimonials t
        JOIN responses r ON r.id = t.response_id
        JOIN contacts c ON c.id = r.contact_id
        WHERE t.status = 'approved' AND r.testimonial_consent = 1 AND {PROMOTER_SQL}
          AND t.quote != '' AND t.display_name != ''
        ORDER BY t.reviewed_at DESC, t.response_id DESC LIMIT ?
        """, [limit])
    return [dict(r) for r in rows]


def counts(db: sqlite_utils.Database) -> dict[str, int]:
    """Return how many testimonials are pending, approved and rejected."""
    result = dict.fromkeys(STATUSES, 0)
    result.update(db.execute(
        f"SELECT coalesce(t.status, 'pending'), count(*) FROM responses r"
        f" LEFT JOIN testimonials t ON t.response_id = r.id"
        f" WHERE r.testimonial_consent = 1 AND {PROMOTER_SQL} GROUP BY 1").fetchall())
    return result
