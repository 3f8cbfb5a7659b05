"""Campaigns: creation, segments, and who is eligible to receive one."""

from __future__ import annotations

import json
import re

import sqlite_utils

from .addresses import LINE_BREAKS, parse_mailbox, text_problem
from .clock import ago, now
from .compose import Composer
from .config import Config
from .contacts import has_attribute
from .db import write
from .errors import NotFound, SurveyError
from .humans import reads_responses
from .links import from_config as links_from_config
from .scores import counted_sql
from .sender import Job, Sender, Summary

CONTACT_FIELDS = ("company", "language", "name")

SEGMENT_KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_ .-]*$")


def parse_segment(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Turn ("company=Acme", "plan=pro") into {"company": "Acme", "plan": "pro"}."""
    segment: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or not key or not SEGMENT_KEY_RE.match(key):
            raise SurveyError(
                f'segment "{item}" is not ATTRIBUTE=VALUE (for example company=Acme)')
        segment[key] = value.strip()
    return segment


def segment_sql(segment: dict[str, str]) -> tuple[str, list[str]]:
    """Return a WHERE fragment (on table alias c) and its parameters for a segment."""
    clauses, params = [], []
    for key, value in segment.items():
        if key in CONTACT_FIELDS:
            clauses.append(f"c.{key} = ? COLLATE NOCASE")
        else:
            clauses.append("json_extract(c.attributes, ?) = ? COLLATE NOCASE")
            params.append(f'$."{key}"')
        params.append(value)
    return (" AND ".join(clauses) or "1"), params


def check_segment(db: sqlite_utils.Database, segment: dict[str, str]) -> None:
    """Raise SurveyError naming an attribute that no contact has."""
    for key in segment:
        if key not in CONTACT_FIELDS and not has_attribute(db, key):
            raise SurveyError(f'no contact has the attribute "{key}": use company, language, '
                              f"name or an attribute column of the imported contacts")


def create(db: sqlite_utils.Database, *, name: str, subject: str, sender: str,
           brand: str | None = None, segment: dict[str, str] | None = None,
           postal_address: str = "") -> int:
    """Create a campaign and return its id.

    An empty postal address means SURVEY_POSTAL_ADDRESS at send time (`ready`).
    """
    check_segment(db, segment or {})
    # Name, subject, sender and brand are typed by a person for one campaign: a control
    # character in one (a pasted line break, a tab) is refused, not cleaned, so that nothing
    # goes out under a subject or sender that differs from what was typed. A line break in
    # them could add headers (Bcc:) to every message.
    for label, value in (("name", name), ("subject", subject), ("sender", sender),
                         ("brand", brand or "")):
        problem = text_problem(f"the campaign {label}", value)
        if problem:
            raise SurveyError(problem)
    for label, value in (("name", name), ("subject", subject)):
        if not value.strip():
            raise SurveyError(f"the campaign {label} must not be empty")
    try:
        mailbox = parse_mailbox(sender.strip())
    except ValueError:
        raise SurveyError(
            f'sender "{sender}" is not an email address (for example "Acme <nps@acme.com>")'
        ) from None
    brand = (brand or mailbox.display_name or mailbox.domain).strip()
    postal_address = _postal_address(postal_address or "")
    with write(db) as conn:
        cursor = conn.execute(
            "INSERT INTO campaigns (name, subject, sender, brand, postal_address, segment,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [name.strip(), subject.strip(), sender.strip(), brand, postal_address,
             json.dumps(segment or {}), now()],
        )
    return cursor.lastrowid


_BREAK_RE = re.compile(rf"\s*[{LINE_BREAKS}]+\s*")


def _postal_address(value: str) -> str:
    """Return a postal address on one line; refuse other control characters.

    A postal address is naturally written on several lines (SURVEY_POSTAL_ADDRESS in an env
    file, a shell's $'...'), and the footer shows it on one: its line breaks are cleaned to
    ", " and tabs to spaces, which loses nothing. Anything else (NUL, ESC) is a mistake.
    """
    value = _BREAK_RE.sub(", ", value.strip()).replace("\t", " ")
    problem = text_problem("the postal address", value)
    if problem:
        raise SurveyError(problem)
    return value


def get(db: sqlite_utils.Database, campaign_id: int) -> dict:
    """Return one campaign, segment decoded, or raise NotFound."""
    row = db.execute("SELECT * FROM campaigns WHERE id = ?", [campaign_id]).fetchone()
    if row is None:
        raise NotFound("campaign", campaign_id)
    campaign = dict(row)
    campaign["segment"] = json.loads(campaign["segment"])
    return campaign


def names(db: sqlite_utils.Database) -> list[dict]:
    """Return every campaign's id and name, newest first (a menu, without counting)."""
    return [dict(r) for r in db.execute("SELECT id, name FROM campaigns ORDER BY id DESC")]


@reads_responses
def list_campaigns(db: sqlite_utils.Database, policy: str = "balanced") -> list[dict]:
    """Return every campaign with its delivery and counted-response counts."""
    rows = db.execute(
        f"""
        SELECT c.*,
          (SELECT count(*) FROM deliveries d WHERE d.campaign_id = c.id
             AND d.status = 'sent') AS sent,
          (SELECT count(*) FROM deliveries d WHERE d.campaign_id = c.id
             AND d.status IN ('pending', 'sending')) AS unsent,
          (SELECT count(*) FROM responses r WHERE r.campaign_id = c.id
             AND {counted_sql(policy)}) AS responses
        FROM campaigns c ORDER BY c.id
        """
    ).fetchall()
    result = []
    for row in rows:
        row = dict(row)
        row["segment"] = json.loads(row["segment"])
        result.append(row)
    return result


def _eligible(campaign: dict, resurvey_days: int) -> tuple[str, list]:
    where, params = segment_sql(campaign["segment"])
    sql = f"""
        SELECT c.id FROM contacts c
        WHERE c.unsubscribed_at IS NULL AND c.suppressed_at IS NULL
          AND {where}
          AND NOT EXISTS (
            SELECT 1 FROM deliveries d WHERE d.contact_id = c.id AND d.campaign_id = ?)
          AND NOT EXISTS (
            SELECT 1 FROM deliveries d
            WHERE d.contact_id = c.id AND d.campaign_id != ?
              AND d.status IN ('sending', 'sent')
              AND coalesce(d.sent_at, d.created_at) > ?
          )
    """
    return sql, [*params, campaign["id"], campaign["id"], ago(resurvey_days * 86400)]


def count_eligible(db: sqlite_utils.Database, campaign: dict, resurvey_days: int) -> int:
    """Count the contacts that `plan` would add, without writing anything."""
    sql, params = _eligible(campaign, resurvey_days)
    return db.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()[0]


def plan(db: sqlite_utils.Database, campaign: dict, resurvey_days: int) -> int:
    """Add a pending delivery for every eligible contact not yet planned; return how many.

    Eligible: matches the segment, not unsubscribed or suppressed, and not sent
    another campaign within `resurvey_days`. The unique (campaign, contact) pair makes
    this idempotent, which is what lets a crashed send be re-run.
    """
    sql, params = _eligible(campaign, resurvey_days)
    with write(db) as conn:
        cursor = conn.execute(
            f"INSERT INTO deliveries (campaign_id, contact_id, status, created_at) "
            f"SELECT ?, id, 'pending', ? FROM ({sql}) WHERE 1 "
            f"ON CONFLICT (campaign_id, contact_id) DO NOTHING",
            [campaign["id"], now(), *params],
        )
    return cursor.rowcount


def ready(db: sqlite_utils.Database, config: Config, campaign_id: int) -> dict:
    """Return a campaign as it will be sent, or raise SurveyError when it cannot be.

    The footer's postal address is the campaign's own, else SURVEY_POSTAL_ADDRESS; the law
    in most countries (CAN-SPAM, and SPEC 8) wants one in every survey email.
    """
    campaign = get(db, campaign_id)
    campaign["postal_address"] = _postal_address(campaign["postal_address"]
                                                 or config["SURVEY_POSTAL_ADDRESS"] or "")
    if not campaign["postal_address"]:
        raise SurveyError(
            f"campaign {campaign_id} has no postal address for the email's footer: set "
            f"SURVEY_POSTAL_ADDRESS, or create the campaign with --postal-address")
    return campaign


def job(campaign: dict, composer: Composer) -> Job:
    """Return the sender's job for a campaign's deliveries."""
    return Job(
        table="deliveries",
        pending_sql="""
            SELECT d.id, d.id AS delivery_id, c.email, c.name, c.language,
                   c.unsubscribed_at IS NOT NULL OR c.suppressed_at IS NOT NULL AS excluded
            FROM deliveries d JOIN contacts c ON c.id = d.contact_id
            WHERE d.campaign_id = ? AND d.status = 'pending' AND d.id > ?
            ORDER BY d.id LIMIT ?
        """,
        unknown_sql="""
            SELECT c.email FROM deliveries d JOIN contacts c ON c.id = d.contact_id
            WHERE d.campaign_id = ? AND d.status = 'sending' ORDER BY d.id
        """,
        suffix="",
        campaign=campaign,
        composer=composer,
    )


def send(db: sqlite_utils.Database, sender: Sender, config: Config, campaign_id: int, *,
         dry_run: bool = False, limit: int | None = None, retry_unknown: bool = False,
         progress=None) -> Summary:
    """Send the campaign to every eligible contact who has not had it yet.

    Planning first (idempotent: one delivery per contact and campaign), then the sender
    runs the pending deliveries, so a re-run after a crash resumes exactly.
    """
    campaign = ready(db, config, campaign_id)
    resurvey_days = config["SURVEY_RESURVEY_DAYS"]
    deliveries = job(campaign, Composer(campaign, links_from_config(config)))
    if dry_run:
        return Summary(dry_run=True, unknown=sender.unknown(deliveries), eligible=(
            sender.count(deliveries) + count_eligible(db, campaign, resurvey_days)))
    plan(db, campaign, resurvey_days)
    return sender.run(deliveries, limit=limit, retry_unknown=retry_unknown,
                      progress=progress)
