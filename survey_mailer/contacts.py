"""Contacts: CSV import (all or nothing), listing, unsubscribing and erasure."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from typing import IO, NamedTuple

import sqlite_utils

from . import csvfiles
from .addresses import email_problem, shown, text_problem
from .clock import now
from .db import write
from .errors import ImportFailed, NotFound

LANGUAGES = ("en", "es", "fr", "sv")
CORE_COLUMNS = ("email", "name", "company", "language")


def _text(label: str, value: str) -> tuple[str, str | None]:
    """Return a name or company cleaned for a header, and why it cannot be used (or None).

    A tab is cleaned to a space: spreadsheets and copy-paste leave them, and it means a space.
    A line break or another control character is refused: it is a broken row or an attempt to
    add headers (Bcc:) to the mail, and cleaning it would silently import a garbled name.
    """
    value = value.replace("\t", " ").strip()
    return value, text_problem(label, value)


def parse_csv(source: bytes | IO[bytes] | IO[str]) -> list[dict]:
    """Read and validate contact rows; raise ImportFailed listing every bad line.

    `source` is the file's bytes or a binary stream (its encoding and delimiter are
    detected, see csvfiles), or a text stream already decoded.
    """
    table = csvfiles.Table(source, lambda h: h.strip().lower(),
                           "a header row with an email column is required")
    header = table.header
    if "email" not in header:
        raise ImportFailed([f"line 1: no \"email\" column in the header ({', '.join(header)})"])
    rows: list[dict] = []
    problems = table.problems
    seen: dict[str, int] = {}
    extra = [h for h in header if h not in CORE_COLUMNS]
    for line, record in table.rows():
        email = record["email"]
        language = record.get("language", "").lower() or "en"
        name, name_problem = _text("name", record.get("name", ""))
        company, company_problem = _text("company", record.get("company", ""))
        if not email:
            problems.append(f"line {line}: email is empty")
        elif email_problem(email):
            problems.append(f"line {line}: {email_problem(email)}")
        elif email.lower() in seen:
            problems.append(
                f"line {line}: \"{email}\" already appears on line {seen[email.lower()]}")
        elif language not in LANGUAGES:
            problems.append(
                f"line {line}: unknown language \"{shown(record['language'])}\" "
                f"(use one of {', '.join(LANGUAGES)})")
        elif name_problem or company_problem:
            problems.append(f"line {line}: {name_problem or company_problem}")
        else:
            seen[email.lower()] = line
            rows.append({
                "email": email,
                "name": name,
                "company": company,
                "language": language,
                "attributes": json.dumps(
                    {k: record[k] for k in extra if record[k]}, ensure_ascii=False),
            })
    if problems:
        raise ImportFailed(problems)
    return rows


class Imported(NamedTuple):
    added: int
    updated: int
    erased: int  # skipped: these people asked to be forgotten

    def __str__(self) -> str:
        return f"{self.added} added, {self.updated} updated" + (
            f", {self.erased} skipped: erased" if self.erased else "")


def import_rows(db: sqlite_utils.Database, rows: Iterable[dict]) -> Imported:
    """Insert or update contacts by email (case-insensitive), skipping erased addresses."""
    rows = list(rows)
    stamp = now()
    with write(db) as conn:
        if rows and conn.execute("SELECT 1 FROM erased_addresses LIMIT 1").fetchone():
            kept = [row for row in rows if not is_erased(db, row["email"])]
            erased, rows = len(rows) - len(kept), kept
        else:
            erased = 0
        existing = {
            r[0].lower() for r in conn.execute("SELECT email FROM contacts")
        } if rows else set()
        conn.executemany(
            """
            INSERT INTO contacts (email, name, company, language, attributes,
                                  created_at, updated_at)
            VALUES (:email, :name, :company, :language, :attributes, :stamp, :stamp)
            ON CONFLICT (email) DO UPDATE SET
                name = excluded.name,
                company = excluded.company,
                language = excluded.language,
                attributes = json_patch(contacts.attributes, excluded.attributes),
                updated_at = excluded.updated_at
            """,
            ({**row, "stamp": stamp} for row in rows),
        )
    updated = sum(1 for row in rows if row["email"].lower() in existing)
    return Imported(len(rows) - updated, updated, erased)


def import_csv(db: sqlite_utils.Database,
               source: bytes | IO[bytes] | IO[str]) -> Imported:
    """Validate a whole CSV file, then import it in one transaction."""
    return import_rows(db, parse_csv(source))


def get(db: sqlite_utils.Database, contact_id: int) -> dict:
    row = db.execute("SELECT * FROM contacts WHERE id = ?", [contact_id]).fetchone()
    if row is None:
        raise NotFound("contact", contact_id)
    return dict(row)


def get_by_email(db: sqlite_utils.Database, email: str) -> dict:
    row = db.execute("SELECT * FROM contacts WHERE email = ?", [email]).fetchone()
    if row is None:
        raise NotFound("contact", email)
    return dict(row)


def unsubscribe(db: sqlite_utils.Database, contact_id: int, *, method: str,
                delivery_id: int | None = None) -> bool:
    """Unsubscribe a contact; return False when they already were."""
    stamp = now()
    with write(db) as conn:
        changed = conn.execute(
            "UPDATE contacts SET unsubscribed_at = ?, updated_at = ? "
            "WHERE id = ? AND unsubscribed_at IS NULL",
            [stamp, stamp, contact_id],
        ).rowcount
        if changed:
            conn.execute(
                "INSERT INTO unsubscribes (contact_id, delivery_id, method, created_at) "
                "VALUES (?, ?, ?, ?)",
                [contact_id, delivery_id, method, stamp],
            )
    return bool(changed)


def list_contacts(db: sqlite_utils.Database) -> list[dict]:
    """Return every contact, attributes decoded, in import order."""
    rows = []
    for row in db.execute("SELECT * FROM contacts ORDER BY id"):
        row = dict(row)
        row["attributes"] = json.loads(row["attributes"])
        rows.append(row)
    return rows


STATUSES = ("subscribed", "unsubscribed", "suppressed", "erased")
STATUS_SQL = {
    "subscribed": "c.unsubscribed_at IS NULL AND c.suppressed_at IS NULL"
                  " AND c.erased_at IS NULL",
    "unsubscribed": "c.unsubscribed_at IS NOT NULL AND c.erased_at IS NULL",
    "suppressed": "c.suppressed_at IS NOT NULL AND c.erased_at IS NULL",
    "erased": "c.erased_at IS NOT NULL",
}


def search(db: sqlite_utils.Database, *, q: str = "", attribute: str = "", value: str = "",
           status: str = "", page: int = 1, per_page: int = 50) -> tuple[list[dict], int]:
    """Return one page of contacts matching a search, newest first, and how many match.

    `q` is matched in the name, email and company; `attribute` = `value` (any value when
    empty) filters by an attribute; `status` is one of STATUSES (every contact when empty).
    """
    where, params = ["1"], []
    if q.strip():
        like = "%" + (q.strip().replace("\\", "\\\\").replace("%", "\\%")
                      .replace("_", "\\_")) + "%"
        where.append("(c.name LIKE ? ESCAPE '\\' OR c.email LIKE ? ESCAPE '\\'"
                     " OR c.company LIKE ? ESCAPE '\\')")
        params += [like, like, like]
    if attribute:
        if value:
            where.append("json_extract(c.attributes, ?) = ?")
            params += [f'$."{attribute}"', value]
        else:
            where.append("json_extract(c.attributes, ?) IS NOT NULL")
            params.append(f'$."{attribute}"')
    if status in STATUS_SQL:
        where.append(STATUS_SQL[status])
    condition = " AND ".join(where)
    total = db.execute(f"SELECT count(*) FROM contacts c WHERE {condition}", params
                       ).fetchone()[0]
    rows = []
    for row in db.execute(f"SELECT * FROM contacts c WHERE {condition} ORDER BY c.id DESC"
                          f" LIMIT ? OFFSET ?", [*params, per_page, (page - 1) * per_page]):
        row = dict(row)
        row["attributes"] = json.loads(row["attributes"])
        row["status"] = ("erased" if row["erased_at"] else "suppressed" if row["suppressed_at"]
                         else "unsubscribed" if row["unsubscribed_at"] else "subscribed")
        rows.append(row)
    return rows, total


def attribute_names(db: sqlite_utils.Database, sample: int = 2000) -> list[str]:
    """Return the attribute names of the latest contacts (enough for a menu, fast on millions)."""
    rows = db.execute(
        "SELECT DISTINCT j.key FROM (SELECT attributes FROM contacts ORDER BY id DESC "
        "LIMIT ?) AS c, json_each(c.attributes) AS j ORDER BY j.key", [sample])
    return [r[0] for r in rows]


def has_attribute(db: sqlite_utils.Database, name: str) -> bool:
    """Return whether any contact has an attribute of this name."""
    return db.execute(
        "SELECT 1 FROM contacts c, json_each(c.attributes) AS j WHERE j.key = ? LIMIT 1",
        [name]).fetchone() is not None


# One contact at a time (the API), and erasure -------------------------------------------


def email_hash(db: sqlite_utils.Database, email: str) -> str:
    """Return the keyed hash an erased address is remembered by."""
    (key,) = db.execute("SELECT value FROM keys WHERE name = 'erasure'").fetchone()
    return hmac.new(bytes.fromhex(key), email.strip().lower().encode(),
                    hashlib.sha256).hexdigest()


def is_erased(db: sqlite_utils.Database, email: str) -> bool:
    """Return whether this address belongs to a person who asked to be forgotten."""
    return db.execute("SELECT 1 FROM erased_addresses WHERE email_hash = ?",
                      [email_hash(db, email)]).fetchone() is not None


def upsert(conn, *, email: str, name: str | None = None, company: str | None = None,
           language: str | None = None, attributes: dict[str, str] | None = None) -> dict:
    """Insert or update one contact inside the caller's write transaction; return its row.

    Fields left as None keep their stored value; attributes are merged. The caller checks
    the values (`check_contact`) and that the address was not erased.
    """
    stamp = now()
    conn.execute(
        """
        INSERT INTO contacts (email, name, company, language, attributes, created_at,
                              updated_at)
        VALUES (:email, coalesce(:name, ''), coalesce(:company, ''), coalesce(:language, 'en'),
                :attributes, :stamp, :stamp)
        ON CONFLICT (email) DO UPDATE SET
            name = coalesce(:name, contacts.name),
            company = coalesce(:company, contacts.company),
            language = coalesce(:language, contacts.language),
            attributes = json_patch(contacts.attributes, :attributes),
            updated_at = :stamp
        """,
        {"email": email, "name": name, "company": company, "language": language,
         "attributes": json.dumps(attributes or {}, ensure_ascii=False), "stamp": stamp})
    return dict(conn.execute("SELECT * FROM contacts WHERE email = ?", [email]).fetchone())


class Erased(NamedTuple):
    responses: int  # kept, anonymous: their scores still count
    cancelled: int  # surveys not yet sent, cancelled


def erase(db: sqlite_utils.Database, email: str) -> Erased | None:
    """Forget a person for good; return what was kept and cancelled, None if already erased.

    Their address, name, attributes, comments, testimonials, case notes, theme tags, click
    details (user agents, IP hashes) and what alerts and SES events held of them are
    removed. The contact stays as an anonymous row with its company and language, so its
    scores still count in the NPS and in its account. The address is kept only as a keyed
    hash (`email_hash`), so no import or API request ever adds the person back. Raise
    NotFound for an address that was never a contact.
    """
    stamp = now()
    with write(db) as conn:
        row = conn.execute("SELECT id FROM contacts WHERE email = ?", [email.strip()]
                           ).fetchone()
        if row is None:
            if is_erased(db, email):
                return None
            raise NotFound("contact", email)
        contact_id = row[0]
        conn.execute("INSERT OR IGNORE INTO erased_addresses (email_hash, erased_at)"
                     " VALUES (?, ?)", [email_hash(db, email), stamp])
        conn.execute(
            "UPDATE contacts SET email = ?, name = '', attributes = '{}', erased_at = ?,"
            " updated_at = ? WHERE id = ?", [f"erased:{contact_id}", stamp, stamp, contact_id])
        theirs = "(SELECT id FROM responses WHERE contact_id = :id)"
        deliveries = "(SELECT id FROM deliveries WHERE contact_id = :id)"
        params = {"id": contact_id, "email": email.strip().lower()}
        for statement in (
            "UPDATE responses SET comment = '', display_name = '', contact_ok = 0,"
            " testimonial_consent = 0 WHERE contact_id = :id",
            f"DELETE FROM testimonials WHERE response_id IN {theirs}",
            f"DELETE FROM case_notes WHERE response_id IN {theirs}",
            f"DELETE FROM response_themes WHERE response_id IN {theirs}",
            f"UPDATE alert_threads SET subject = '' WHERE response_id IN {theirs}",
            # An alert not yet sent about a person who asked to be forgotten is not sent.
            f"DELETE FROM notifications WHERE response_id IN {theirs}"
            " AND status NOT IN ('sent', 'failed')",
            f"UPDATE notifications SET payload = '{{}}' WHERE response_id IN {theirs}",
            # A reply from a case went to them: its target and any relay error name them.
            f"UPDATE notifications SET target = '', last_error = NULL"
            f" WHERE response_id IN {theirs} AND lower(target) = :email",
            f"UPDATE clicks SET user_agent = '', ip_hash = '' WHERE delivery_id IN"
            f" {deliveries}",
            "UPDATE deliveries SET error = NULL WHERE contact_id = :id"
            " AND error IS NOT NULL AND error != 'cancelled'",
            f"UPDATE ses_events SET recipients = '', detail = '', payload = '{{}}'"
            f" WHERE delivery_id IN {deliveries} OR instr(lower(recipients), :email)",
        ):
            conn.execute(statement, params)
        cancelled = conn.execute(
            "UPDATE deliveries SET status = 'skipped', error = 'cancelled'"
            " WHERE contact_id = ? AND status = 'pending'", [contact_id]).rowcount
        kept = conn.execute("SELECT count(*) FROM responses WHERE contact_id = ?",
                            [contact_id]).fetchone()[0]
    return Erased(kept, cancelled)
