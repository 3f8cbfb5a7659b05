"""The worker: the one background service beside gunicorn (SPEC 10).

Each round it folds new clicks, tags comments with themes, queues overdue-case alerts and
the digest, dispatches alerts, replies and webhooks, starts scheduled campaigns,
opens recurring periods, sends every delivery that is due, and sends automatic reminders.
Sending goes through the crash-safe, rate-limited sender: each delivery is claimed as it
starts, so any number of workers may share one database and none is sent twice, and the
rate is one file-locked log for all of them. A stop request (SIGTERM, SIGINT) lets the
messages in flight finish and starts nothing new.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from zoneinfo import ZoneInfo

import sqlite_utils

from . import account_stats, campaigns, humans, loop, notify, reminders, schedules, themes
from .clock import ago, now, shift
from .config import Config
from .db import write
from .errors import SurveyError
from .sender import Sender, Summary, owners
from .sender import from_config as sender_from_config

log = logging.getLogger("survey_mailer.worker")

# Reminders: each round looks again at the five minutes before where the previous one
# stopped, for deliveries whose `sent` was committed just after that round read them (with
# 0 days) or stamped by a clock a little behind.
REMIND_OVERLAP_SECONDS = 300
# After a theme rule change, each round re-tags this many batches of comments (50,000):
# about a second's work, so a million comments never hold up a round's sends for long.
RETAG_BATCHES = 10


class Worker:
    """Do one round of due work at a time, or rounds until told to stop."""

    def __init__(self, db: sqlite_utils.Database, config: Config,
                 sender_factory: Callable[[], Sender] | None = None):
        self.db = db
        self.config = config
        self.zone = ZoneInfo(config["SURVEY_TIMEZONE"])
        self.stopping = threading.Event()
        self._sender_factory = sender_factory or (lambda: sender_from_config(db, config))
        self._owners = owners(db)
        self._reported: set[int] = set()  # deliveries already logged as unknown
        self._complained: set[str] = set()  # problems already logged

    def stop(self) -> None:
        """Finish the messages in flight, start nothing new, end the loop."""
        self.stopping.set()

    def run(self, interval: float | None = None) -> None:
        """Do rounds every `interval` seconds until stopped; a failing round is logged."""
        interval = interval or self.config["SURVEY_WORKER_INTERVAL"]
        while not self.stopping.is_set():
            try:
                self.round()
            except (sqlite3.Error, SurveyError, OSError) as e:
                log.error("round failed: %s; trying again in %gs", e, interval)
            self.stopping.wait(interval)

    def round(self) -> dict:
        """Do everything that is due now, once; return counts of what was done."""
        done: dict = {}
        folded = humans.fold(self.db)
        if folded:
            log.info("folded %d clicks", folded)
        done["folded"] = folded
        # The accounts report's totals, brought up to date here so pages find them so.
        done["accounts"] = account_stats.refresh(
            self.db, self.config["SURVEY_SCORE_POLICY"],
            self.config["SURVEY_ACCOUNT_WINDOW_DAYS"])
        # Closing the loop (SPEC 13): theme tags, then what the dispatch below sends.
        done["tagged"] = themes.tag_new(self.db, batches=RETAG_BATCHES)
        done["overdue"] = loop.queue_overdue(self.db, self.config)
        done["digest"] = loop.queue_digest(self.db, self.config)
        if done["overdue"] or done["digest"]:
            log.info("queued %d overdue alerts%s", done["overdue"],
                     f", the digest of {done['digest']}" if done["digest"] else "")
        notified = notify.dispatch(self.db, self.config, limit=200)
        if any(notified.values()):
            log.info("notifications: %d sent, %d to retry, %d failed, %d interrupted",
                     notified["sent"], notified["retry"], notified["failed"],
                     notified.get("unknown", 0))
        done["notifications"] = notified
        resurvey = self.config["SURVEY_RESURVEY_DAYS"]
        for campaign_id, planned in schedules.start_due(self.db, resurvey):
            log.info("campaign %d: scheduled time reached, %d deliveries planned",
                     campaign_id, planned)
        for campaign_id, label, planned in schedules.open_periods(self.db, self.zone,
                                                                  resurvey):
            log.info("campaign %d: period %s opened, %d deliveries spread over it",
                     campaign_id, label, planned)
        done["sent"] = self._send_due()
        done["reminded"] = self._remind()
        done["unknown"] = self._report_unknown()
        return done

    def _report_unknown(self) -> int:
        """Log, once, each delivery whose sender died mid-hand-off; return how many there are.

        Their fate is unknown (the message may have gone out), so they are not resent; a
        person decides (`campaign send ID --retry-unknown`).
        """
        gone: dict[int, list[tuple[int, str]]] = {}
        for row in self.db.execute(
                "SELECT d.id, d.campaign_id, d.claimed_by, c.email FROM deliveries d"
                " JOIN contacts c ON c.id = d.contact_id WHERE d.status = 'sending'"
                " ORDER BY d.id").fetchall():
            if not self._owners.alive(row["claimed_by"]):
                gone.setdefault(row["campaign_id"], []).append((row["id"], row["email"]))
        for campaign_id, rows in gone.items():
            if {i for i, _ in rows} - self._reported:
                log.warning("campaign %d: %d with unknown fate (interrupted mid-send, not "
                            "resent): %s", campaign_id, len(rows),
                            ", ".join(email for _, email in rows))
                self._reported |= {i for i, _ in rows}
        return sum(len(rows) for rows in gone.values())

    def _due_campaigns(self) -> list[int]:
        return [r[0] for r in self.db.execute(
            "SELECT DISTINCT d.campaign_id FROM deliveries d"
            " JOIN campaigns c ON c.id = d.campaign_id"
            " WHERE d.status = 'pending' AND d.due_at <= ? AND c.paused_at IS NULL"
            " ORDER BY d.campaign_id", [now()])]

    def _send_due(self) -> int:
        """Send the due deliveries of every campaign; return how many were sent."""
        due = self._due_campaigns()
        if not due or self.stopping.is_set():
            return 0
        sender = self._sender_factory()
        sent = 0
        try:
            for campaign_id in due:
                if self.stopping.is_set():
                    break
                try:
                    summary = campaigns.send(self.db, sender, self.config, campaign_id,
                                             scheduled_only=True, stop=self.stopping.is_set)
                except SurveyError as e:  # e.g. no postal address: this campaign waits
                    self._complain(f"campaign {campaign_id}: not sent: {e}")
                    continue
                self._log_summary(f"campaign {campaign_id}", summary)
                sent += summary.sent
                if summary.stopped:
                    break  # the provider refuses everything: later rounds try again
        finally:
            sender.backend.close()
        return sent

    def _remind(self) -> int:
        """Send the automatic reminders that are due; return how many were sent.

        Each campaign remembers up to when its deliveries' reminders were planned
        (`reminders_through`), so a round looks only at deliveries sent since (through the
        index on sent_at), however many campaigns and deliveries came before.
        """
        policy = self.config["SURVEY_SCORE_POLICY"]
        due, marks = [], []
        for campaign_id, days, through in self.db.execute(
                "SELECT id, remind_after_days, reminders_through FROM campaigns"
                " WHERE remind_after_days IS NOT NULL AND paused_at IS NULL").fetchall():
            cutoff = ago(days * 86400)
            since = shift(through, -REMIND_OVERLAP_SECONDS) if through else None
            if reminders.count_due(self.db, campaign_id, days, policy, since) or \
                    self.db.execute("SELECT 1 FROM reminders WHERE campaign_id = ? AND"
                                    " status = 'pending'", [campaign_id]).fetchone():
                due.append((campaign_id, days, since))
            else:
                marks.append((cutoff, campaign_id))
        if marks:
            with write(self.db) as conn:
                conn.executemany("UPDATE campaigns SET reminders_through = ? WHERE id = ?",
                                 marks)
        if not due or self.stopping.is_set():
            return 0
        sender = self._sender_factory()
        sent = 0
        try:
            for campaign_id, days, since in due:
                if self.stopping.is_set():
                    break
                cutoff = ago(days * 86400)
                try:
                    summary = reminders.send(self.db, sender, self.config, campaign_id,
                                             after_days=days, since=since,
                                             stop=self.stopping.is_set)
                except SurveyError as e:  # e.g. no postal address: these reminders wait
                    self._complain(f"campaign {campaign_id}: reminders not sent: {e}")
                    continue
                with write(self.db) as conn:
                    conn.execute("UPDATE campaigns SET reminders_through = ? WHERE id = ?",
                                 [cutoff, campaign_id])
                self._log_summary(f"campaign {campaign_id} reminders", summary)
                sent += summary.sent
        finally:
            sender.backend.close()
        return sent

    def _complain(self, problem: str) -> None:
        # Once per problem and process: every round would repeat it every few seconds
        # until someone fixes it.
        if problem not in self._complained:
            self._complained.add(problem)
            log.error("%s", problem)

    @staticmethod
    def _log_summary(what: str, summary: Summary) -> None:
        if summary.sent or summary.failed or summary.skipped or summary.deferred:
            log.info("%s: %d sent, %d failed, %d skipped, %d deferred, %d left", what,
                     summary.sent, summary.failed, summary.skipped, summary.deferred,
                     summary.remaining)
        if summary.stopped:
            log.error("%s: sending stopped: %s", what, summary.stopped)
