"""Reminders: one more email to contacts who have not answered, never two.

A reminder is a row in `reminders`, unique per delivery, with the same crash-safe states as
a delivery (pending -> sending -> sent | failed | skipped). It carries the delivery's own
links, so an answer to the reminder is the answer to the campaign. Its key (`c3-d42-r1`)
names its outbox file, so a retried reminder overwrites its file instead of duplicating.
"""

from __future__ import annotations

import sqlite_utils

from . import campaigns
from .clock import ago, now
from .compose import MESSAGE_ID, Composer, Personal, Skeleton, strings, subject_for
from .config import Config
from .db import write
from .humans import reads_responses
from .links import from_config as links_from_config
from .scores import counted_sql
from .sender import Job, Sender, Summary

SUFFIX = "-r1"


def _due_sql(policy: str, since: bool = False) -> str:
    # Sent at least N days ago, still reachable, no counted answer, no reminder yet. With
    # `since`, only those sent after a time: the index on sent_at finds them, however long
    # the campaign's history (the worker, every round).
    sent = ("d.sent_at > ? AND d.sent_at <= ? AND +d.campaign_id = ? AND +d.status = 'sent'"
            if since else "d.campaign_id = ? AND d.status = 'sent' AND d.sent_at <= ?")
    return f"""
        SELECT d.id FROM deliveries d JOIN contacts c ON c.id = d.contact_id
        WHERE {sent}
          AND c.unsubscribed_at IS NULL AND c.suppressed_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM responses r
                          WHERE r.delivery_id = d.id AND {counted_sql(policy)})
          AND NOT EXISTS (SELECT 1 FROM reminders m WHERE m.delivery_id = d.id)
    """


@reads_responses
def count_due(db: sqlite_utils.Database, campaign_id: int, after_days: float,
              policy: str, since: str | None = None) -> int:
    """Count the reminders `plan` would add, without writing anything."""
    return db.execute(f"SELECT count(*) FROM ({_due_sql(policy, bool(since))})",
                      _due_params(campaign_id, after_days, since)).fetchone()[0]


def _due_params(campaign_id: int, after_days: float, since: str | None) -> list:
    # The cut-off to the microsecond: with 0 days, a delivery sent this very second is due
    # too.
    cutoff = ago(after_days * 86400)
    return [since, cutoff, campaign_id] if since else [campaign_id, cutoff]


@reads_responses
def plan(db: sqlite_utils.Database, campaign_id: int, after_days: float, policy: str,
         since: str | None = None) -> int:
    """Add a pending reminder for every delivery that is due one; return how many.

    `since` (a stored stamp): look only at deliveries sent after it.
    """
    with write(db) as conn:
        cursor = conn.execute(
            f"INSERT INTO reminders (delivery_id, campaign_id, status, created_at) "
            f"SELECT id, ?, 'pending', ? FROM ({_due_sql(policy, bool(since))}) WHERE 1 "
            f"ON CONFLICT (delivery_id) DO NOTHING",
            [campaign_id, now(), *_due_params(campaign_id, after_days, since)])
    return cursor.rowcount


def send(db: sqlite_utils.Database, sender: Sender, config: Config, campaign_id: int, *,
         after_days: float, dry_run: bool = False, limit: int | None = None,
         retry_unknown: bool = False, progress=None, stop=lambda: False,
         since: str | None = None) -> Summary:
    """Send one reminder to each contact who got the campaign `after_days` ago or more
    and has no counted response; never a second one.

    `since`: plan reminders only for deliveries sent after it (the worker, which planned
    the earlier ones already); those planned before are sent all the same.
    """
    policy = config["SURVEY_SCORE_POLICY"]
    campaign = campaigns.ready(db, config, campaign_id)
    reminders = job(campaign, ReminderComposer(campaign, links_from_config(config)), policy)
    if dry_run:
        return Summary(dry_run=True, unknown=sender.unknown(reminders), eligible=(
            sender.due(reminders) + count_due(db, campaign_id, after_days, policy)))
    plan(db, campaign_id, after_days, policy, since)
    return sender.run(reminders, limit=limit, retry_unknown=retry_unknown, progress=progress,
                      stop=stop)


def job(campaign: dict, composer: Composer, policy: str) -> Job:
    """Return the sender's job for a campaign's reminders: excluded once the contact answered."""
    return Job(
        table="reminders",
        pending_sql=f"""
            SELECT m.id, m.delivery_id, c.email, c.name, c.language,
                   c.unsubscribed_at IS NOT NULL OR c.suppressed_at IS NOT NULL
                   OR c.erased_at IS NOT NULL OR EXISTS (SELECT 1 FROM responses r
                              WHERE r.delivery_id = m.delivery_id AND {counted_sql(policy)})
                   AS excluded
            FROM reminders m JOIN deliveries d ON d.id = m.delivery_id
            JOIN contacts c ON c.id = d.contact_id
            WHERE m.campaign_id = :campaign AND m.status = 'pending' AND m.id > :after
            ORDER BY m.id LIMIT :limit
        """,
        due_sql="""
            SELECT count(*) FROM reminders m
            WHERE m.campaign_id = :campaign AND m.status = 'pending'
        """,
        unknown_sql="""
            SELECT c.email, m.claimed_by FROM reminders m
            JOIN deliveries d ON d.id = m.delivery_id
            JOIN contacts c ON c.id = d.contact_id
            WHERE m.campaign_id = :campaign AND m.status = 'sending' ORDER BY m.id
        """,
        suffix=SUFFIX,
        campaign=campaign,
        composer=composer,
    )


class ReminderSkeleton(Skeleton):
    """The campaign's skeleton with a translated "Reminder:" before the subject."""

    def __init__(self, campaign: dict, language: str, links):
        prefix = strings(language)["reminder"]
        subject = f"{prefix} {subject_for(campaign, language)}"
        super().__init__({**campaign, "subject": subject, f"subject_{language}": subject},
                         language, links)

    def values(self, person: Personal) -> dict[bytes, bytes]:
        values = super().values(person)
        # Its own Message-ID: mail clients drop a second message with the same one.
        key = MESSAGE_ID.encode("ascii")
        local, _, domain = values[key].partition(b"@")
        values[key] = local + SUFFIX.replace("-", ".").encode("ascii") + b"@" + domain
        return values


class ReminderComposer(Composer):
    """Compose reminders; normal sends never pass through here."""

    def skeleton(self, language: str) -> Skeleton:
        if language not in self._skeletons:
            self._skeletons[language] = ReminderSkeleton(self.campaign, language, self.links)
        return self._skeletons[language]
