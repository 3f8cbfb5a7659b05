"""A home for Delighted's users: its API's objects, shaped from ours (SPEC 11).

Delighted shut down on 30 June 2026. A team that used it points its client at
`/delighted/v1/` with a key made for one campaign (Delighted's project), and its
integrations keep working. This module answers in Delighted's shapes: ids are strings,
times unix seconds. The routes are in landing/delighted_api.py.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import NamedTuple

import sqlite_utils

from . import contacts, imports, nps, transactional
from .clock import now, parse, stamp
from .db import write
from .errors import Invalid, NotFound, Refused
from .humans import reads_responses
from .scores import counted_sql, segment


def unix(stored: str | None) -> int | None:
    """A stored stamp as Delighted's unix seconds."""
    return None if stored is None else int(parse(stored).timestamp())


def from_unix(value: object, field: str) -> str:
    """Unix seconds (as text or a number) as a stored stamp, or raise Invalid naming the field."""
    try:
        seconds = float(value)
        if not math.isfinite(seconds) or not 0 <= seconds < 4102444800:  # before 2100
            raise ValueError(value)
    except (TypeError, ValueError):
        raise Invalid(field, f"{field} must be a time in unix seconds") from None
    return stamp(datetime.fromtimestamp(seconds, UTC))


def _language(locale: object) -> str:
    """Delighted's `locale` (en, es-MX, fr_CA...) as one of our languages; others are en."""
    text = str(locale or "").replace("_", "-").split("-")[0].lower()
    return text if text in contacts.LANGUAGES else "en"


def person_fields(body: dict) -> dict:
    """Return a person's contact fields from a `POST people` body, or raise Invalid."""
    properties = body.get("properties") or {}
    if not isinstance(properties, dict):
        raise Invalid("properties", "properties must be an object")
    attributes, company, language = {}, None, None
    for key, value in properties.items():
        if key == "locale":
            language = _language(value)
        elif key.lower() == "company":
            company = str(value)
        elif value is not None:  # Delighted took numbers and booleans as text
            attributes[key] = value if isinstance(value, str) else json.dumps(value)
    name = body.get("name")
    fields = transactional.check_contact(body.get("email"), name if name else None,
                                         company, language, attributes)
    return fields


def add_person(db: sqlite_utils.Database, campaign_id: int, body: dict, *,
               resurvey_days: int) -> dict:
    """`POST people`: upsert the person and, unless `send` is false, schedule a survey.

    A person who may not be surveyed (unsubscribed, suppressed, surveyed recently) is saved
    with `survey_scheduled_at` null, never an error; an erased one is not saved at all.
    """
    fields = person_fields(body)
    delay = body.get("delay", 0)
    if isinstance(delay, str) and delay.isdigit():
        delay = int(delay)
    send = body.get("send", True) not in (False, "false", "0", 0)
    arguments = {"email": fields["email"], "name": fields.get("name"),
                 "company": fields.get("company"), "language": fields.get("language"),
                 "attributes": fields.get("attributes"), "source": "delighted",
                 "resurvey_days": resurvey_days}
    try:
        result = transactional.request(db, campaign_id, delay_seconds=delay, send=send,
                                       **arguments)
    except Invalid as e:
        if e.field == "delay_seconds":
            raise Invalid("delay", "delay must be a whole number of seconds from 0 to "
                                   f"{transactional.MAX_DELAY}") from None
        raise
    except Refused as e:
        if e.reason == "erased":
            return {"id": None, "email": fields["email"], "name": fields.get("name"),
                    "survey_scheduled_at": None, "properties": body.get("properties") or {}}
        result = transactional.request(db, campaign_id, send=False, **arguments)
    contact = result["contact"]
    scheduled = result["scheduled_at"]
    return {"id": str(contact["id"]), "email": contact["email"], "name": contact["name"] or None,
            "survey_scheduled_at": unix(scheduled) if scheduled else None,
            "properties": json.loads(contact["attributes"])}


class Page(NamedTuple):
    items: list[dict]
    next_after: int | None  # the id to list after, when there is a next page


def people(db: sqlite_utils.Database, *, after: int = 0, per_page: int = 20,
           since: str | None = None, until: str | None = None) -> Page:
    """`GET people`: contacts in the order they were added, a page at a time."""
    where, params = ["c.id > ?", "c.erased_at IS NULL"], [after]
    if since:
        where.append("c.created_at >= ?")
        params.append(since)
    if until:
        where.append("c.created_at <= ?")
        params.append(until)
    rows = db.execute(
        f"""SELECT c.id, c.email, c.name, c.created_at,
                   (SELECT max(sent_at) FROM deliveries d WHERE d.contact_id = c.id
                    AND d.status = 'sent') AS last_sent_at,
                   (SELECT max(responded_at) FROM responses r WHERE r.contact_id = c.id)
                       AS last_responded_at,
                   (SELECT min(due_at) FROM deliveries d WHERE d.contact_id = c.id
                    AND d.status = 'pending') AS next_survey_scheduled_at
            FROM contacts c WHERE {" AND ".join(where)} ORDER BY c.id LIMIT ?""",
        [*params, per_page + 1]).fetchall()
    items = [{"id": str(r["id"]), "email": r["email"], "name": r["name"] or None,
              "phone_number": None, "created_at": unix(r["created_at"]),
              "last_sent_at": unix(r["last_sent_at"]),
              "last_responded_at": unix(r["last_responded_at"]),
              "next_survey_scheduled_at": unix(r["next_survey_scheduled_at"])}
             for r in rows[:per_page]]
    more = len(rows) > per_page
    return Page(items, int(items[-1]["id"]) if more else None)


def erase_person(db: sqlite_utils.Database, identifier: str) -> None:
    """`DELETE people/email:ADDRESS` (or an id): erase the person; NotFound if unknown."""
    kind, _, value = identifier.partition(":")
    if not value:
        kind, value = "id", identifier
    if kind == "id" and value.isascii() and value.isdigit() and len(value) <= 19:
        row = db.execute("SELECT email FROM contacts WHERE id = ? AND erased_at IS NULL",
                         [int(value)]).fetchone()
        if row is None:
            raise NotFound("person", value)
        value = row[0]
    elif kind != "email":
        raise NotFound("person", identifier)
    contacts.erase(db, value)


RESPONSE_ORDERS = {"asc": "r.responded_at, r.id", "desc": "r.responded_at DESC, r.id DESC",
                   "asc:updated_at": "r.updated_at, r.id",
                   "desc:updated_at": "r.updated_at DESC, r.id DESC"}


class ResponseFilter(NamedTuple):
    since: str | None = None
    until: str | None = None
    updated_since: str | None = None
    updated_until: str | None = None
    person_email: str | None = None


EVERY_RESPONSE = ResponseFilter()

RESPONSE_SQL = """
    SELECT r.id, r.score, r.comment, r.responded_at, r.updated_at, r.contact_id,
           c.email, c.name, c.created_at AS person_created_at, c.attributes, c.erased_at
    FROM responses r JOIN contacts c ON c.id = r.contact_id
"""


@reads_responses
def survey_responses(db: sqlite_utils.Database, campaign_id: int, policy: str, *,
                     where: ResponseFilter = EVERY_RESPONSE, order: str = "asc",
                     page: int = 1, per_page: int = 20, expand_person: bool = False,
                     base_url: str = "") -> list[dict]:
    """`GET survey_responses`: the campaign's counted responses, a page at a time."""
    conditions, params = ["r.campaign_id = ?", counted_sql(policy)], [campaign_id]
    for column, value, operator in (("r.responded_at", where.since, ">="),
                                    ("r.responded_at", where.until, "<="),
                                    ("r.updated_at", where.updated_since, ">="),
                                    ("r.updated_at", where.updated_until, "<=")):
        if value is not None:
            conditions.append(f"{column} {operator} ?")
            params.append(value)
    if where.person_email is not None:
        conditions.append("c.email = ?")
        params.append(where.person_email)
    rows = db.execute(
        f"{RESPONSE_SQL} WHERE {' AND '.join(conditions)} ORDER BY {RESPONSE_ORDERS[order]}"
        f" LIMIT ? OFFSET ?", [*params, per_page, (page - 1) * per_page])
    return [response_object(dict(r), expand_person, base_url) for r in rows]


def response_object(row: dict, expand_person: bool, base_url: str) -> dict:
    """One response as Delighted showed it."""
    email = None if row.get("erased_at") else row["email"]  # erased: no address, not a stand-in
    person = {"id": str(row["contact_id"]), "email": email, "name": row["name"] or None,
              "created_at": unix(row["person_created_at"])} if expand_person \
        else str(row["contact_id"])
    detractor = segment(row["score"]) == "detractor"
    return {"id": str(row["id"]), "person": person, "survey_type": "nps",
            "score": row["score"], "comment": row["comment"] or None,
            "permalink": f"{base_url}/staff/followups/{row['id']}" if detractor
            else f"{base_url}/staff/responses",
            "created_at": unix(row["responded_at"]), "updated_at": unix(row["updated_at"]),
            "person_properties": json.loads(row["attributes"] or "{}"), "notes": [],
            "tags": [], "additional_answers": []}


def add_response(db: sqlite_utils.Database, campaign_id: int, body: dict,
                 base_url: str) -> dict:
    """`POST survey_responses`: import one past response (counted, never an alert)."""
    score = body.get("score")
    if not isinstance(score, int) or isinstance(score, bool) or not 0 <= score <= 10:
        raise Invalid("score", "score must be a whole number from 0 to 10")
    comment = body.get("comment") or ""
    if not isinstance(comment, str) or len(comment) > imports.MAX_COMMENT:
        raise Invalid("comment", f"comment must be text of at most {imports.MAX_COMMENT} "
                                 f"characters")
    created = body.get("created_at")
    responded_at = now() if created is None else from_unix(created, "created_at")
    properties = body.get("person_properties") or {}
    with write(db) as conn:
        if body.get("person") is not None:
            person = str(body["person"])
            found = conn.execute("SELECT * FROM contacts WHERE id = ? AND erased_at IS NULL",
                                 [int(person) if person.isdigit() and len(person) < 19
                                  else -1]).fetchone()
            if found is None:
                raise Invalid("person", f'no person has the id "{person[:40]}"')
            contact = dict(found)
        else:
            fields = person_fields({"email": body.get("person_email"),
                                    "properties": properties})
            if contacts.is_erased(db, fields["email"]):
                raise Invalid("person_email", "this person asked to be forgotten")
            contact = contacts.upsert(conn, email=fields["email"],
                                      company=fields.get("company"),
                                      language=fields.get("language"),
                                      attributes=fields.get("attributes"))
        row = imports.Row(0, contact["email"], score, responded_at, comment, None, None, {})
        response_id = imports.add(conn, campaign_id, row, contact=contact)
        if response_id is None:
            raise Invalid("person", "this person already has a response in this project")
        found = conn.execute(f"{RESPONSE_SQL} WHERE r.id = ?", [response_id]).fetchone()
    return response_object(dict(found), False, base_url)


def metrics(db: sqlite_utils.Database, campaign_id: int, policy: str, *,
            since: str | None = None, until: str | None = None) -> dict:
    """`GET metrics`: the campaign's NPS and segment counts, as Delighted gave them."""
    conditions, params = ["r.campaign_id = ?", counted_sql(policy)], [campaign_id]
    if since:
        conditions.append("r.responded_at >= ?")
        params.append(since)
    if until:
        conditions.append("r.responded_at <= ?")
        params.append(until)
    counts = {name: 0 for name in ("promoter", "passive", "detractor")}
    for score, count in db.execute(
            f"SELECT r.score, count(*) FROM responses r WHERE {' AND '.join(conditions)}"
            f" GROUP BY r.score", params):
        counts[segment(score)] += count
    total = sum(counts.values())
    nps_value, _ = nps.score(counts["promoter"], counts["detractor"], total)
    result = {"nps": round(nps_value) if total else 0}
    for name, count in counts.items():
        result[f"{name}_count"] = count
        result[f"{name}_percent"] = round(100 * count / total, 1) if total else 0.0
    result["response_count"] = total
    return result


def unsubscribes(db: sqlite_utils.Database, *, page: int = 1, per_page: int = 20) -> list:
    """`GET unsubscribes`: people who unsubscribed, oldest first."""
    rows = db.execute(
        "SELECT id, email, name, unsubscribed_at FROM contacts WHERE unsubscribed_at IS NOT"
        " NULL AND erased_at IS NULL ORDER BY unsubscribed_at, id LIMIT ? OFFSET ?",
        [per_page, (page - 1) * per_page])
    return [{"person_id": str(r["id"]), "email": r["email"], "name": r["name"] or None,
             "unsubscribed_at": unix(r["unsubscribed_at"])} for r in rows]


def unsubscribe(db: sqlite_utils.Database, email: object) -> None:
    """`POST unsubscribes`: never survey this person again (added if unknown)."""
    fields = transactional.check_contact(email)
    if contacts.is_erased(db, fields["email"]):
        return
    with write(db) as conn:
        contact = contacts.upsert(conn, email=fields["email"])
    contacts.unsubscribe(db, contact["id"], method="api")


def bounces(db: sqlite_utils.Database, *, page: int = 1, per_page: int = 20) -> list:
    """`GET bounces`: addresses suppressed after a permanent bounce, oldest first."""
    rows = db.execute(
        "SELECT id, email, name, suppressed_at FROM contacts WHERE suppressed_reason LIKE"
        " 'bounce%' AND erased_at IS NULL ORDER BY suppressed_at, id LIMIT ? OFFSET ?",
        [per_page, (page - 1) * per_page])
    return [{"person_id": str(r["id"]), "email": r["email"], "name": r["name"] or None,
             "bounced_at": unix(r["suppressed_at"])} for r in rows]
