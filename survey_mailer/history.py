"""A contact's whole history: every delivery, click (and how it was classified), response
and case, newest first. The contact's page and a case's page show it (SPEC 12, 13)."""

from __future__ import annotations

import json

import sqlite_utils

from .errors import NotFound
from .humans import reads_responses
from .scores import counted_sql, segment


@reads_responses
def of_contact(db: sqlite_utils.Database, contact_id: int, policy: str) -> dict:
    """Return the contact (attributes decoded) with `surveys`: one per delivery, newest first.

    Each survey has its campaign, delivery state, clicks, response (counted or not) and,
    for a counted detractor, its case status.
    """
    row = db.execute("SELECT * FROM contacts WHERE id = ?", [contact_id]).fetchone()
    if row is None:
        raise NotFound("contact", contact_id)
    contact = dict(row)
    contact["attributes"] = json.loads(contact["attributes"] or "{}")
    surveys = []
    for d in db.execute(
            f"""
            SELECT d.id AS delivery_id, d.status, d.sent_at, d.due_at, d.event, d.source,
                   d.error, cp.id AS campaign_id, cp.name AS campaign,
                   r.id AS response_id, r.score, r.comment, r.confirmed, r.automated,
                   r.seen, r.imported,
                   r.responded_at, r.testimonial_consent, {counted_sql(policy)} AS counted,
                   k.status AS case_status,
                   (SELECT count(*) FROM reminders m WHERE m.delivery_id = d.id
                      AND m.status = 'sent') AS reminded
            FROM deliveries d JOIN campaigns cp ON cp.id = d.campaign_id
            LEFT JOIN responses r ON r.delivery_id = d.id
            LEFT JOIN cases k ON k.response_id = r.id
            WHERE d.contact_id = ?
            ORDER BY coalesce(d.sent_at, d.due_at, d.created_at) DESC, d.id DESC""",
            [contact_id]):
        survey = dict(d)
        survey["segment"] = segment(survey["score"]) if survey["score"] is not None else None
        if survey["segment"] == "detractor" and survey["counted"] and not survey["imported"]:
            survey["case_status"] = survey["case_status"] or "new"
        survey["clicks"] = [dict(c) for c in db.execute(
            "SELECT score, kind, method, clicked_at, automated, reason, seen FROM clicks"
            " WHERE delivery_id = ? ORDER BY id", [survey["delivery_id"]])]
        surveys.append(survey)
    contact["surveys"] = surveys
    return contact
