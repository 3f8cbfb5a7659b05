"""Send a campaign: crash-safe delivery states, a rate never exceeded, a few workers.

Each delivery moves pending -> sending -> sent | failed | skipped, and each move is
committed on its own: `sending` before the hand-off, the outcome after it. A process
killed between the two leaves the delivery `sending`: its fate is unknown, so it is
reported and resent only when asked (`retry_unknown`). At most `concurrency` deliveries
are in flight at once, which bounds how many a crash can leave unknown.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import sqlite_utils

from . import campaigns
from .backends import Envelope
from .compose import Composer
from .db import now, write
from .errors import DeliveryError, SendingStopped
from .links import Links


class RateLimiter:
    """Allow at most `rate` starts in any one-second window (sliding log, thread-safe)."""

    def __init__(self, rate: float | None, clock=time.monotonic, sleep=time.sleep):
        self.rate = rate
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        # Below one per second, space the starts evenly instead.
        self._window = 1.0 if rate is None or rate >= 1 else 1.0 / rate
        self._size = max(1, int(rate)) if rate else 0
        self._starts: collections.deque[float] = collections.deque()

    def acquire(self) -> None:
        """Block until one more start fits in the window."""
        if not self.rate:
            return
        with self._lock:
            while True:
                t = self._clock()
                while self._starts and t - self._starts[0] >= self._window:
                    self._starts.popleft()
                if len(self._starts) < self._size:
                    self._starts.append(t)
                    return
                self._sleep(self._starts[0] + self._window - t)


@dataclass
class Summary:
    eligible: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    remaining: int = 0
    unknown: list[str] = field(default_factory=list)
    stopped: str | None = None
    dry_run: bool = False


PENDING_SQL = """
    SELECT d.id, c.email, c.name, c.language,
           c.unsubscribed_at IS NOT NULL OR c.suppressed_at IS NOT NULL AS excluded
    FROM deliveries d JOIN contacts c ON c.id = d.contact_id
    WHERE d.campaign_id = ? AND d.status = 'pending' AND d.id > ?
    ORDER BY d.id LIMIT ?
"""


class Sender:
    """Send one campaign through a backend."""

    def __init__(self, db: sqlite_utils.Database, backend, links: Links, *,
                 resurvey_days: int = 90, rate: float | None = None, concurrency: int = 1):
        self.db = db
        self.backend = backend
        self.links = links
        self.resurvey_days = resurvey_days
        self.limiter = RateLimiter(rate)
        self.concurrency = max(1, concurrency)

    def unknown(self, campaign_id: int) -> list[str]:
        """Return the addresses whose delivery was interrupted mid-hand-off."""
        return [r[0] for r in self.db.execute(
            "SELECT c.email FROM deliveries d JOIN contacts c ON c.id = d.contact_id "
            "WHERE d.campaign_id = ? AND d.status = 'sending' ORDER BY d.id", [campaign_id])]

    def send(self, campaign_id: int, *, dry_run: bool = False, limit: int | None = None,
             retry_unknown: bool = False,
             progress: Callable[[Summary], None] | None = None) -> Summary:
        """Send the campaign to every eligible contact who has not had it yet."""
        campaign = campaigns.get(self.db, campaign_id)
        summary = Summary(dry_run=dry_run)
        if dry_run:
            pending = self.db.execute(
                "SELECT count(*) FROM deliveries WHERE campaign_id = ? AND status = 'pending'",
                [campaign_id]).fetchone()[0]
            summary.eligible = pending + campaigns.count_eligible(
                self.db, campaign, self.resurvey_days)
            summary.unknown = self.unknown(campaign_id)
            return summary
        campaigns.plan(self.db, campaign, self.resurvey_days)
        if retry_unknown:
            with write(self.db) as conn:
                conn.execute("UPDATE deliveries SET status = 'pending' "
                             "WHERE campaign_id = ? AND status = 'sending'", [campaign_id])
        summary.unknown = self.unknown(campaign_id)
        summary.eligible = self.db.execute(
            "SELECT count(*) FROM deliveries WHERE campaign_id = ? AND status = 'pending'",
            [campaign_id]).fetchone()[0]
        composer = Composer(campaign, self.links)
        budget = summary.eligible if limit is None else min(limit, summary.eligible)
        started = 0
        in_flight: dict[Future, int] = {}
        last_id = 0
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="send") as pool:
            while started < budget and summary.stopped is None:
                batch = self.db.execute(
                    PENDING_SQL, [campaign_id, last_id, min(500, budget - started)]).fetchall()
                if not batch:
                    break
                for row in batch:
                    last_id = row["id"]
                    if summary.stopped or started >= budget:
                        break
                    if row["excluded"]:  # unsubscribed or suppressed since it was planned
                        self._mark(row["id"], "skipped", None, "unsubscribed or suppressed")
                        summary.skipped += 1
                        continue
                    while len(in_flight) >= self.concurrency:
                        self._collect(in_flight, summary, progress)
                    self._mark(row["id"], "sending")
                    started += 1
                    envelope = Envelope(campaign["sender"], row["email"],
                                        f"c{campaign_id}-d{row['id']}", campaign_id, row["id"])
                    in_flight[pool.submit(self._hand_off, composer, envelope, row)] = row["id"]
            while in_flight:
                self._collect(in_flight, summary, progress)
        summary.remaining = self.db.execute(
            "SELECT count(*) FROM deliveries WHERE campaign_id = ? AND status = 'pending'",
            [campaign_id]).fetchone()[0]
        return summary

    def _hand_off(self, composer: Composer, envelope: Envelope, row) -> str:
        message = composer.compose(row["id"], row["email"], row["name"], row["language"])
        self.limiter.acquire()
        return self.backend.send(envelope, message)

    def _collect(self, in_flight: dict[Future, int], summary: Summary, progress) -> None:
        done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
        for future in done:
            delivery_id = in_flight.pop(future)
            try:
                message_id = future.result()
            except SendingStopped as e:
                # Refused before hand-off: the message was not sent, so it is pending again.
                self._mark(delivery_id, "pending", None, str(e))
                summary.stopped = str(e)
            except DeliveryError as e:
                self._mark(delivery_id, "failed", None, str(e))
                summary.failed += 1
            else:
                self._mark(delivery_id, "sent", message_id)
                summary.sent += 1
            if progress:
                progress(summary)

    def _mark(self, delivery_id: int, status: str, message_id: str | None = None,
              error: str | None = None) -> None:
        with write(self.db) as conn:
            conn.execute(
                "UPDATE deliveries SET status = ?, message_id = coalesce(?, message_id), "
                "error = ?, sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END "
                "WHERE id = ?",
                [status, message_id, error, status, now(), delivery_id])
