"""Detractor alerts by email and outgoing webhooks, through a durable queue in the database.

Nothing is sent from a fire-and-forget thread. Work is written to the `notifications` table
first (one row per event and target, unique by `event_key`, so finding the same event twice
queues it once); `dispatch()` claims what is due, sends it and records the outcome of each
notification on its own, retrying failures with exponential backoff. One that cannot be
built fails alone, with its reason, shown to staff (`problems`).

A claim is a short lease renewed while its dispatcher works (see `leases`): a killed
dispatcher's claims are taken over in seconds. A webhook taken over is sent again (each
carries `X-Survey-Event`, so a receiver can drop a repeat). An email is marked before it is
handed to the backend: one a crash interrupted there may have gone out, so it is not sent
again blindly but left `unknown`, shown to staff, and sent again only when asked.

Each response is one thread (`alert_threads`): webhooks get one `response.counted` event,
support one alert if it is a detractor; a later change of score or comment, once the
response has settled again, is one `response.updated` event and one email in the alert's
thread ("Re:", `In-Reply-To`). Threads are written in the same transaction as the queue, so
two dispatchers, or one restarted, never announce a state twice.

Only counted and settled responses notify (SPEC 7): counted under the score policy, and either
confirmed by a person or with no click for `SURVEY_BURST_SECONDS`, so a scanner's burst of
clicks is classified before anyone is alerted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import sqlite_utils

from . import leases
from .addresses import address, clean_text, parse_mailbox, valid_email
from .backends import Envelope, get_backend
from .clock import ago, iso, now, utcnow
from .config import Config
from .db import write
from .errors import DeliveryError, FateUnknown, SendingStopped, SurveyError
from .humans import alertable_sql, live_sql, reads_responses
from .scores import counted_sql, segment

MAX_ATTEMPTS = 8
BATCH = 50
WEBHOOK_TIMEOUT = 10
INTERRUPTED = ("the dispatcher stopped while handing it over: it may have been sent, so it "
               "is not sent again (survey-mailer notify --retry-unknown sends it)")


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
    """Queue notifications for responses newly counted and settled, or changed; return how many.

    Responses are looked at from a stored watermark on `responded_at`, which then advances
    to a minute before the settling cutoff: anything older is settled and already seen.
    They are read inside the write transaction, so what is queued is what the thread
    records, whoever else is scanning.
    """
    with write(db) as conn:
        since = conn.execute(
            "SELECT value FROM notify_state WHERE name = 'scanned_until'").fetchone()
        rows = conn.execute(
            f"""{RESPONSE_SQL}
            WHERE r.responded_at >= :since
              AND {alertable_sql(config['SURVEY_SCORE_POLICY'], config['SURVEY_BURST_SECONDS'])}
            ORDER BY r.responded_at""",
            {"since": since[0] if since else "0"},
        ).fetchall()
        quiet_since = ago(config["SURVEY_BURST_SECONDS"])
        queued = sum(_queue_response(conn, config, dict(row), quiet_since) for row in rows)
        watermark = ago(config['SURVEY_BURST_SECONDS'] + 60)
        conn.execute(
            "INSERT INTO notify_state (name, value) VALUES ('scanned_until', ?) "
            "ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
            [watermark])
    return queued


def queue_response(db: sqlite_utils.Database, config: Config, response_id: int) -> int:
    """Queue notifications for one response now if it counts (e.g. restored as human)."""
    with write(db) as conn:
        row = conn.execute(
            f"{RESPONSE_SQL} WHERE r.id = ? AND {counted_sql(config['SURVEY_SCORE_POLICY'])}"
            f" AND {live_sql()}",
            [response_id]).fetchone()
        if row is None:
            return 0
        return _queue_response(conn, config, dict(row), ago(config["SURVEY_BURST_SECONDS"]))


def comment_digest(comment: str) -> str:
    """Return what a thread keeps of a comment: enough to see it changed, nothing to read."""
    return hashlib.sha256(comment.encode()).hexdigest()[:16]


NO_COMMENT = comment_digest("")


def _queue_response(conn, config: Config, row: dict, quiet_since: str) -> int:
    # The first time: the response is counted. Later: an update, only if the score or the
    # comment changed (the same form sent twice is nothing) and only once the response has
    # been quiet for the burst window, so a quick series of changes is one update.
    digest = comment_digest(row["comment"])
    thread = conn.execute(
        "SELECT revision, score, comment_digest, message_id, subject FROM alert_threads "
        "WHERE response_id = ?", [row["id"]]).fetchone()
    changes = None
    if thread is not None:
        changes = _changes(thread, row["score"], digest)
        if not changes or row["responded_at"] > quiet_since:
            return 0
    revision = thread["revision"] + 1 if thread else 1
    message_id, subject = (thread["message_id"], thread["subject"]) if thread else (None, None)
    event = f"response/{row['id']}/r{revision}"
    case_url = f"{config['SURVEY_BASE_URL']}/staff/followups/{row['id']}"
    queued = 0
    support = config["SURVEY_SUPPORT_EMAIL"]
    if support and (subject or segment(row["score"]) == "detractor"):
        email = {"type": "alert", "response": row, "case_url": case_url,
                 "message_id": make_msgid(domain=_domain(row["sender"]))}
        if subject:  # support heard of this response: tell them in the same thread
            email.update(type="update", subject=f"Re: {subject}", in_reply_to=message_id,
                         changes=changes)
        else:
            message_id, subject = email["message_id"], alert_subject(row)
            email["subject"] = subject
        queued += _insert(conn, f"{event}|email", "email", support, email, row["id"])
    payload = response_payload(row, case_url, changes,
                               thread["score"] if thread else None)
    for url in webhook_urls(config):
        queued += _insert(conn, f"{event}|webhook|{url}", "webhook", url, payload, row["id"])
    conn.execute(
        """
        INSERT INTO alert_threads (response_id, revision, score, comment_digest, message_id,
                                   subject, updated_at)
        VALUES (?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (response_id) DO UPDATE SET revision = excluded.revision,
            score = excluded.score, comment_digest = excluded.comment_digest,
            message_id = excluded.message_id, subject = excluded.subject,
            updated_at = excluded.updated_at
        """, [row["id"], revision, row["score"], digest, message_id, subject, now()])
    return queued


def _changes(thread, score: int, digest: str) -> list[str]:
    """Return what changed since the state last notified, in words."""
    changes = []
    if thread["score"] != score:
        changes.append(f"score {thread['score']} -> {score}")
    if thread["comment_digest"] != digest:
        changes.append("comment removed" if digest == NO_COMMENT else
                       "comment added" if thread["comment_digest"] == NO_COMMENT else
                       "comment changed")
    return changes


def _domain(sender: str) -> str:
    try:
        return parse_mailbox(sender).domain
    except ValueError:
        return "survey-mailer.invalid"


def _who(row: dict) -> str:
    return (row["name"] or row["email"]) + (f" ({row['company']})" if row["company"] else "")


def alert_subject(row: dict) -> str:
    """Return the subject of a detractor alert (its updates add "Re: ")."""
    return f"Detractor: {_who(row)} scored {row['score']}"


def response_payload(row: dict, case_url: str, changes: list[str] | None = None,
                     previous_score: int | None = None) -> dict:
    """Return the webhook body for a counted response, or for a change to one (`changes`).

    `text` is what Slack shows.
    """
    kind = segment(row["score"])
    who = slack_escape(_who(row))
    if changes is None:
        text = f"{who} scored {row['score']} ({kind})"
    else:
        text = (f"{who} changed their answer ({', '.join(changes)}): "
                f"now {row['score']} ({kind})")
    if row["comment"]:
        text += f': "{slack_escape(row["comment"])}"'
    if kind == "detractor":
        text += f" - follow up: {case_url}"
    payload = {
        "event": "response.counted" if changes is None else "response.updated",
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
    if changes is not None:
        payload["changes"] = changes
        payload["previous"] = {"score": previous_score}
    return payload


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
        return sum(_insert(conn, f"{event}|webhook|{url}", "webhook", url, payload,
                           response_id) for url in urls)


def _insert(conn, key: str, kind: str, target: str, payload: dict,
            response_id: int | None) -> int:
    stamp = now()
    cursor = conn.execute(
        "INSERT OR IGNORE INTO notifications (event_key, kind, target, payload, "
        "next_attempt_at, created_at, response_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [key, kind, target, json.dumps(payload, ensure_ascii=False), stamp, stamp,
         response_id])
    return cursor.rowcount


def webhook_urls(config: Config) -> list[str]:
    raw = config.get("SURVEY_WEBHOOK_URLS") or ""
    return [u.strip() for u in raw.split(",") if u.strip()]


# Sending ----------------------------------------------------------------------------------


class NotifyError(SurveyError):
    """A notification could not be sent this time."""


def claimer() -> str:
    """Return a new claim tag: this process's owner tag and a token for one dispatch."""
    return f"{leases.owner()}:{secrets.token_hex(4)}"


def claim(db: sqlite_utils.Database, limit: int = BATCH, by: str | None = None,
          response_id: int | None = None) -> list[dict]:
    """Claim due notifications for a lease, as `by` (a `claimer()` tag); return them.

    With `response_id`, only that response's.

    Claims whose lease ended, or whose claimer is a process that ended, are freed first.
    A notification waits for the earlier ones of its response to the same target, so an
    update never overtakes its alert.
    """
    stamp = now()
    with write(db) as conn:
        _free_abandoned(conn, stamp)
        rows = conn.execute(
            """
            UPDATE notifications
            SET status = 'claimed', claimed_by = :by, claimed_until = :until,
                handed_at = NULL, attempts = attempts + 1
            WHERE id IN (
                SELECT n.id FROM notifications n
                WHERE n.status = 'pending' AND n.next_attempt_at <= :now
                  AND (:response IS NULL OR n.response_id = :response)
                  AND NOT EXISTS (
                      SELECT 1 FROM notifications p
                      WHERE p.response_id = n.response_id AND p.kind = n.kind
                        AND p.target = n.target AND p.status IN ('pending', 'claimed')
                        AND p.id < n.id)
                ORDER BY n.next_attempt_at, n.id LIMIT :limit)
            RETURNING id, kind, target, payload, attempts, event_key
            """,
            {"by": by or claimer(), "until": ago(-leases.LEASE_SECONDS), "now": stamp,
             "limit": limit, "response": response_id}).fetchall()
    return sorted((dict(r) for r in rows), key=lambda r: r["id"])


def _free_abandoned(conn, stamp: str) -> None:
    alive: dict[str | None, bool] = {}
    for row in conn.execute(
            "SELECT id, kind, claimed_by, claimed_until, handed_at FROM notifications "
            "WHERE status = 'claimed'").fetchall():
        tag = row["claimed_by"]
        if tag not in alive:
            alive[tag] = leases.alive(tag)
        if alive[tag] and (row["claimed_until"] or "") > stamp:
            continue
        if row["kind"] == "email" and row["handed_at"]:
            conn.execute("UPDATE notifications SET status = 'unknown', claimed_until = NULL, "
                         "last_error = ?, finished_at = ? WHERE id = ?",
                         [INTERRUPTED, stamp, row["id"]])
        else:  # never handed over (or a webhook, which a receiver can drop if repeated)
            conn.execute("UPDATE notifications SET status = 'pending', claimed_by = NULL, "
                         "claimed_until = NULL, handed_at = NULL, next_attempt_at = ? "
                         "WHERE id = ?", [stamp, row["id"]])


def _renew(db: sqlite_utils.Database, by: str) -> None:
    with write(db) as conn:
        conn.execute("UPDATE notifications SET claimed_until = ? "
                     "WHERE claimed_by = ? AND status = 'claimed'",
                     [ago(-leases.LEASE_SECONDS), by])


class _Mail:
    """The mail backend: opened for the first email of a dispatch, closed after the last."""

    def __init__(self, config: Config, backend=None):
        self.config, self.backend, self.own = config, backend, False

    def get(self):
        if self.backend is None:
            self.backend, self.own = get_backend(self.config), True
        return self.backend

    def close(self) -> None:
        if self.own:
            self.backend.close()


def dispatch(db: sqlite_utils.Database, config: Config, limit: int = BATCH,
             backend=None, timeout: float = WEBHOOK_TIMEOUT,
             response_id: int | None = None) -> dict:
    """Queue what became due, then send up to `limit` notifications; return counts by outcome.

    Each notification succeeds or fails on its own: `sent`, `retry` (later, with backoff),
    `failed` (given up, with its reason) or `unknown` (interrupted mid-hand-off). `timeout`
    bounds each webhook request; a slow receiver is retried later, like a failure.

    With `response_id` (a person just sent the form), only that response is queued and
    sent: no scan of every recent response, none of the backlog, which is the worker's.
    """
    if response_id is None:
        scan(db, config)
    else:
        queue_response(db, config, response_id)
    done = {"sent": 0, "retry": 0, "failed": 0, "unknown": 0}
    by = claimer()
    jobs = claim(db, min(limit, BATCH), by, response_id)
    if not jobs:
        return done
    mail = _Mail(config, backend)
    try:
        with leases.Heartbeat(db, lambda own: _renew(own, by)):
            while jobs:
                for job in jobs:
                    if job["kind"] == "email":
                        outcome = _send_email(db, config, mail, job, by)
                    else:
                        outcome = _send_webhook(db, config, job, by, timeout)
                    if outcome:
                        done[outcome] += 1
                limit -= len(jobs)
                # Again: what waited for the notifications just sent may go now.
                jobs = claim(db, min(limit, BATCH), by, response_id) if limit > 0 else []
    finally:
        mail.close()
    return done


def _send_webhook(db, config: Config, job: dict, by: str, timeout: float) -> str:
    try:
        post_webhook(job["target"], job["payload"].encode(), job["event_key"],
                     config.get("SURVEY_WEBHOOK_SECRET"), timeout)
    except Exception as e:  # any failure is retried: a receiver drops a repeat by its event
        return _retry_later(db, job, by, str(e) if isinstance(e, NotifyError) else repr(e))
    return _record(db, job, by, "sent")


def _send_email(db, config: Config, mail: _Mail, job: dict, by: str) -> str | None:
    try:
        payload = json.loads(job["payload"])
        kind = payload.get("type", "alert")
        if kind in ("alert", "update"):
            message = alert_message(config, payload)
            row = payload["response"]
            campaign_id, delivery_id, kind = row["campaign_id"], row["delivery_id"], "alert"
        else:  # overdue alerts, digests and replies from a case (SPEC 13)
            from . import loop

            message, campaign_id, delivery_id = loop.build(payload, job["target"])
        data = message.as_bytes()
        envelope = Envelope(sender=message["From"].addresses[0].addr_spec,
                            recipient=job["target"], key=f"{kind}-n{job['id']}",
                            campaign_id=campaign_id, delivery_id=delivery_id)
    except Exception as e:  # nothing was handed over, and another try would build the same
        return _record(db, job, by, "failed", f"could not build the message: {e}")
    try:
        backend = mail.get()
    except Exception as e:  # e.g. a setting missing: nothing was handed over
        return _retry_later(db, job, by, f"no mail backend: {e}")
    with write(db) as conn:  # from here a crash leaves its fate unknown
        if conn.execute("UPDATE notifications SET handed_at = ? WHERE id = ? "
                        "AND status = 'claimed' AND claimed_by = ?",
                        [now(), job["id"], by]).rowcount == 0:
            return None  # the lease ran out and another dispatcher took it over
    try:
        backend.send(envelope, data)
    except SendingStopped as e:  # refused before the hand-off: nothing went out
        return _retry_later(db, job, by, str(e))
    except FateUnknown as e:
        return _record(db, job, by, "unknown", str(e))
    except DeliveryError as e:
        if e.permanent:
            return _record(db, job, by, "failed", str(e))
        return _retry_later(db, job, by, str(e))
    except Exception as e:
        # Unforeseen, mid-hand-off: it may have gone out, and sending it again could alert
        # twice. Left unknown, like after a crash, for staff to see.
        return _record(db, job, by, "unknown", f"unexpected error while handing over: {e!r}")
    return _record(db, job, by, "sent")


def _record(db, job: dict, by: str, status: str, error: str | None = None) -> str:
    # Only the claimer records: a claim taken over is the new claimer's. One marked unknown
    # when this claimer's lease ran out keeps its claimer, who knows what happened.
    with write(db) as conn:
        conn.execute(
            "UPDATE notifications SET status = :status, last_error = :error, "
            "claimed_until = NULL, finished_at = :now, "
            "sent_at = CASE WHEN :status = 'sent' THEN :now ELSE sent_at END "
            "WHERE id = :id AND claimed_by = :by",
            {"status": status, "error": error[:500] if error else None, "now": now(),
             "id": job["id"], "by": by})
    return status


def _retry_later(db, job: dict, by: str, error: str) -> str:
    final = job["attempts"] >= MAX_ATTEMPTS
    with write(db) as conn:
        conn.execute(
            "UPDATE notifications SET status = ?, next_attempt_at = ?, claimed_until = NULL, "
            "claimed_by = NULL, handed_at = NULL, last_error = ?, finished_at = ? "
            "WHERE id = ? AND claimed_by = ?",
            ["failed" if final else "pending", ago(-backoff(job["attempts"])), error[:500],
             now() if final else None, job["id"], by])
    return "failed" if final else "retry"


def retry_unknown(db: sqlite_utils.Database) -> int:
    """Queue again the emails whose hand-off was interrupted; return how many."""
    with write(db) as conn:
        return conn.execute(
            "UPDATE notifications SET status = 'pending', next_attempt_at = ?, "
            "claimed_by = NULL, handed_at = NULL, finished_at = NULL "
            "WHERE status = 'unknown'", [now()]).rowcount


def problems(db: sqlite_utils.Database, *, response_id: int | None = None,
             since: str | None = None, limit: int = 20) -> list[dict]:
    """Return notifications given up on or interrupted, latest first, each with a sentence.

    `since` keeps those that ended from then on.
    """
    where, params = ["n.status IN ('failed', 'unknown')"], []
    if response_id is not None:
        where.append("n.response_id = ?")
        params.append(response_id)
    if since is not None:
        where.append("n.finished_at >= ?")
        params.append(since)
    rows = db.execute(
        f"SELECT n.id, n.kind, n.target, n.status, n.last_error, n.finished_at, "
        f"n.response_id, json_extract(n.payload, '$.type') AS type, r.score "
        f"FROM notifications n LEFT JOIN responses r ON r.id = n.response_id "
        f"WHERE {' AND '.join(where)} ORDER BY n.finished_at DESC, n.id DESC LIMIT ?",
        [*params, limit])
    found = []
    for row in map(dict, rows):
        target, error = row["target"], row["last_error"] or ""
        if row["kind"] == "webhook":
            # A webhook URL's path is often its secret (Slack's are): show where, not how.
            parts = urllib.parse.urlsplit(target)
            shown = f"{parts.scheme}://{parts.netloc}/" + ("..." if parts.path.strip("/")
                                                           or parts.query else "")
            what, target, error = "Webhook", shown, error.replace(target, shown)
        else:
            what = {"update": "Alert update", "reply": "Reply", "overdue": "Overdue alert",
                    "digest": "Digest"}.get(row["type"], "Alert")
        outcome = "failed" if row["status"] == "failed" else "was interrupted"
        row["message"] = f"{what} to {target} {outcome}: {error}"
        row["case"] = row["score"] is not None and segment(row["score"]) == "detractor"
        found.append(row)
    return found


def signature(secret: str, body: bytes) -> str:
    """Return the `X-Survey-Signature` value: sha256=HMAC-SHA256(secret, body) in hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_webhook(url: str, body: bytes, event_key: str, secret: str | None,
                 timeout: float = WEBHOOK_TIMEOUT) -> None:
    """POST a JSON body; raise NotifyError unless the receiver answers 2xx."""
    headers = {"Content-Type": "application/json", "User-Agent": "survey-mailer",
               "X-Survey-Event": hashlib.sha256(event_key.encode()).hexdigest()[:32],
               "X-Survey-Timestamp": str(int(utcnow().timestamp()))}
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
    """Build a detractor alert, or an update in its thread: to support, Reply-To the customer."""
    row, case_url = payload["response"], payload["case_url"]
    update = payload.get("type") == "update"
    msg = EmailMessage()
    who = row["name"] or row["email"]
    company = f" ({row['company']})" if row["company"] else ""
    sender = parse_mailbox(row["sender"])
    # Headers as the email package's objects, every text cleaned of control characters
    # whatever path it took into the database: a name cannot add a header (Bcc:).
    msg["Subject"] = clean_text(payload.get("subject") or alert_subject(row))
    msg["From"] = sender
    msg["To"] = config["SURVEY_SUPPORT_EMAIL"]
    if valid_email(row["email"]):  # else no Reply-To: support still sees it in the body
        msg["Reply-To"] = address(row["name"], row["email"])
    msg["Date"] = formatdate(utcnow().timestamp(), usegmt=True)
    # Made when queued, so a resend carries the same id and an update can name its alert.
    msg["Message-ID"] = payload.get("message_id") or make_msgid(domain=sender.domain)
    if payload.get("in_reply_to"):
        msg["In-Reply-To"] = payload["in_reply_to"]
        msg["References"] = payload["in_reply_to"]
    msg["Auto-Submitted"] = "auto-generated"
    detractor = segment(row["score"]) == "detractor"
    if update:
        lines = [
            f"{who}{company} changed their answer to \"{row['campaign_name']}\": "
            f"{', '.join(payload['changes'])}.",
            f"Now: {row['score']} out of 10 ({segment(row['score'])}).",
        ]
    else:
        lines = [f"{who}{company} answered {row['score']} out of 10 to "
                 f"\"{row['campaign_name']}\"."]
    lines += [
        "",
        "Comment:",
        row["comment"] or "(no comment)",
        "",
        f"Contact: {row['email']}" + (" (agreed to be contacted)" if row["contact_ok"] else ""),
        f"Answered at: {iso(row['responded_at'])}",
        "",
        f"Follow-up case: {case_url}" if detractor else
        "No follow-up case: they are no longer a detractor.",
        "Reply to this email to write to the customer.",
    ]
    msg.set_content("\n".join(lines))
    return msg


def watch(db: sqlite_utils.Database, config: Config, interval: float = 5.0,
          stop=lambda: False) -> None:
    """Dispatch in a loop until `stop()` is true; a round that fails waits for the next."""
    while not stop():
        try:
            dispatch(db, config)
        except Exception as e:  # e.g. the database locked for longer than the timeout
            reason = " ".join(f"{type(e).__name__}: {e}".split())
            print(f"survey-mailer notify: {reason}; trying again in {interval:g}s",
                  file=sys.stderr)
        time.sleep(interval)
