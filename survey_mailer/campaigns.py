"""Campaigns: creation, segments, and who is eligible to receive one."""

from __future__ import annotations

import json
import re

import sqlite_utils

from . import branding
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


SUBJECTS = ("subject_es", "subject_fr", "subject_sv")  # empty: the `subject` (English)
FIELDS = ("name", "subject", *SUBJECTS, "sender", "brand", "postal_address", "segment",
          "remind_after_days", "accent")


def _checked(db: sqlite_utils.Database, fields: dict) -> dict:
    """Return a campaign's given fields checked and cleaned, or raise SurveyError."""
    # Name, subject, sender and brand are typed by a person for one campaign: a control
    # character in one (a pasted line break, a tab) is refused, not cleaned, so that nothing
    # goes out under a subject or sender that differs from what was typed. A line break in
    # them could add headers (Bcc:) to every message.
    for label in ("name", "subject", *SUBJECTS, "sender", "brand"):
        problem = text_problem(f"the campaign {label.replace('_', ' ')}",
                               fields.get(label) or "")
        if problem:
            raise SurveyError(problem)
        if label in SUBJECTS and label in fields:
            fields[label] = (fields[label] or "").strip()
    for label in ("name", "subject"):
        if label in fields and not fields[label].strip():
            raise SurveyError(f"the campaign {label} must not be empty")
        if label in fields:
            fields[label] = fields[label].strip()
    if "sender" in fields:
        try:
            parse_mailbox(fields["sender"].strip())
        except ValueError:
            raise SurveyError(f'sender "{fields["sender"]}" is not an email address (for '
                              f'example "Acme <nps@acme.com>")') from None
        fields["sender"] = fields["sender"].strip()
    if "segment" in fields:
        check_segment(db, fields["segment"] or {})
        fields["segment"] = json.dumps(fields["segment"] or {})
    if "accent" in fields:
        fields["accent"] = branding.check_accent(fields["accent"])
    if "postal_address" in fields:
        fields["postal_address"] = _postal_address(fields["postal_address"] or "")
    if fields.get("remind_after_days") is not None and not \
            0 <= fields["remind_after_days"] <= 365:
        raise SurveyError(f"--remind-after-days {fields['remind_after_days']} is not from 0 "
                          f"to 365")
    return fields


def _default_brand(sender: str) -> str:
    mailbox = parse_mailbox(sender)
    return (mailbox.display_name or mailbox.domain).strip()


def create(db: sqlite_utils.Database, *, name: str, subject: str, sender: str,
           brand: str | None = None, segment: dict[str, str] | None = None,
           postal_address: str = "", remind_after_days: int | None = None,
           subject_es: str = "", subject_fr: str = "", subject_sv: str = "",
           accent: str = "") -> int:
    """Create a campaign and return its id.

    An empty postal address means SURVEY_POSTAL_ADDRESS at send time (`ready`); an empty
    subject_es, _fr or _sv means the English `subject` for contacts in that language.
    """
    fields = _checked(db, {"name": name, "subject": subject, "sender": sender,
                           "brand": brand or "", "segment": segment or {},
                           "postal_address": postal_address or "",
                           "remind_after_days": remind_after_days, "subject_es": subject_es,
                           "subject_fr": subject_fr, "subject_sv": subject_sv,
                           "accent": accent})
    fields["brand"] = (fields["brand"] or _default_brand(fields["sender"])).strip()
    with write(db) as conn:
        cursor = conn.execute(
            "INSERT INTO campaigns (name, subject, subject_es, subject_fr, subject_sv, sender,"
            " brand, postal_address, segment, remind_after_days, accent, created_at) VALUES"
            " (:name, :subject, :subject_es, :subject_fr, :subject_sv, :sender, :brand,"
            " :postal_address, :segment, :remind_after_days, :accent, :created_at)",
            {**fields, "created_at": now()})
    return cursor.lastrowid


def update(db: sqlite_utils.Database, campaign_id: int, **changes) -> list[str]:
    """Change a campaign's content or audience until its first message is sent.

    Fields given as None stay as they are. Return the names of the fields changed.
    """
    changes = {k: v for k, v in changes.items() if v is not None}
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise SurveyError(f"cannot change {', '.join(sorted(unknown))} of a campaign")
    get(db, campaign_id)
    fields = _checked(db, dict(changes))
    if "brand" in fields and not fields["brand"].strip():
        del fields["brand"]
    with write(db) as conn:
        if conn.execute("SELECT 1 FROM deliveries WHERE campaign_id = ? AND status IN "
                        "('sending', 'sent') LIMIT 1", [campaign_id]).fetchone():
            content = set(fields) - {"remind_after_days"}
            if content:
                raise SurveyError(f"campaign {campaign_id} has started sending: its "
                                  f"{', '.join(sorted(content))} can no longer change")
        if fields:
            assignments = ", ".join(f"{k} = :{k}" for k in fields)
            conn.execute(f"UPDATE campaigns SET {assignments} WHERE id = :id",
                         {**fields, "id": campaign_id})
    return sorted(fields)


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
    campaign["logo_path"] = branding.logo_path(db, campaign_id)
    return campaign


def names(db: sqlite_utils.Database) -> list[dict]:
    """Return every campaign's id and name, newest first (a menu, without counting)."""
    return [dict(r) for r in db.execute("SELECT id, name FROM campaigns ORDER BY id DESC")]


@reads_responses
def list_campaigns(db: sqlite_utils.Database, policy: str = "balanced") -> list[dict]:
    """Return every campaign with its delivery and counted-response counts.

    `next_due` is when its earliest delivery still to go is due (None: none is waiting for
    the worker).
    """
    rows = db.execute(
        f"""
        SELECT c.*,
          (SELECT count(*) FROM deliveries d WHERE d.campaign_id = c.id
             AND d.status = 'sent') AS sent,
          (SELECT count(*) FROM deliveries d WHERE d.campaign_id = c.id
             AND d.status IN ('pending', 'sending')) AS unsent,
          (SELECT min(d.due_at) FROM deliveries d WHERE d.campaign_id = c.id
             AND d.status = 'pending') AS next_due,
          (SELECT count(*) FROM responses r WHERE r.campaign_id = c.id
             AND {counted_sql(policy)}) AS responses
        FROM campaigns c ORDER BY c.id
        """
    ).fetchall()
    result = []
    for row in rows:
        row = dict(row)
        row["segment"] = json.loads(row["segment"])
        row["status"] = status(row)
        result.append(row)
    return result


def status(row: dict) -> str:
    """Return draft, scheduled, sending, paused, sent or recurring for a campaign row.

    The row needs `sent` and `unsent` (pending or sending) delivery counts.
    """
    if row.get("every"):
        return "recurring"
    if row.get("unsent"):
        return "paused" if row.get("paused_at") else "sending"
    if row.get("started_at") or row.get("sent"):
        return "sent"
    if row.get("send_at"):
        return "scheduled"
    return "draft"


def _eligible(campaign: dict, resurvey_days: int) -> tuple[str, list]:
    where, params = segment_sql(campaign["segment"])
    sql = f"""
        SELECT c.id FROM contacts c
        WHERE c.unsubscribed_at IS NULL AND c.suppressed_at IS NULL AND c.erased_at IS NULL
          AND {where}
          AND NOT EXISTS (
            SELECT 1 FROM deliveries d WHERE d.contact_id = c.id AND d.campaign_id = ?)
          AND NOT EXISTS (
            SELECT 1 FROM deliveries d
            WHERE d.contact_id = c.id AND d.campaign_id != ?
              AND (d.status IN ('sending', 'sent')
                   OR d.status = 'pending' AND d.due_at IS NOT NULL)  -- scheduled
              AND coalesce(d.sent_at, d.due_at, d.created_at) > ?
          )
    """
    return sql, [*params, campaign["id"], campaign["id"], ago(resurvey_days * 86400)]


def count_eligible(db: sqlite_utils.Database, campaign: dict, resurvey_days: int) -> int:
    """Count the contacts that `plan` would add, without writing anything."""
    sql, params = _eligible(campaign, resurvey_days)
    return db.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()[0]


def plan(db: sqlite_utils.Database, campaign: dict, resurvey_days: int,
         due: str | None = None) -> int:
    """Add a pending delivery for every eligible contact not yet planned; return how many.

    Eligible: matches the audience, reachable (not unsubscribed, suppressed or erased), and
    not surveyed by another campaign within `resurvey_days`. The unique (campaign, contact)
    pair makes this idempotent, which is what lets a crashed send be re-run. `due` (a stored
    stamp) hands the deliveries to the worker, which sends them from then on; without it,
    they are the `campaign send` command's.
    """
    sql, params = _eligible(campaign, resurvey_days)
    with write(db) as conn:
        cursor = conn.execute(
            f"INSERT INTO deliveries (campaign_id, contact_id, status, created_at, due_at) "
            f"SELECT ?, id, 'pending', ?, ? FROM ({sql}) WHERE 1 "
            f"ON CONFLICT (campaign_id, contact_id) DO NOTHING",
            [campaign["id"], now(), due, *params],
        )
    return cursor.rowcount


def eligible(db: sqlite_utils.Database, campaign: dict, resurvey_days: int) -> list[tuple]:
    """Return (id, attributes) of the contacts `plan` would add, in id order."""
    sql, params = _eligible(campaign, resurvey_days)
    return db.execute(f"SELECT id, attributes FROM contacts WHERE id IN ({sql}) ORDER BY id",
                      params).fetchall()


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


def start(db: sqlite_utils.Database, campaign_id: int) -> None:
    """Record that the campaign started sending (its content can no longer change)."""
    with write(db) as conn:
        conn.execute("UPDATE campaigns SET started_at = coalesce(started_at, ?) WHERE id = ?",
                     [now(), campaign_id])


def job(campaign: dict, composer: Composer, scheduled_only: bool = False) -> Job:
    """Return the sender's job for a campaign's deliveries.

    `scheduled_only`: only those handed to the worker (with a due time), not those that
    `campaign send` planned for itself.
    """
    due = ("d.due_at <= :now" if scheduled_only
           else "(d.due_at IS NULL OR d.due_at <= :now)")
    return Job(
        table="deliveries",
        pending_sql=f"""
            SELECT d.id, d.id AS delivery_id, c.email, c.name, c.language,
                   c.unsubscribed_at IS NOT NULL OR c.suppressed_at IS NOT NULL
                   OR c.erased_at IS NOT NULL AS excluded
            FROM deliveries d JOIN contacts c ON c.id = d.contact_id
            WHERE d.campaign_id = :campaign AND d.status = 'pending' AND d.id > :after
              AND {due}
            ORDER BY d.id LIMIT :limit
        """,
        due_sql=f"""
            SELECT count(*) FROM deliveries d WHERE d.campaign_id = :campaign
              AND d.status = 'pending' AND {due}
        """,
        unknown_sql="""
            SELECT c.email, d.claimed_by FROM deliveries d
            JOIN contacts c ON c.id = d.contact_id
            WHERE d.campaign_id = :campaign AND d.status = 'sending' ORDER BY d.id
        """,
        suffix="",
        campaign=campaign,
        composer=composer,
    )


def send(db: sqlite_utils.Database, sender: Sender, config: Config, campaign_id: int, *,
         dry_run: bool = False, limit: int | None = None, retry_unknown: bool = False,
         progress=None, scheduled_only: bool = False, stop=lambda: False) -> Summary:
    """Send the campaign to every eligible contact who has not had it yet.

    Planning first (idempotent: one delivery per contact and campaign), then the sender
    runs the pending deliveries, so a re-run after a crash resumes exactly. The worker
    (`scheduled_only`) plans nothing: it sends what schedules and the API made due.
    """
    campaign = ready(db, config, campaign_id)
    resurvey_days = config["SURVEY_RESURVEY_DAYS"]
    deliveries = job(campaign, Composer(campaign, links_from_config(config)), scheduled_only)
    if dry_run:
        return Summary(dry_run=True, unknown=sender.unknown(deliveries), eligible=(
            sender.due(deliveries) + count_eligible(db, campaign, resurvey_days)))
    if not scheduled_only:
        plan(db, campaign, resurvey_days)
        start(db, campaign_id)
    return sender.run(deliveries, limit=limit, retry_unknown=retry_unknown,
                      progress=progress, stop=stop)
