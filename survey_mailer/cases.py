"""Follow-up cases: every counted detractor response is one, with status, assignee, notes."""

from __future__ import annotations

import sqlite_utils

from .clock import ago, now, shift
from .db import write
from .errors import NotFound, SurveyError
from .humans import live_sql, reads_responses
from .scores import DETRACTOR_SQL, counted_sql

STATUSES = ("new", "contacted", "resolved")

CASE_SQL = """
    SELECT r.id, r.score, r.comment, r.contact_ok, r.responded_at, r.created_at,
           r.campaign_id, r.delivery_id, r.contact_id,
           c.email, c.name, c.company, c.language, cp.name AS campaign_name,
           coalesce(k.status, 'new') AS status, k.assignee_id, u.email AS assignee,
           k.updated_at
    FROM responses r
    JOIN contacts c ON c.id = r.contact_id
    JOIN campaigns cp ON cp.id = r.campaign_id
    LEFT JOIN cases k ON k.response_id = r.id
    LEFT JOIN staff_users u ON u.id = k.assignee_id
"""
# A case: a counted detractor given here (imported history is never a case).
CASE_SQL_WHERE = f"{DETRACTOR_SQL} AND {live_sql()}"


@reads_responses
def list_cases(db: sqlite_utils.Database, policy: str, *, status: str | None = None,
               assignee_id: int | None = None, unassigned: bool = False,
               campaign_id: int | None = None, company: str | None = None,
               sla_hours: float | None = None, limit: int = 200) -> list[dict]:
    """Return follow-up cases, newest first, filtered; each says whether it is overdue.

    `status` may also be "overdue": new for longer than `sla_hours`.
    """
    where = [counted_sql(policy), CASE_SQL_WHERE]
    params: list = []
    cutoff = ago(sla_hours * 3600) if sla_hours is not None else None
    if status == "overdue":
        where.append("coalesce(k.status, 'new') = 'new' AND r.created_at <= ?")
        params.append(cutoff or "")
    elif status:
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
    if company is not None:
        where.append("c.company = ?")
        params.append(company)
    rows = db.execute(
        f"{CASE_SQL} WHERE {' AND '.join(where)} ORDER BY r.responded_at DESC, r.id DESC "
        f"LIMIT ?", [*params, limit])
    return [_with_overdue(dict(r), cutoff) for r in rows]


def _with_overdue(case: dict, cutoff: str | None) -> dict:
    case["overdue"] = bool(cutoff is not None and case["status"] == "new"
                           and case["created_at"] <= cutoff)
    return case


@reads_responses
def overdue(db: sqlite_utils.Database, policy: str, sla_hours: float,
            since: str | None = None, until: str | None = None) -> list[dict]:
    """Return every case still new after `sla_hours`, oldest first.

    `since` keeps the cases answered after that moment; `until` is the moment "now" is.
    """
    cutoff = shift(until, -sla_hours * 3600) if until else ago(sla_hours * 3600)
    rows = db.execute(
        f"{CASE_SQL} WHERE {counted_sql(policy)} AND {CASE_SQL_WHERE}"
        f" AND coalesce(k.status, 'new') = 'new' AND r.created_at <= ? AND r.created_at > ?"
        f" ORDER BY r.created_at, r.id", [cutoff, since or ""])
    return [dict(r, overdue=True) for r in rows]


@reads_responses
def case_counts(db: sqlite_utils.Database, policy: str,
                detractors: int | None = None) -> dict[str, int]:
    """Return how many cases are new, contacted and resolved.

    Only cases someone touched have a row; the rest are new. `detractors`, when the caller
    knows it from a report, saves counting them again.
    """
    if detractors is None:
        detractors = db.execute(f"SELECT count(*) FROM responses r "
                                f"WHERE {counted_sql(policy)} AND {DETRACTOR_SQL}").fetchone()[0]
    # Imported history is never a case (few rows: the partial index responses_imported).
    detractors -= db.execute(f"SELECT count(*) FROM responses r WHERE r.imported = 1"
                             f" AND {counted_sql(policy)} AND {DETRACTOR_SQL}").fetchone()[0]
    counts = dict.fromkeys(STATUSES, 0)
    counts.update({r[0]: r[1] for r in db.execute(
        f"SELECT k.status, count(*) FROM cases k JOIN responses r ON r.id = k.response_id "
        f"WHERE {counted_sql(policy)} AND {CASE_SQL_WHERE} GROUP BY k.status")})
    counts["new"] = detractors - counts["contacted"] - counts["resolved"]
    return counts


@reads_responses
def get_case(db: sqlite_utils.Database, response_id: int, policy: str) -> dict:
    """Return one case with its notes, oldest note first."""
    row = db.execute(f"{CASE_SQL} WHERE r.id = ? AND {CASE_SQL_WHERE} AND {counted_sql(policy)}",
                     [response_id]).fetchone()
    if row is None:
        raise NotFound("case", response_id)
    case = dict(row)
    case["notes"] = [dict(n) for n in db.execute(
        "SELECT n.id, n.body, n.created_at, coalesce(u.email, 'deleted account') AS author, "
        "x.status AS reply_status, x.last_error AS reply_error "
        "FROM case_notes n LEFT JOIN staff_users u ON u.id = n.author_id "
        "LEFT JOIN notifications x ON x.id = n.notification_id "
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
