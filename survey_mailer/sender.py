"""Send planned messages: crash-safe states, a rate never exceeded, a few in flight.

The sender runs a `Job`: rows of one table (deliveries, reminders) planned beforehand by
`campaigns` or `reminders`. Each row moves pending -> sending -> sent | failed | skipped,
and each move is committed on its own: `sending` before the hand-off, the outcome after it.
A process killed between the two leaves the row `sending`: its fate is unknown, so it is
reported and resent only when asked (`retry_unknown`). Each row records which sender
claimed it, and a running sender holds a lock named after itself (`Owners`), so a row
another live sender has in flight is never taken for unknown, nor resent. At most
`concurrency` messages are in flight at once, which bounds how many a crash can leave
unknown. A temporary failure
that outlived the backend's retries goes back to `pending` for the next run; a permanent
one is `failed`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Protocol

import sqlite_utils

from .backends import Envelope, get_backend
from .clock import now
from .config import Config
from .db import write
from .errors import DeliveryError, FateUnknown, SendingStopped
from .ratelimit import RATE_MARGIN, RateLimiter, SharedRateLimiter


@dataclass
class Summary:
    eligible: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    deferred: int = 0  # temporary failures, pending again for the next run
    remaining: int = 0
    unknown: list[str] = field(default_factory=list)
    scheduled: int = 0  # pending, but not due yet
    stopped: str | None = None
    dry_run: bool = False


class Composer(Protocol):
    def compose(self, delivery_id: int, email: str, name: str, language: str) -> bytes: ...


@dataclass(frozen=True)
class Job:
    """One run's work: the table holding its states, and how rows become messages.

    `pending_sql` selects the rows due by `:now` of campaign `:campaign`, after id `:after`,
    at most `:limit`: `id` (of the state table), `delivery_id` (whose tokens the message
    carries), `email`, `name`, `language` and `excluded` (not to be sent after all).
    `due_sql` counts the rows due by `:now`; `unknown_sql` lists the address and the
    `claimed_by` of each row left `sending`.
    """

    table: str
    pending_sql: str
    due_sql: str
    unknown_sql: str
    suffix: str  # added to the delivery's key: names outbox files, tags SES messages
    campaign: dict
    composer: Composer


class Owners:
    """Who is sending: each running sender holds the lock of a file named after itself.

    A row left `sending` by a sender whose lock is free was interrupted (its process was
    killed, or its hand-off failed in a way nobody foresaw): its fate is unknown. A row
    whose sender still holds its lock is in flight, and is left alone even by
    --retry-unknown. The locks are the kernel's (flock), so a killed process lets go of its
    own at once.
    """

    TOKEN_RE = re.compile(r"[0-9a-f]{32}")

    def __init__(self, directory: str | None):
        self.directory = directory  # None: an in-memory database, one process

    @contextlib.contextmanager
    def hold(self) -> Iterator[str]:
        """Hold a new sender's lock for the duration; yield its token."""
        token = uuid.uuid4().hex
        if self.directory is None:
            yield token
            return
        os.makedirs(self.directory, exist_ok=True)
        for name in os.listdir(self.directory):  # tidy up after killed senders
            self.alive(name)
        path = os.path.join(self.directory, token)
        # Locked under another name, then renamed: whoever opens `path` finds it locked
        # (a sweep between creating and locking it would take it for a dead sender's).
        fd = os.open(f"{path}.new", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(f"{path}.new", path)
            yield token
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            os.close(fd)

    def alive(self, token: str | None) -> bool:
        """Return whether the sender with this token is running right now."""
        if self.directory is None or token is None or not self.TOKEN_RE.fullmatch(token):
            return False
        path = os.path.join(self.directory, token)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # its sender is gone: nobody needs the file
            return False
        finally:
            os.close(fd)


class Sender:
    """Run jobs through a backend, at most `rate` messages a second."""

    def __init__(self, db: sqlite_utils.Database, backend, *, rate: float | None = None,
                 concurrency: int = 1, limiter: RateLimiter | None = None):
        self.db = db
        self.backend = backend
        self.limiter = limiter or RateLimiter(rate, margin=RATE_MARGIN)
        self.concurrency = max(1, concurrency)
        self.owners = owners(db)
        # The first attempt's slot is taken here, before the row is marked `sending`, so a
        # crash while waiting for the rate leaves nothing unknown. Backends that retry
        # inside send() (`paced`) take a slot for every further attempt themselves.
        if getattr(backend, "paced", False):
            backend.pace = self.limiter.acquire

    def unknown(self, job: Job) -> list[str]:
        """Return the addresses whose message was interrupted mid-hand-off.

        Rows that a running sender (another worker) has in flight right now are not
        unknown: their sender will record how it went.
        """
        rows = self.db.execute(job.unknown_sql, {"campaign": job.campaign["id"]}).fetchall()
        owners = {row[1] for row in rows}
        gone = {owner for owner in owners if not self.owners.alive(owner)}
        return [row[0] for row in rows if row[1] in gone]

    def count(self, job: Job, status: str = "pending") -> int:
        """Return how many of the job's rows are in a state."""
        return self.db.execute(
            f"SELECT count(*) FROM {job.table} WHERE campaign_id = ? AND status = ?",
            [job.campaign["id"], status]).fetchone()[0]

    def due(self, job: Job) -> int:
        """Return how many of the job's pending rows are due now."""
        return self.db.execute(job.due_sql, {"campaign": job.campaign["id"],
                                             "now": now()}).fetchone()[0]

    def run(self, job: Job, *, limit: int | None = None, retry_unknown: bool = False,
            progress: Callable[[Summary], None] | None = None,
            stop: Callable[[], bool] = lambda: False) -> Summary:
        """Send the job's due rows (at most `limit`); return what happened.

        Each message takes a rate slot, then claims the first row of its batch that is
        still pending (pending -> sending, in one statement), so any number of senders may
        run one job at once, each row goes out once, and a row another sender took first
        costs no slot. `stop()` is asked before each message and while waiting for the
        rate: when true, no new one starts and those in flight finish (a worker told to
        stop).
        """
        campaign = job.campaign
        campaign_id = campaign["id"]
        summary = Summary()
        with self.owners.hold() as owner:
            if retry_unknown:
                self._reset_unknown(job)
            summary.eligible = self.due(job)
            budget = summary.eligible if limit is None else min(limit, summary.eligible)
            started = 0
            in_flight: dict[Future, tuple[Job, int]] = {}
            last_id = 0
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="send") as pool:
                while started < budget and summary.stopped is None and not stop():
                    batch = self.db.execute(job.pending_sql, {
                        "campaign": campaign_id, "now": now(), "after": last_id,
                        "limit": min(500, budget - started)}).fetchall()
                    if not batch:
                        break
                    last_id = batch[-1]["id"]
                    rows = {}
                    for row in batch:
                        if not row["excluded"]:
                            rows[row["id"]] = row
                        elif self._skip(job, row["id"]):  # unsubscribed etc. since planned
                            summary.skipped += 1
                    queue = list(rows)
                    while queue and started < budget and summary.stopped is None:
                        while len(in_flight) >= self.concurrency:
                            self._collect(in_flight, summary, progress)
                        if summary.stopped or stop() or not self.limiter.acquire(stop):
                            break
                        row_id = self._claim(job, queue, owner)
                        if row_id is None:
                            break  # the rest of the batch went to other senders
                        started += 1
                        row = rows[row_id]
                        envelope = Envelope(
                            campaign["sender"], row["email"],
                            f"c{campaign_id}-d{row['delivery_id']}{job.suffix}", campaign_id,
                            row["delivery_id"])
                        future = pool.submit(self._hand_off, job.composer, envelope, row)
                        in_flight[future] = (job, row_id)
                while in_flight:
                    self._collect(in_flight, summary, progress)
        summary.remaining = self.due(job)
        summary.scheduled = self.count(job) - summary.remaining
        summary.unknown = self.unknown(job)
        return summary

    def _reset_unknown(self, job: Job) -> None:
        """Make the rows left `sending` by senders that are gone pending again."""
        with write(self.db) as conn:
            owners = [r[0] for r in conn.execute(
                f"SELECT DISTINCT claimed_by FROM {job.table} "
                f"WHERE campaign_id = ? AND status = 'sending'", [job.campaign["id"]])]
            gone = [o for o in owners if not self.owners.alive(o)]
            conn.executemany(
                f"UPDATE {job.table} SET status = 'pending' WHERE campaign_id = ? "
                f"AND status = 'sending' AND claimed_by IS ?",
                [(job.campaign["id"], owner) for owner in gone])

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

    # How many of a batch's ids one claim looks at: a short list keeps the statement cheap
    # while another sender races through the same batch.
    CLAIM_WINDOW = 32

    def _claim(self, job: Job, queue: list[int], owner: str) -> int | None:
        """Take the first row of `queue` still pending; return its id, None if none is left.

        The ids up to the one taken leave the queue: they are this sender's now, or were
        taken by another.
        """
        while queue:
            window = queue[:self.CLAIM_WINDOW]
            with write(self.db) as conn:
                row = conn.execute(
                    f"UPDATE {job.table} SET status = 'sending', error = NULL, claimed_by = ? "
                    f"WHERE id = (SELECT id FROM {job.table} WHERE id IN "
                    f"(SELECT value FROM json_each(?)) AND status = 'pending' "
                    f"ORDER BY id LIMIT 1) RETURNING id",
                    [owner, json.dumps(window)]).fetchall()
            if row:
                del queue[:queue.index(row[0][0]) + 1]
                return row[0][0]
            del queue[:len(window)]
        return None

    def _skip(self, job: Job, row_id: int) -> bool:
        """Mark a row `skipped` if it is still pending; return whether it was."""
        with write(self.db) as conn:
            return conn.execute(
                f"UPDATE {job.table} SET status = 'skipped', error = 'excluded since planned' "
                f"WHERE id = ? AND status = 'pending'", [row_id]).rowcount == 1

    def _mark(self, job: Job, row_id: int, status: str, message_id: str | None = None,
              error: str | None = None) -> None:
        with write(self.db) as conn:
            conn.execute(
                f"UPDATE {job.table} SET status = ?, message_id = coalesce(?, message_id), "
                f"error = ?, sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END "
                f"WHERE id = ?",
                [status, message_id, error, status, now(), row_id])


def owners(db: sqlite_utils.Database) -> Owners:
    """Return the registry of the senders running on a database (lock files beside it)."""
    path = getattr(db, "path", ":memory:")
    return Owners(None if path == ":memory:" else f"{path}-senders")


def from_config(db: sqlite_utils.Database, config: Config) -> Sender:
    """Build a sender on the configured backend, at SURVEY_SEND_RATE or the provider's quota."""
    backend = get_backend(config)
    try:
        rate = config["SURVEY_SEND_RATE"] or backend.rate_limit()
    except BaseException:
        backend.close()
        raise
    # One rate for every process sending from this database (workers, a shell's send).
    limiter = (SharedRateLimiter(rate, f"{db.path}-sendrate", margin=RATE_MARGIN)
               if db.path != ":memory:" else None)
    return Sender(db, backend, rate=rate, limiter=limiter,
                  concurrency=getattr(backend, "concurrency", 1))
