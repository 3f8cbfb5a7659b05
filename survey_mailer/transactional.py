"""Transactional surveys: one email after an event (a deal closed, a ticket solved).

A program asks for a survey for one person (the API's `POST /api/v1/surveys`, Delighted's
`POST people`): the contact is added or updated and the campaign gets one delivery for
them, due after a delay. The worker sends it when due, through the usual sender. A person
is never asked twice for one campaign, nor within SURVEY_RESURVEY_DAYS of another survey,
nor at all once unsubscribed, suppressed or erased: those requests are refused with a
reason, and nothing is written.
"""

from __future__ import annotations

import re

import sqlite_utils

from . import campaigns, contacts
from . import idempotency as idempotency_
from .addresses import email_problem, text_problem
from .clock import ago, iso, now, shift
from .db import write
from .errors import Invalid, NotFound, Refused, SurveyError

MAX_DELAY = 31_536_000  # a year, in seconds
MAX_EVENT = 100
ATTRIBUTE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_ .-]{0,99}$")


def check_contact(email: object, name: object = None, company: object = None,
                  language: object = None, properties: object = None) -> dict:
    """Return the contact's fields checked and cleaned, or raise Invalid naming the field."""
    if not isinstance(email, str) or not email.strip():
        raise Invalid("email", "email is required: the address to survey")
    email = email.strip()
    if len(email) > 254:
        raise Invalid("email", "email is longer than 254 characters: not an address")
    problem = email_problem(email)
    if problem:
        raise Invalid("email", problem)
    fields = {"email": email}
    for field, value, limit in (("name", name, 200), ("company", company, 200)):
        if value is not None:
            if not isinstance(value, str) or len(value) > limit:
                raise Invalid(field, f"{field} must be text of at most {limit} characters")
            problem = text_problem(field, value)
            if problem:
                raise Invalid(field, problem)
            fields[field] = value.strip()
    if language is not None:
        if not isinstance(language, str) or language.lower() not in contacts.LANGUAGES:
            raise Invalid("language", f'language must be one of '
                                      f'{", ".join(contacts.LANGUAGES)}')
        fields["language"] = language.lower()
    if properties is not None:
        if not isinstance(properties, dict):
            raise Invalid("properties", "properties must be an object of text values")
        for key, value in properties.items():
            if not ATTRIBUTE_RE.match(key) or not isinstance(value, str) or len(value) > 1000:
                raise Invalid("properties", f'properties["{str(key)[:100]}"] must be text '
                                            f"(at most 1000 characters) under a simple name")
        fields["attributes"] = {k.lower(): v for k, v in properties.items()}
    return fields


def _refusal(db: sqlite_utils.Database, conn, contact: dict | None, campaign_id: int,
             resurvey_days: int) -> Refused | None:
    if contact is None:
        return None
    if contact["unsubscribed_at"]:
        return Refused("unsubscribed", "this person unsubscribed from surveys")
    if contact["suppressed_at"]:
        return Refused("suppressed", "mail to this address bounced or was reported as spam")
    # A delivery cancelled before it went out does not count: the request schedules it again.
    if conn.execute("SELECT 1 FROM deliveries WHERE campaign_id = ? AND contact_id = ? AND "
                    "NOT (status = 'skipped' AND error = 'cancelled')",
                    [campaign_id, contact["id"]]).fetchone():
        return Refused("already_surveyed", "this person already has this campaign's survey")
    recent = conn.execute(
        """SELECT 1 FROM deliveries WHERE contact_id = ? AND campaign_id != ?
           AND (status IN ('sending', 'sent') OR status = 'pending')
           AND coalesce(sent_at, due_at, created_at) > ? LIMIT 1""",
        [contact["id"], campaign_id, ago(resurvey_days * 86400)]).fetchone()
    if recent:
        return Refused("recently_surveyed", f"this person was surveyed in the last "
                                            f"{resurvey_days} days (SURVEY_RESURVEY_DAYS)")
    return None


def request(db: sqlite_utils.Database, campaign_id: int, *, email: str,
            name: str | None = None, company: str | None = None,
            language: str | None = None, attributes: dict | None = None,
            delay_seconds: int = 0, event: str | None = None, resurvey_days: int = 90,
            source: str = "api", send: bool = True,
            idempotency: idempotency_.Key | None = None) -> dict:
    """Add or update the contact and schedule the campaign's survey for them.

    Return the delivery (`delivery_id`, `contact_id`, `campaign`, `status`, `scheduled_at`);
    with `send=False`, only the contact (`delivery_id` None). Raise Refused (nothing written)
    when this person must not be surveyed, NotFound for an unknown campaign. With
    `idempotency`, the answer (`answer()` or `refusal_answer()`) is kept in the same
    transaction; a key answered before raises idempotency.Replay and writes nothing.
    """
    if not isinstance(delay_seconds, int) or isinstance(delay_seconds, bool) \
            or not 0 <= delay_seconds <= MAX_DELAY:
        raise Invalid("delay_seconds", f"delay_seconds must be a whole number from 0 to "
                                       f"{MAX_DELAY}")
    if event is not None and (not isinstance(event, str) or len(event) > MAX_EVENT):
        raise Invalid("event", f"event must be text of at most {MAX_EVENT} characters")
    campaigns.get(db, campaign_id)
    stamp = now()
    result = refusal = None
    with write(db) as conn:
        if idempotency is not None:
            replay = idempotency_.recall(conn, idempotency)
            if replay is not None:
                raise replay
        if contacts.is_erased(db, email):
            refusal = Refused("erased", "this person asked to be forgotten; they are never "
                                        "added back")
        elif send:
            found = conn.execute("SELECT * FROM contacts WHERE email = ?", [email]).fetchone()
            refusal = _refusal(db, conn, dict(found) if found else None, campaign_id,
                               resurvey_days)
        if refusal is not None:
            if idempotency is not None:  # the only row written: the answer, kept
                idempotency_.remember(conn, idempotency, 409, refusal_answer(refusal))
        else:
            contact = contacts.upsert(conn, email=email, name=name, company=company,
                                      language=language, attributes=attributes)
            result = {"delivery_id": None, "contact_id": contact["id"],
                      "campaign": campaign_id, "status": "saved", "scheduled_at": None,
                      "contact": contact}
            if send:
                due = shift(stamp, delay_seconds)
                # A cancelled delivery of this campaign (the only kind _refusal lets
                # through) is scheduled again: one row per contact and campaign.
                (delivery_id,) = conn.execute(
                    """INSERT INTO deliveries (campaign_id, contact_id, status, created_at,
                                               due_at, event, source)
                       VALUES (?, ?, 'pending', ?, ?, ?, ?)
                       ON CONFLICT (campaign_id, contact_id) DO UPDATE SET
                           status = 'pending', error = NULL, created_at = excluded.created_at,
                           due_at = excluded.due_at, event = excluded.event,
                           source = excluded.source
                       WHERE deliveries.status = 'skipped' AND deliveries.error = 'cancelled'
                       RETURNING id""",
                    [campaign_id, contact["id"], stamp, due, event, source]).fetchone()
                result.update(delivery_id=delivery_id, status="scheduled",
                              scheduled_at=iso(due))
            if idempotency is not None:
                idempotency_.remember(conn, idempotency, 202, answer(result))
    if refusal is not None:
        raise refusal
    return result


ANSWER_FIELDS = ("delivery_id", "contact_id", "campaign", "status", "scheduled_at")


def answer(result: dict) -> dict:
    """Return what a program is told of a request's result (without the contact's row)."""
    return {field: result[field] for field in ANSWER_FIELDS}


def refusal_answer(refusal: Refused) -> dict:
    """Return what a program is told of a refusal: the message and the reason."""
    return {"error": str(refusal), "reason": refusal.reason}


class AlreadySent(SurveyError):
    """The delivery has gone out (or is going out): it can no longer be cancelled."""

    def __init__(self, delivery_id: int, status: str):
        super().__init__(f"delivery {delivery_id} is {status}: too late to cancel")
        self.delivery_id = delivery_id
        self.status = status


def cancel(db: sqlite_utils.Database, delivery_id: int,
           campaign_id: int | None = None) -> bool:
    """Cancel a delivery not yet sent; return False when it was cancelled already.

    With `campaign_id`, a delivery of another campaign is NotFound (a key for one
    campaign does not learn of others).
    """
    with write(db) as conn:
        row = conn.execute("SELECT status, error, campaign_id FROM deliveries WHERE id = ?",
                           [delivery_id]).fetchone()
        if row is None or campaign_id not in (None, row["campaign_id"]):
            raise NotFound("delivery", delivery_id)
        if row["status"] == "skipped" and row["error"] == "cancelled":
            return False
        if row["status"] != "pending":
            raise AlreadySent(delivery_id, row["status"])
        conn.execute("UPDATE deliveries SET status = 'skipped', error = 'cancelled' "
                     "WHERE id = ?", [delivery_id])
    return True


def cancel_pending(db: sqlite_utils.Database, email: str,
                   campaign_id: int | None = None) -> int:
    """Cancel every unsent delivery of one person (in one campaign); return how many."""
    where = "AND campaign_id = ?" if campaign_id is not None else ""
    with write(db) as conn:
        return conn.execute(
            f"UPDATE deliveries SET status = 'skipped', error = 'cancelled' WHERE status = "
            f"'pending' AND contact_id = (SELECT id FROM contacts WHERE email = ?) {where}",
            [email, *([campaign_id] if campaign_id is not None else [])]).rowcount
