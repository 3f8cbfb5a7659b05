"""Send a campaign (or its reminders): crash-safe states, a rate never exceeded, a few workers.

Each delivery (and each reminder, in its own table) moves pending -> sending -> sent |
failed | skipped, and each move is committed on its own: `sending` before the hand-off,
the outcome after it. A process killed between the two leaves the row `sending`: its fate
is unknown, so it is reported and resent only when asked (`retry_unknown`). At most
`concurrency` messages are in flight at once, which bounds how many a crash can leave
unknown. A temporary failure that outlived the backend's retries goes back to `pending`
for the next run; a permanent one is `failed`.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import sqlite_utils

from . import campaigns, reminders
from .backends import Envelope
from .compose import Composer
from .db import now, write
from .errors import DeliveryError, FateUnknown, SendingStopped
from .links import Links


class RateLimiter:
    """Allow at most `rate` starts in any one-second window (sliding log, thread-safe)."""

    def __init__(self, rate: float | None, clock=time.monotonic, sleep=time.sleep,
                 record: list[float] | None = None, margin: float = 0.0):
        self.rate = rate
        self.record = record  # when given, every start time is appended (tests, bench)
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        # Below one per second, space the starts evenly instead. `margin` lengthens the
        # window a little, so the delay between taking a slot and the request reaching
        # the wire (thread scheduling) cannot push one more into a one-second window.
        self._window = (1.0 if rate is None or rate >= 1 else 1.0 / rate) * (1 + margin)
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
                    if self.record is not None:
                        self.record.append(t)
                    return
                # At least a microsecond: float rounding can leave t a hair short of the
                # window's end after sleeping exactly the gap, and the loop would spin.
                self._sleep(max(self._starts[0] + self._window - t, 1e-6))


@dataclass
class Summary:
    eligible: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    deferred: int = 0  # temporary failures, pending again for the next run
    remaining: int = 0
    unknown: list[str] = field(default_factory=list)
    stopped: str | None = None
    dry_run: bool = False


@dataclass(frozen=True)
class Job:
    """What one run sends: the table holding its states and how rows become messages.

    `pending_sql` selects, after an id and up to a count, rows with `id` (of the state
    table), `delivery_id` (whose tokens the message carries), `email`, `name`, `language`
    and `excluded` (not to be sent after all).
    """

    table: str
    pending_sql: str
    unknown_sql: str
    suffix: str  # added to the delivery's key: names outbox files, tags SES messages


DELIVERIES = Job(
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
)


# 5% of a second (50 ms at the window's edge) of slack for scheduling delays between a
# slot and the wire, measured by bench/bench_send.py; it costs 5% at the rate cap.
RATE_MARGIN = 0.05


class Sender:
    """Send one campaign, or its reminders, through a backend."""

    def __init__(self, db: sqlite_utils.Database, backend, links: Links, *,
                 resurvey_days: int = 90, rate: float | None = None, concurrency: int = 1,
                 limiter: RateLimiter | None = None):
        self.db = db
        self.backend = backend
        self.links = links
        self.resurvey_days = resurvey_days
        self.limiter = limiter or RateLimiter(rate, margin=RATE_MARGIN)
        self.concurrency = max(1, concurrency)
        # The first attempt's slot is taken here, before the row is marked `sending`, so a
        # crash while waiting for the rate leaves nothing unknown. Backends that retry
        # inside send() (`paced`) take a slot for every further attempt themselves.
        if getattr(backend, "paced", False):
            backend.pace = self.limiter.acquire

    def unknown(self, campaign_id: int, job: Job = DELIVERIES) -> list[str]:
        """Return the addresses whose message was interrupted mid-hand-off."""
        return [r[0] for r in self.db.execute(job.unknown_sql, [campaign_id])]

    def _count(self, job: Job, campaign_id: int, status: str) -> int:
        return self.db.execute(
            f"SELECT count(*) FROM {job.table} WHERE campaign_id = ? AND status = ?",
            [campaign_id, status]).fetchone()[0]

    def send(self, campaign_id: int, *, dry_run: bool = False, limit: int | None = None,
             retry_unknown: bool = False,
             progress: Callable[[Summary], None] | None = None) -> Summary:
        """Send the campaign to every eligible contact who has not had it yet."""
        campaign = campaigns.get(self.db, campaign_id)
        if dry_run:
            return Summary(dry_run=True, unknown=self.unknown(campaign_id), eligible=(
                self._count(DELIVERIES, campaign_id, "pending")
                + campaigns.count_eligible(self.db, campaign, self.resurvey_days)))
        campaigns.plan(self.db, campaign, self.resurvey_days)
        return self._run(DELIVERIES, campaign, Composer(campaign, self.links), limit,
                         retry_unknown, progress)

    def remind(self, campaign_id: int, *, after_days: int, policy: str = "balanced",
               dry_run: bool = False, limit: int | None = None, retry_unknown: bool = False,
               progress: Callable[[Summary], None] | None = None) -> Summary:
        """Send one reminder to each contact who got the campaign `after_days` ago or more
        and has no counted response; never a second one."""
        campaign = campaigns.get(self.db, campaign_id)
        job = reminders.job(policy)
        if dry_run:
            return Summary(dry_run=True, unknown=self.unknown(campaign_id, job), eligible=(
                self._count(job, campaign_id, "pending")
                + reminders.count_due(self.db, campaign_id, after_days, policy)))
        reminders.plan(self.db, campaign_id, after_days, policy)
        return self._run(job, campaign, reminders.ReminderComposer(campaign, self.links),
                         limit, retry_unknown, progress)

    def _run(self, job: Job, campaign: dict, composer: Composer, limit: int | None,
             retry_unknown: bool, progress) -> Summary:
        campaign_id = campaign["id"]
        summary = Summary()
        if retry_unknown:
            with write(self.db) as conn:
                conn.execute(f"UPDATE {job.table} SET status = 'pending' "
                             f"WHERE campaign_id = ? AND status = 'sending'", [campaign_id])
        summary.eligible = self._count(job, campaign_id, "pending")
        budget = summary.eligible if limit is None else min(limit, summary.eligible)
        started = 0
        in_flight: dict[Future, tuple[Job, int]] = {}
        last_id = 0
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="send") as pool:
            while started < budget and summary.stopped is None:
                batch = self.db.execute(
                    job.pending_sql, [campaign_id, last_id, min(500, budget - started)]
                ).fetchall()
                if not batch:
                    break
                for row in batch:
                    last_id = row["id"]
                    if summary.stopped or started >= budget:
                        break
                    if row["excluded"]:  # e.g. unsubscribed or suppressed since planned
                        self._mark(job, row["id"], "skipped", None, "excluded since planned")
                        summary.skipped += 1
                        continue
                    while len(in_flight) >= self.concurrency:
                        self._collect(in_flight, summary, progress)
                    if summary.stopped:
                        break
                    self.limiter.acquire()
                    self._mark(job, row["id"], "sending")
                    started += 1
                    envelope = Envelope(
                        campaign["sender"], row["email"],
                        f"c{campaign_id}-d{row['delivery_id']}{job.suffix}", campaign_id,
                        row["delivery_id"])
                    future = pool.submit(self._hand_off, composer, envelope, row)
                    in_flight[future] = (job, row["id"])
            while in_flight:
                self._collect(in_flight, summary, progress)
        summary.remaining = self._count(job, campaign_id, "pending")
        summary.unknown = self.unknown(campaign_id, job)
        return summary

    def _hand_off(self, composer: Composer, envelope: Envelope, row) -> str:
        try:
            message = composer.compose(row["delivery_id"], row["email"], row["name"],
                                       row["language"])
        except Exception as e:  # nothing was handed over: this one failed, the rest go on
            raise DeliveryError(f"could not compose the message: {e!r}", permanent=True) from e
        try:
            return self.backend.send(envelope, message)
        except (DeliveryError, SendingStopped):
            raise
        except Exception as e:
            # A failure we did not foresee, mid-hand-off: it may have gone out, so its fate
            # is unknown (listed, resent only with --retry-unknown), never a lost state.
            raise FateUnknown(f"unexpected error while handing over: {e!r}") from e

    def _collect(self, in_flight: dict, summary: Summary, progress) -> None:
        done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
        for future in done:
            job, row_id = in_flight.pop(future)
            try:
                message_id = future.result()
            except SendingStopped as e:
                # Refused before hand-off: the message was not sent, so it is pending again.
                self._mark(job, row_id, "pending", None, str(e))
                summary.stopped = str(e)
            except FateUnknown as e:
                self._mark(job, row_id, "sending", None, str(e))
            except DeliveryError as e:
                if e.permanent:
                    self._mark(job, row_id, "failed", None, str(e))
                    summary.failed += 1
                else:
                    self._mark(job, row_id, "pending", None, str(e))
                    summary.deferred += 1
            else:
                self._mark(job, row_id, "sent", message_id)
                summary.sent += 1
            if progress:
                progress(summary)

    def _mark(self, job: Job, row_id: int, status: str, message_id: str | None = None,
              error: str | None = None) -> None:
        with write(self.db) as conn:
            conn.execute(
                f"UPDATE {job.table} SET status = ?, message_id = coalesce(?, message_id), "
                f"error = ?, sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END "
                f"WHERE id = ?",
                [status, message_id, error, status, now(), row_id])
