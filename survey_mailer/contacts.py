"""Contacts: CSV import (all or nothing), listing and unsubscribing."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable
from typing import IO

import sqlite_utils

from .clock import now
from .db import write
from .errors import ImportFailed, NotFound

LANGUAGES = ("en", "es", "fr", "sv")
CORE_COLUMNS = ("email", "name", "company", "language")
# Deliberately simple: one @, no spaces, a dot in the domain. Mail servers decide the rest.
EMAIL_RE = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\".]{2,}$")


def valid_email(email: str) -> bool:
    """Tell whether a string looks like a deliverable address."""
    return email.isascii() and bool(EMAIL_RE.match(email)) and len(email) <= 254


def non_ascii_problem(email: str) -> str | None:
    """Say why a non-ASCII address cannot be sent to; None for an ASCII one.

    Messages are built without SMTPUTF8 (neither SES nor most relays take it), so an
    address must be ASCII: a domain can be written in its IDNA (xn--) form, a mailbox name
    cannot.
    """
    if email.isascii() or "@" not in email:
        return None  # ASCII, or not an address at all (valid_email says so)
    local, _, domain = email.rpartition("@")
    if local.isascii() and local:
        try:
            ascii_domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            pass
        else:
            return f'"{email}" has a non-ASCII domain: write it as {local}@{ascii_domain}'
    return f'"{email}" has non-ASCII characters before the @, which cannot be sent to'


def parse_csv(stream: IO[str]) -> list[dict]:
    """Read and validate contact rows; raise ImportFailed listing every bad line."""
    reader = csv.reader(stream)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise ImportFailed(["line 1: the file is empty; a header row with an email column "
                            "is required"]) from None
    except csv.Error as e:
        raise ImportFailed([f"line 1: {e}"]) from None
    if "email" not in header:
        raise ImportFailed([f"line 1: no \"email\" column in the header ({', '.join(header)})"])
    duplicates = {h for h in header if header.count(h) > 1}
    if duplicates:
        raise ImportFailed([f"line 1: column \"{sorted(duplicates)[0]}\" appears twice"])
    rows: list[dict] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    extra = [h for h in header if h not in CORE_COLUMNS]
    try:
        for values in reader:
            line = reader.line_num
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                problems.append(
                    f"line {line}: {len(values)} fields, the header has {len(header)}")
                continue
            record = {h: v.strip() for h, v in zip(header, values, strict=True)}
            email = record["email"]
            language = record.get("language", "").lower() or "en"
            if not email:
                problems.append(f"line {line}: email is empty")
            elif non_ascii_problem(email):
                problems.append(f"line {line}: {non_ascii_problem(email)}")
            elif not valid_email(email):
                problems.append(f"line {line}: \"{email}\" is not a valid email address")
            elif email.lower() in seen:
                problems.append(
                    f"line {line}: \"{email}\" already appears on line {seen[email.lower()]}")
            elif language not in LANGUAGES:
                problems.append(
                    f"line {line}: unknown language \"{record['language']}\" "
                    f"(use one of {', '.join(LANGUAGES)})")
            else:
                seen[email.lower()] = line
                rows.append({
                    "email": email,
                    "name": record.get("name", ""),
                    "company": record.get("company", ""),
                    "language": language,
                    "attributes": json.dumps(
                        {k: record[k] for k in extra if record[k]}, ensure_ascii=False),
                })
    except csv.Error as e:
        problems.append(f"line {reader.line_num}: {e}")
    except UnicodeDecodeError:
        problems.append("the file is not UTF-8 text: save it as CSV UTF-8 and import again")
    if problems:
        raise ImportFailed(problems)
    return rows


def import_rows(db: sqlite_utils.Database, rows: Iterable[dict]) -> tuple[int, int]:
    """Insert or update contacts by email (case-insensitive); return (added, updated)."""
    rows = list(rows)
    stamp = now()
    with write(db) as conn:
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
    return len(rows) - updated, updated


def import_csv(db: sqlite_utils.Database, stream: IO[str]) -> tuple[int, int]:
    """Validate a whole CSV file, then import it in one transaction."""
    return import_rows(db, parse_csv(stream))


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
    import hashlib
    import hmac

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
