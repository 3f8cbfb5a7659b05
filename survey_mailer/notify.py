"""Detractor alerts by email and outgoing webhooks, through a durable queue in the database.

Nothing is sent from a fire-and-forget thread. Work is written to the `notifications` table
first (one row per event and target, unique by `event_key`, so finding the same event twice
queues it once); `dispatch()` claims what is due, sends it and records the outcome, retrying
failures with exponential backoff. A crash between claiming and recording leaves the claim to
expire, and the next dispatch sends it again: delivery is at least once, and each webhook
carries `X-Survey-Event` so a receiver can drop a repeat.

Only counted and settled responses notify (SPEC 7): counted under the score policy, and either
confirmed by a person or with no click for `SURVEY_BURST_SECONDS`, so a scanner's burst of
clicks is classified before anyone is alerted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import sys
import time
import urllib.error
import urllib.request
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import sqlite_utils

from .addresses import address, clean_text, parse_mailbox, valid_email
from .backends import Envelope, get_backend
from .clock import ago, iso, now
from .config import Config
from .db import write
from .errors import DeliveryError, SurveyError
from .humans import alertable_sql, reads_responses
from .scores import counted_sql, segment

MAX_ATTEMPTS = 8
CLAIM_SECONDS = 120
WEBHOOK_TIMEOUT = 10


def backoff(attempts: int) -> float:
    """Return the seconds to wait before the next try after `attempts` failures."""
    return min(30 * 2 ** (attempts - 1), 6 * 3600)


def slack_escape(text: str) -> str:
    """Escape the three characters Slack reads as markup in a `text` field."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


RESPONSE_SQL = """
    SELECT r.id, r.delivery_id, r.campaign_id, r.score, r.comment, r.contact_ok,
           r.confirmed, r.responded_at, c.email, c.name, c.company, c.language,
           cp.name AS campaign_name, cp.sender
    FROM responses r
    JOIN contacts c ON c.id = r.contact_id
    JOIN campaigns cp ON cp.id = r.campaign_id
"""


# Finding events ---------------------------------------------------------------------------


@reads_responses
def scan(db: sqlite_utils.Database, config: Config) -> int:
    """Queue notifications for responses that became counted and settled; return how many.

    Responses are looked at from a stored watermark on `responded_at`, which then advances
    to a minute before the settling cutoff: anything older is settled and already seen.
    """
    since = db.execute(
        "SELECT value FROM notify_state WHERE name = 'scanned_until'").fetchone()
    since = since[0] if since else "0"
    rows = db.execute(
        f"""{RESPONSE_SQL}
        WHERE r.responded_at >= :since
          AND {alertable_sql(config['SURVEY_SCORE_POLICY'], config['SURVEY_BURST_SECONDS'])}
        ORDER BY r.responded_at""",
        {"since": since},
    ).fetchall()
    queued = 0
    with write(db) as conn:
        for row in rows:
            queued += _queue_response(conn, config, dict(row))
        watermark = ago(config['SURVEY_BURST_SECONDS'] + 60)
        conn.execute(
            "INSERT INTO notify_state (name, value) VALUES ('scanned_until', ?) "
            "ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
            [watermark])
    return queued


def queue_response(db: sqlite_utils.Database, config: Config, response_id: int) -> int:
    """Queue notifications for one response now if it counts (e.g. restored as human)."""
    row = db.execute(
        f"{RESPONSE_SQL} WHERE r.id = ? AND {counted_sql(config['SURVEY_SCORE_POLICY'])}",
        [response_id]).fetchone()
    if row is None:
        return 0
    with write(db) as conn:
        return _queue_response(conn, config, dict(row))


def _queue_response(conn, config: Config, row: dict) -> int:
    # One event per distinct (score, comment): a comment added after the click alerts again,
    # a form sent twice does not.
    digest = hashlib.sha256(row["comment"].encode()).hexdigest()[:12]
    event = f"response/{row['id']}/{row['score']}/{digest}"
    case_url = f"{config['SURVEY_BASE_URL']}/staff/followups/{row['id']}"
    queued = 0
    if segment(row["score"]) == "detractor" and config["SURVEY_SUPPORT_EMAIL"]:
        queued += _insert(conn, f"{event}|email", "email", config["SURVEY_SUPPORT_EMAIL"],
                          {"response": row, "case_url": case_url})
    payload = response_payload(row, case_url)
    for url in webhook_urls(config):
        queued += _insert(conn, f"{event}|webhook|{url}", "webhook", url, payload)
    return queued


def response_payload(row: dict, case_url: str) -> dict:
    """Return the webhook body for a counted response; `text` is what Slack shows."""
    kind = segment(row["score"])
    who = row["name"] or row["email"]
    if row["company"]:
        who += f" ({row['company']})"
    text = f"{slack_escape(who)} scored {row['score']} ({kind})"
    if row["comment"]:
        text += f': "{slack_escape(row["comment"])}"'
    if kind == "detractor":
        text += f" - follow up: {case_url}"
    return {
        "event": "response.counted",
        "text": text,
        "response": {
            "id": row["id"], "score": row["score"], "segment": kind,
            "comment": row["comment"], "email": row["email"], "name": row["name"],
            "company": row["company"], "language": row["language"],
            "campaign_id": row["campaign_id"], "campaign": row["campaign_name"],
            "confirmed": bool(row["confirmed"]), "responded_at": iso(row["responded_at"]),
        },
        "case_url": case_url if kind == "detractor" else None,
    }


def queue_case_update(db: sqlite_utils.Database, config: Config, case: dict,
                      changes: list[str], change: dict, by: str) -> int:
    """Queue a webhook for a change to a follow-up case (status, assignee or note).

    `case` is the case before the change, `changes` what changed in words, `change` the
    new values, `by` who changed it.
    """
    urls = webhook_urls(config)
    if not urls or not changes:
        return 0
    response_id = case["id"]
    who = case["name"] or case["email"]
    text = (f"Case of {slack_escape(who)} (score {case['score']}) updated by {by}: "
            f"{', '.join(changes)}")
    change = {**change, "by": by}
    case_url = f"{config['SURVEY_BASE_URL']}/staff/followups/{response_id}"
    payload = {"event": "case.updated", "text": f"{text} - {case_url}",
               "case": {"response_id": response_id, **change}, "case_url": case_url}
    event = f"case/{response_id}/{secrets.token_hex(8)}"
    with write(db) as conn:
        return sum(_insert(conn, f"{event}|webhook|{url}", "webhook", url, payload)
                   for url in urls)


def _insert(conn, key: str, kind: str, target: str, payload: dict) -> int:
    stamp = now()
    cursor = conn.execute(
        "INSERT OR IGNORE INTO notifications (event_key, kind, target, payload, "
        "next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        [key, kind, target, json.dumps(payload, ensure_ascii=False), stamp, stamp])
    return cursor.rowcount


def webhook_urls(config: Config) -> list[str]:
    raw = config.get("SURVEY_WEBHOOK_URLS") or ""
    return [u.strip() for u in raw.split(",") if u.strip()]


# Sending ----------------------------------------------------------------------------------


class NotifyError(SurveyError):
    """A notification could not be sent this time."""


def claim(db: sqlite_utils.Database, limit: int = 50) -> list[dict]:
    """Claim due notifications for this process; an expired claim is due again."""
    stamp = now()
    with write(db) as conn:
        rows = conn.execute(
            """
            UPDATE notifications
            SET status = 'claimed', claimed_until = ?, attempts = attempts + 1
            WHERE id IN (
                SELECT id FROM notifications
                WHERE (status = 'pending' AND next_attempt_at <= ?)
                   OR (status = 'claimed' AND claimed_until <= ?)
                ORDER BY next_attempt_at LIMIT ?)
            RETURNING id, kind, target, payload, attempts, event_key
            """,
            [ago(-CLAIM_SECONDS), stamp, stamp, limit]).fetchall()
    return [dict(r) for r in rows]


def dispatch(db: sqlite_utils.Database, config: Config, limit: int = 50,
             backend=None, timeout: float = WEBHOOK_TIMEOUT) -> dict:
    """Queue what became due, then send claimed notifications; return counts by outcome.

    `timeout` bounds each webhook request; a slow receiver is retried later, like a failure.
    """
    scan(db, config)
    done = {"sent": 0, "retry": 0, "failed": 0}
    jobs = claim(db, limit)
    if not jobs:
        return done
    own_backend = backend is None and any(j["kind"] == "email" for j in jobs)
    if own_backend:
        backend = get_backend(config)
    try:
        for job in jobs:
            try:
                if job["kind"] == "email":
                    send_alert(backend, config, job)
                else:
                    post_webhook(job["target"], job["payload"].encode(), job["event_key"],
                                 config.get("SURVEY_WEBHOOK_SECRET"), timeout)
            except (NotifyError, DeliveryError, OSError) as e:
                outcome = _record_failure(db, job, str(e))
            else:
                with write(db) as conn:
                    conn.execute("UPDATE notifications SET status = 'sent', sent_at = ?, "
                                 "last_error = NULL WHERE id = ?", [now(), job["id"]])
                outcome = "sent"
            done[outcome] += 1
    finally:
        if own_backend:
            backend.close()
    return done


def _record_failure(db, job: dict, error: str) -> str:
    final = job["attempts"] >= MAX_ATTEMPTS
    with write(db) as conn:
        conn.execute(
            "UPDATE notifications SET status = ?, next_attempt_at = ?, claimed_until = NULL, "
            "last_error = ? WHERE id = ?",
            ["failed" if final else "pending", ago(-backoff(job["attempts"])), error[:500],
             job["id"]])
    return "failed" if final else "retry"


def signature(secret: str, body: bytes) -> str:
    """Return the `X-Survey-Signature` value: sha256=HMAC-SHA256(secret, body) in hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_webhook(url: str, body: bytes, event_key: str, secret: str | None,
                 timeout: float = WEBHOOK_TIMEOUT) -> None:
    """POST a JSON body; raise NotifyError unless the receiver answers 2xx."""
    headers = {"Content-Type": "application/json", "User-Agent": "survey-mailer",
               "X-Survey-Event": hashlib.sha256(event_key.encode()).hexdigest()[:32],
               "X-Survey-Timestamp": str(int(time.time()))}
    if secret:
        headers["X-Survey-Signature"] = signature(secret, body)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read(1024)
    except urllib.error.HTTPError as e:
        raise NotifyError(f"{url} answered {e.code}") from e
    except (urllib.error.URLError, OSError) as e:
        raise NotifyError(f"{url}: {getattr(e, 'reason', e)}") from e


def alert_message(config: Config, payload: dict) -> EmailMessage:
    """Build the detractor alert: to support, Reply-To the customer."""
    row, case_url = payload["response"], payload["case_url"]
    msg = EmailMessage()
    who = row["name"] or row["email"]
    company = f" ({row['company']})" if row["company"] else ""
    sender = parse_mailbox(row["sender"])
    # Headers as the email package's objects, every text cleaned of control characters
    # whatever path it took into the database: a name cannot add a header (Bcc:).
    msg["Subject"] = clean_text(f"Detractor: {who}{company} scored {row['score']}")
    msg["From"] = sender
    msg["To"] = config["SURVEY_SUPPORT_EMAIL"]
    if valid_email(row["email"]):  # else no Reply-To: support still sees it in the body
        msg["Reply-To"] = address(row["name"], row["email"])
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain=sender.domain)
    msg["Auto-Submitted"] = "auto-generated"
    lines = [
        f"{who}{company} answered {row['score']} out of 10 to \"{row['campaign_name']}\".",
        "",
        "Comment:",
        row["comment"] or "(no comment)",
        "",
        f"Contact: {row['email']}" + (" (agreed to be contacted)" if row["contact_ok"] else ""),
        f"Answered at: {iso(row['responded_at'])}",
        "",
        f"Follow-up case: {case_url}",
        "Reply to this email to write to the customer.",
    ]
    msg.set_content("\n".join(lines))
    return msg


def send_alert(backend, config: Config, job: dict) -> None:
    payload = json.loads(job["payload"])
    row = payload["response"]
    message = alert_message(config, payload)
    envelope = Envelope(sender=message["From"].addresses[0].addr_spec,
                        recipient=job["target"], key=f"alert-n{job['id']}",
                        campaign_id=row["campaign_id"], delivery_id=row["delivery_id"])
    backend.send(envelope, message.as_bytes())


def watch(db: sqlite_utils.Database, config: Config, interval: float = 5.0,
          stop=lambda: False) -> None:
    """Dispatch in a loop until `stop()` is true; a busy database waits for the next round."""
    while not stop():
        try:
            dispatch(db, config)
        except sqlite3.OperationalError as e:  # e.g. locked for longer than the timeout
            print(f"survey-mailer notify: {e}; trying again in {interval:g}s",
                  file=sys.stderr)
        time.sleep(interval)
