"""Closing the loop (SPEC 13): overdue alerts, the digest, and replies from a case.

All three go through notify's durable queue (the `notifications` table: claimed with a
lease, retried with backoff, an interrupted hand-off left `unknown`, never resent blindly),
so they survive a crash like the detractor alerts do:

- an overdue alert's event key is the case's (`overdue/ID|email`), so however many rounds
  find the case overdue, and however many workers, it is queued once, ever;
- a digest's period is claimed in the `digests` table (its primary key) in the same
  transaction that queues its emails and webhooks: one digest per period;
- a reply is queued with a note on the case pointing at it; the note shows the
  notification's status (queued, sent, failed). It answers the last email the customer got
  from us about it (`In-Reply-To`: the reminder if one was sent, else the survey), and
  `References` names both.
"""

from __future__ import annotations

import json
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid
from zoneinfo import ZoneInfo

import sqlite_utils

from . import cases, digest, notify
from .addresses import address, clean_text, parse_mailbox, valid_email
from .clock import iso, now, shift, utcnow
from .config import Config
from .db import write
from .errors import SurveyError
from .reminders import SUFFIX

# What a reply's note says for each status of its notification.
REPLY_STATES = {"pending": "queued", "claimed": "queued", "sent": "sent", "failed": "failed",
                "unknown": "interrupted"}


def _sender_of_campaign(db, campaign_id: int | None) -> str | None:
    row = db.execute("SELECT sender FROM campaigns WHERE id = ?", [campaign_id]).fetchone() \
        if campaign_id else db.execute(
            "SELECT sender FROM campaigns ORDER BY id DESC LIMIT 1").fetchone()
    return row[0] if row else None


# Overdue cases ----------------------------------------------------------------------------


def queue_overdue(db: sqlite_utils.Database, config: Config) -> int:
    """Queue one alert for each case that became overdue since the last round; return how many.

    A case becomes overdue at its answer's time plus SURVEY_CASE_SLA_HOURS. Each round looks
    at the cases that crossed that line since the previous one (`overdue_until` in
    notify_state, first set by the migration: cases overdue before the upgrade are history,
    marked in the queue but not alerted). The alert goes to the case's assignee, or to the
    support address; with neither, nobody is told. Its key is the case's, so a second
    worker, or a round repeated after a crash, queues nothing more.
    """
    hours = config["SURVEY_CASE_SLA_HOURS"]
    moment = now()
    mark = db.execute("SELECT value FROM notify_state WHERE name = 'overdue_until'").fetchone()
    since = shift(mark[0], -hours * 3600) if mark else None
    found = cases.overdue(db, config["SURVEY_SCORE_POLICY"], hours, since=since, until=moment)
    support = config["SURVEY_SUPPORT_EMAIL"]
    queued = 0
    with write(db) as conn:
        for case in found:
            target = case["assignee"] or support
            if not target:
                continue
            who = (case["name"] or case["email"]) + (
                f" ({case['company']})" if case["company"] else "")
            payload = {
                "type": "overdue", "from": _sender_of_campaign(conn, case["campaign_id"]),
                "subject": f"Overdue: {who} scored {case['score']}, no follow-up yet",
                "case": {"id": case["id"], "name": case["name"], "email": case["email"],
                         "company": case["company"], "score": case["score"],
                         "comment": case["comment"], "campaign": case["campaign_name"],
                         "since": iso(case["created_at"])},
                "sla_hours": hours,
                "case_url": f"{config['SURVEY_BASE_URL']}/staff/followups/{case['id']}",
            }
            queued += notify._insert(conn, f"overdue/{case['id']}|email", "email", target,
                                     payload, case["id"])
        conn.execute("INSERT INTO notify_state (name, value) VALUES ('overdue_until', ?) "
                     "ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
                     [moment])
    return queued


def overdue_message(payload: dict) -> EmailMessage:
    case = payload["case"]
    lines = [f"{case['name'] or case['email']}"
             + (f" ({case['company']})" if case["company"] else "")
             + f" answered {case['score']} out of 10 to \"{case['campaign']}\" at "
             f"{case['since']}, and the case is still new after {payload['sla_hours']:g} "
             "hours.", "", "Comment:", case["comment"] or "(no comment)", "",
             f"Follow-up case: {payload['case_url']}"]
    return _message(payload, "\n".join(lines))


# The digest -------------------------------------------------------------------------------


def digest_emails(config: Config) -> list[str]:
    raw = config["SURVEY_DIGEST_EMAILS"] or ""
    return [e.strip() for e in raw.split(",") if e.strip()]


def queue_digest(db: sqlite_utils.Database, config: Config) -> str | None:
    """Queue the digest of the period before this one if none was; return its period.

    Nothing is queued, and no period claimed, without webhooks or SURVEY_DIGEST_EMAILS and
    an address to send them from (a campaign's sender, or SURVEY_SUPPORT_EMAIL): a later
    round sends the period's digest once there is one.
    """
    sender = _sender_of_campaign(db, None) or config["SURVEY_SUPPORT_EMAIL"]
    emails, urls = digest_emails(config) if sender else [], notify.webhook_urls(config)
    if not emails and not urls:
        return None
    every, zone = config["SURVEY_DIGEST_EVERY"], ZoneInfo(config["SURVEY_TIMEZONE"])
    covered = digest.previous(digest.period_of(utcnow(), every, zone), every, zone)
    if db.execute("SELECT 1 FROM digests WHERE period = ?", [covered.label]).fetchone():
        return None
    body = digest.build(db, config, covered, digest.previous(covered, every, zone))
    text = digest.text(body, config["SURVEY_BASE_URL"])
    with write(db) as conn:
        # The period's figures only: names and comments stay out of this table, so erasing
        # a contact (`contacts erase`) leaves nothing of them here.
        figures = {k: body[k] for k in ("nps", "margin_of_error", "responses", "promoters",
                                        "passives", "detractors", "overdue_count")}
        if not conn.execute("INSERT OR IGNORE INTO digests (period, created_at, payload) "
                            "VALUES (?, ?, ?)", [covered.label, now(), json.dumps(figures)]
                            ).rowcount:
            return None  # another worker claimed it meanwhile
        key = f"digest/{covered.label}"
        email = {"type": "digest", "from": sender, "text": text,
                 "subject": f"NPS digest {covered.label}: {_score(body['nps'])}"}
        for target in emails:
            notify._insert(conn, f"{key}|email|{target}", "email", target, email, None)
        hook = {**body, "text": text.split("\n", 1)[0]
                + f" - {len(body['at_risk_accounts'])} accounts at risk, "
                f"{body['overdue_count']} overdue cases"}
        for url in urls:
            notify._insert(conn, f"{key}|webhook|{url}", "webhook", url, hook, None)
    return covered.label


def _score(value) -> str:
    return "no answers" if value is None else f"{value:+.0f}".replace("+0", "0")


def digest_message(payload: dict) -> EmailMessage:
    return _message(payload, payload["text"])


# Replies from a case ----------------------------------------------------------------------


def thread_ids(db, response_id: int) -> list[str]:
    """Return the Message-IDs a response's emails carried: the survey, then its reminder.

    The same ids compose (and reminders) set: `survey.CAMPAIGN.DELIVERY@domain`, the
    reminder's with `.r1` added; empty when the response came with no email.
    """
    row = db.execute("SELECT r.campaign_id, r.delivery_id, cp.sender, m.status AS reminded "
                     "FROM responses r JOIN campaigns cp ON cp.id = r.campaign_id "
                     "LEFT JOIN reminders m ON m.delivery_id = r.delivery_id "
                     "WHERE r.id = ?", [response_id]).fetchone()
    if row is None or row["delivery_id"] is None:
        return []
    try:
        domain = parse_mailbox(row["sender"]).domain
    except ValueError:
        return []
    local = f"survey.{row['campaign_id']}.{row['delivery_id']}"
    ids = [f"<{local}@{domain}>"]
    if row["reminded"] == "sent":
        ids.append(f"<{local}{SUFFIX.replace('-', '.')}@{domain}>")
    return ids


def queue_reply(db: sqlite_utils.Database, config: Config, response_id: int, *, by: int,
                subject: str, body: str, resolve: bool = False) -> int:
    """Queue a reply to the customer of a case and note it on the case; return the note id.

    From SURVEY_SUPPORT_EMAIL, Reply-To the staff member, threaded to the survey email.
    With `resolve`, the case is resolved in the same step.
    """
    support = config["SURVEY_SUPPORT_EMAIL"]
    if not support:
        raise SurveyError("replies need SURVEY_SUPPORT_EMAIL, the address they come from")
    subject, body = " ".join(subject.split()), body.strip()
    if not subject or not body:
        raise SurveyError("a reply needs a subject and a message")
    case = cases.get_case(db, response_id, config["SURVEY_SCORE_POLICY"])
    if not valid_email(case["email"]):
        raise SurveyError(f'"{case["email"]}" is not an address a reply can go to')
    staff = db.execute("SELECT email FROM staff_users WHERE id = ?", [by]).fetchone()
    thread = thread_ids(db, response_id)
    payload = {"type": "reply", "from": support, "to_name": case["name"] or "",
               "reply_to": staff[0] if staff else support, "subject": subject,
               "text": body, "in_reply_to": thread[-1] if thread else None,
               "references": " ".join(thread),
               "message_id": make_msgid(domain=parse_mailbox(support).domain),
               "campaign_id": case["campaign_id"], "delivery_id": case["delivery_id"]}
    stamp = now()
    with write(db) as conn:
        conn.execute(
            "INSERT INTO notifications (event_key, kind, target, payload, next_attempt_at, "
            "created_at, response_id) VALUES (?, 'email', ?, ?, ?, ?, ?)",
            [f"reply/{payload['message_id']}", case["email"],
             json.dumps(payload, ensure_ascii=False), stamp, stamp, response_id])
        (notification_id,) = conn.execute("SELECT last_insert_rowid()").fetchone()
        note_id = conn.execute(
            "INSERT INTO case_notes (response_id, author_id, body, created_at, "
            "notification_id) VALUES (?, ?, ?, ?, ?)",
            [response_id, by, f"Reply to {case['email']}: {subject}\n\n{body}", stamp,
             notification_id]).lastrowid
    if resolve:
        cases.update_case(db, response_id, by=by, status="resolved",
                          assignee_id=case["assignee_id"])
    return note_id


def reply_message(payload: dict, target: str) -> EmailMessage:
    msg = _message(payload, payload["text"], to=address(payload["to_name"], target))
    msg["Reply-To"] = parse_mailbox(payload["reply_to"])
    if payload.get("in_reply_to"):
        msg["In-Reply-To"] = payload["in_reply_to"]
        msg["References"] = payload.get("references") or payload["in_reply_to"]
    del msg["Auto-Submitted"]  # a person wrote it
    return msg


# Building ---------------------------------------------------------------------------------


def _message(payload: dict, text: str, to=None) -> EmailMessage:
    msg = EmailMessage(policy=SMTP)
    sender = parse_mailbox(payload["from"])
    msg["Subject"] = clean_text(payload["subject"])
    msg["From"] = sender
    if to is not None:
        msg["To"] = to
    msg["Date"] = formatdate(utcnow().timestamp(), usegmt=True)
    msg["Message-ID"] = payload.get("message_id") or make_msgid(domain=sender.domain)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text)
    return msg


def build(payload: dict, target: str) -> tuple[EmailMessage, int, int]:
    """Return a queued email of this module, with its campaign and delivery (0 if none)."""
    kind = payload["type"]
    if kind == "reply":
        return (reply_message(payload, target), payload["campaign_id"] or 0,
                payload["delivery_id"] or 0)
    msg = overdue_message(payload) if kind == "overdue" else digest_message(payload)
    if "To" not in msg:
        msg["To"] = target
    return msg, 0, 0
