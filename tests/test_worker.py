"""The worker as it runs for real: `survey-mailer worker` processes on loopback (SPEC 10).

Each worker is a process of its own, started here and stopped by its own pid (SIGTERM, or
SIGKILL to crash it). Waits poll for the outcome with generous limits; the only timed
assertion is the 10 s that SPEC 10 gives a worker to stop on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import send_campaign
from smtpfixtures import Recorder, Server, smtp_server, tls_files  # noqa: F401 - fixtures

from survey_mailer import campaigns, clock, transactional
from survey_mailer import config as config_
from survey_mailer import db as db_
from survey_mailer.backends.outbox import OutboxBackend
from survey_mailer.clock import parse
from survey_mailer.ratelimit import SharedRateLimiter
from survey_mailer.sender import Sender
from survey_mailer.worker import Worker

COMMAND = str(Path(sys.executable).parent / "survey-mailer")
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (INFO|WARNING|ERROR) ")


class Workers:
    """Start `survey-mailer worker` processes; whatever is left is killed by its pid."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.started: list[subprocess.Popen] = []

    def start(self, *options: str, interval: str = "0.2") -> subprocess.Popen:
        log = self.tmp_path / f"worker{len(self.started)}.log"
        with log.open("wb") as stderr:  # the worker has its own copy
            process = subprocess.Popen([COMMAND, "worker", "--interval", interval, *options],
                                       stdout=subprocess.DEVNULL, stderr=stderr,
                                       env=dict(os.environ))
        process.log = log
        self.started.append(process)
        return process

    def stop(self, process: subprocess.Popen, timeout: float = 60) -> int:
        """SIGTERM a worker and return its exit status."""
        os.kill(process.pid, signal.SIGTERM)
        return process.wait(timeout)

    def kill(self, process: subprocess.Popen) -> None:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)

    def cleanup(self) -> None:
        for process in self.started:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(30)


@pytest.fixture
def workers(settings, db, tmp_path):
    started = Workers(tmp_path)
    yield started
    started.cleanup()


@pytest.fixture
def smtp(smtp_server):  # noqa: F811 - the fixture of test_smtp
    """A plain aiosmtpd server on loopback, and the settings that point the backend at it."""
    return smtp_server("none")


def wait_for(check, what: str, timeout: float = 120, processes=()) -> None:
    """Poll until check() is true; fail saying what did not happen (or which worker died)."""
    deadline = time.monotonic() + timeout
    while not check():
        for process in processes:
            if process.poll() is not None:
                raise AssertionError(f"a worker exited with {process.returncode} before "
                                     f"{what}:\n{process.log.read_text()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def count(db, status: str) -> int:
    return db.execute("SELECT count(*) FROM deliveries WHERE status = ?",
                      [status]).fetchone()[0]


def statuses(db) -> dict[str, int]:
    return dict(db.execute("SELECT status, count(*) FROM deliveries GROUP BY status"))


def import_people(db, n: int, prefix: str = "person") -> list[str]:
    emails = [f"{prefix}{i:04d}@example.com" for i in range(n)]
    from survey_mailer import contacts

    contacts.import_csv(db, ("email,language\n" + "".join(
        f"{e},{('en', 'es', 'fr', 'sv')[i % 4]}\n" for i, e in enumerate(emails))).encode())
    return emails


def create_campaign(db, name: str = "Q4") -> int:
    return campaigns.create(db, name=name, subject="A quick question",
                            sender="Acme <nps@acme.test>")


def due_now(db, n: int) -> tuple[int, list[str]]:
    """A campaign with `n` deliveries handed to the worker, due now."""
    emails = import_people(db, n)
    campaign_id = create_campaign(db)
    campaigns.plan(db, campaigns.get(db, campaign_id), 90, due=clock.now())
    campaigns.start(db, campaign_id)
    return campaign_id, emails


def eml_files(settings) -> list[Path]:
    # A worker killed mid-write leaves a hidden temporary file; the messages are the .eml.
    return sorted(p for p in Path(settings["SURVEY_OUTBOX_DIR"]).glob("*.eml")
                  if not p.name.startswith("."))


# Transactional surveys with delays -------------------------------------------------------


@pytest.mark.slow
def test_transactional_surveys_are_each_sent_once_when_due(db, settings, workers):
    campaign_id = create_campaign(db, "Support")
    requested = {}
    for i in range(100):
        answer = transactional.request(db, campaign_id, email=f"t{i:03d}@example.com",
                                       delay_seconds=i % 8, event="ticket solved")
        requested[answer["delivery_id"]] = answer
    worker = workers.start()
    wait_for(lambda: count(db, "sent") == 100, "all 100 sent", processes=[worker])
    assert workers.stop(worker) == 0
    rows = {r["id"]: dict(r) for r in db.execute("SELECT * FROM deliveries")}
    assert set(rows) == set(requested)
    files = eml_files(settings)
    assert sorted(p.name for p in files) == sorted(f"c{campaign_id}-d{d}.eml" for d in rows)
    for path in files:
        row = rows[int(path.stem.split("-d")[1])]
        assert row["status"] == "sent"
        assert row["sent_at"] >= row["due_at"]  # never before it was due
        # The file's time too; the kernel stamps files from a coarse clock, up to a tick
        # (a few milliseconds) behind the time the worker read.
        assert path.stat().st_mtime >= parse(row["due_at"]).timestamp() - 0.02
    delays = {d: (parse(r["due_at"]) - parse(r["created_at"])).total_seconds()
              for d, r in rows.items()}
    assert sorted(set(round(s) for s in delays.values())) == list(range(8))


# Crashes: SIGKILL mid-run, restart --------------------------------------------------------


@pytest.mark.slow
def test_a_worker_killed_and_restarted_doubles_nothing(db, settings, workers, monkeypatch):
    monkeypatch.setenv("SURVEY_SEND_RATE", "40")
    campaign_id, emails = due_now(db, 300)
    rng = random.Random(7)
    kills = 0
    for _ in range(3):
        before, unknown_before = count(db, "sent"), count(db, "sending")
        worker = workers.start()
        wait_for(lambda b=before: count(db, "sent") > b, "a message sent", processes=[worker])
        time.sleep(rng.uniform(0, 1.5))
        if worker.poll() is not None:
            break
        workers.kill(worker)
        kills += 1
        # At most the messages in flight (the outbox sends one at a time) are left unknown.
        assert count(db, "sending") - unknown_before <= OutboxBackend.concurrency
    assert kills >= 2
    last = workers.start()
    wait_for(lambda: count(db, "pending") == 0, "nothing pending", processes=[last])
    assert workers.stop(last) == 0
    sent, unknown = count(db, "sent"), count(db, "sending")
    assert sent + unknown == 300 and unknown <= kills
    files = {p.name for p in eml_files(settings)}
    sent_ids = [r[0] for r in db.execute("SELECT id FROM deliveries WHERE status = 'sent'")]
    assert {f"c{campaign_id}-d{d}.eml" for d in sent_ids} <= files
    assert len(files) <= 300  # one file per delivery, named after it
    # The unknown ones were not resent and are listed for a person to decide.
    unknown_emails = [r[0] for r in db.execute(
        "SELECT c.email FROM deliveries d JOIN contacts c ON c.id = d.contact_id "
        "WHERE d.status = 'sending' ORDER BY d.id")]
    log = last.log.read_text()
    if unknown_emails:
        assert (f"campaign {campaign_id}: {len(unknown_emails)} with unknown fate "
                f"(interrupted mid-send, not resent): {', '.join(unknown_emails)}") in log
    result = subprocess.run([COMMAND, "campaign", "send", str(campaign_id), "--dry-run"],
                            capture_output=True, text=True, env=dict(os.environ))
    assert [line.strip() for line in result.stderr.splitlines()[1:]] == unknown_emails


# Two workers racing -----------------------------------------------------------------------


@pytest.mark.slow
def test_two_workers_race_on_1000_deliveries_each_sent_once(db, workers, smtp, monkeypatch):
    server = smtp
    monkeypatch.setenv("SURVEY_SEND_RATE", "250")  # four seconds: time for both to start
    campaign_id, emails = due_now(db, 1000)
    first, second = workers.start(), workers.start()
    wait_for(lambda: count(db, "sent") == 1000, "all 1,000 sent", timeout=300,
             processes=[first, second])
    assert workers.stop(first) == 0 and workers.stop(second) == 0
    recipients = [m["to"][0] for m in server.handler.messages]
    assert len(recipients) == 1000  # a second send of any delivery would show here
    assert sorted(recipients) == emails
    # Both took part.
    for worker in (first, second):
        sent = re.findall(rf"campaign {campaign_id}: (\d+) sent", worker.log.read_text())
        assert sum(map(int, sent)) > 0, worker.log.read_text()


class HoldingRecorder(Recorder):
    """Keep one recipient's message in DATA until released: a message in flight."""

    def __init__(self, hold: str):
        super().__init__()
        self.hold = hold
        self.holding = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        if self.hold in envelope.rcpt_tos and not self.holding.is_set():
            self.holding.set()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 60)
        return await super().handle_DATA(server, session, envelope)


@pytest.mark.slow
def test_retry_unknown_leaves_a_running_workers_message_alone(db, workers, smtp):
    server = smtp
    server.handler = server.controller.handler = HoldingRecorder("person0000@example.com")
    campaign_id, emails = due_now(db, 3)
    worker = workers.start()
    try:
        wait_for(server.handler.holding.is_set, "the first message in flight",
                 processes=[worker])
        assert count(db, "sending") == 1
        # Someone resends the unknown ones while the worker still has that one in flight.
        result = subprocess.run([COMMAND, "campaign", "send", str(campaign_id),
                                 "--retry-unknown"], capture_output=True, text=True,
                                env=dict(os.environ), timeout=60)
        assert result.returncode == 0, result.stderr
    finally:
        server.handler.release.set()
    wait_for(lambda: count(db, "sent") == 3, "all 3 sent", processes=[worker])
    assert workers.stop(worker) == 0
    assert sorted(m["to"][0] for m in server.handler.messages) == emails  # once each


# Stopping ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_stops_within_10s_and_loses_nothing(db, settings, workers, monkeypatch):
    monkeypatch.setenv("SURVEY_SEND_RATE", "20")
    due_now(db, 400)
    worker = workers.start()
    wait_for(lambda: count(db, "sent") >= 5, "five sent", processes=[worker])
    os.kill(worker.pid, signal.SIGTERM)
    assert worker.wait(10) == 0  # SPEC 10: within 10 s, exit 0
    assert set(statuses(db)) == {"sent", "pending"}  # none left 'sending'
    assert len(eml_files(settings)) == count(db, "sent")
    assert worker.log.read_text().splitlines()[-1].endswith(" INFO worker stopped")
    # The rest goes out with the next worker (faster: nothing more to see here).
    monkeypatch.setenv("SURVEY_SEND_RATE", "200")
    again = workers.start()
    wait_for(lambda: count(db, "sent") == 400, "all 400 sent", processes=[again])
    assert workers.stop(again) == 0


@pytest.mark.slow
def test_sigterm_while_waiting_for_a_slow_rate(db, settings, workers, monkeypatch):
    monkeypatch.setenv("SURVEY_SEND_RATE", "0.1")  # one message every ten seconds
    due_now(db, 3)
    worker = workers.start()
    wait_for(lambda: count(db, "sent") == 1, "the first sent", processes=[worker])
    time.sleep(0.5)  # now waiting for the rate's next slot
    os.kill(worker.pid, signal.SIGTERM)
    assert worker.wait(10) == 0
    assert statuses(db) == {"sent": 1, "pending": 2}


# The shared rate --------------------------------------------------------------------------

RATE_SCRIPT = """
import json, sys
from survey_mailer import config, db
from survey_mailer.sender import from_config
from survey_mailer.worker import Worker

settings = config.load()
database = db.open_configured(settings)
slots = []

def sender():
    made = from_config(database, settings)
    made.limiter.record = slots
    return made

Worker(database, settings, sender_factory=sender).round()
with open(sys.argv[1], "w") as out:
    json.dump(slots, out)
"""


def most_in_one_second(times: list[float]) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + 1.0:
            j += 1
        best = max(best, j - i)
    return best


@pytest.mark.slow
def test_two_processes_share_one_rate(db, settings, tmp_path, monkeypatch):
    monkeypatch.setenv("SURVEY_SEND_RATE", "10")
    due_now(db, 60)
    outs = [tmp_path / f"slots{i}.json" for i in range(2)]
    processes = [subprocess.Popen([sys.executable, "-c", RATE_SCRIPT, str(out)],
                                  env=dict(os.environ)) for out in outs]
    try:
        for process in processes:
            assert process.wait(120) == 0
    finally:
        for process in processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(30)
    slots = [json.loads(out.read_text()) for out in outs]
    assert count(db, "sent") == 60
    assert all(slots)  # both sent
    assert most_in_one_second(slots[0] + slots[1]) <= 10
    assert len(slots[0]) + len(slots[1]) <= 60 + 2  # a lost claim costs no slot


def test_a_claim_lost_to_another_sender_costs_no_rate_slot(db, settings):
    """Two senders on one campaign: one rate slot per message, not one per row tried."""
    campaign_id, _ = due_now(db, 600)
    records: list[list[float]] = [[], []]
    connections = [db_.reconnect(db) for _ in records]
    start = threading.Barrier(2)
    summaries = []

    def send(i: int) -> None:
        limiter = SharedRateLimiter(100_000, f"{db.path}-sendrate", record=records[i])
        sender = Sender(connections[i], OutboxBackend(settings["SURVEY_OUTBOX_DIR"]),
                        limiter=limiter)
        start.wait()
        summaries.append(send_campaign(connections[i], sender, campaign_id,
                                       scheduled_only=True))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for conn in connections:
        conn.close()
    assert sum(s.sent for s in summaries) == 600 and count(db, "sent") == 600
    # A slot can go unused only when a batch runs out under the other sender's feet.
    assert len(records[0]) + len(records[1]) <= 600 + 2 * 2


# The command line ------------------------------------------------------------------------


def test_worker_once_sends_what_is_due_and_logs_it(db, settings):
    campaign_id, emails = due_now(db, 4)
    later = create_campaign(db, "Later")
    transactional.request(db, later, email="later@example.com", delay_seconds=3600)
    result = subprocess.run([COMMAND, "worker", "--once"], capture_output=True, text=True,
                            env=dict(os.environ), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert all(LOG_LINE.match(line) for line in lines), lines
    assert [line.split(" ", 2)[2] for line in lines] == [
        f"campaign {campaign_id}: 4 sent, 0 failed, 0 skipped, 0 deferred, 0 left"]
    assert statuses(db) == {"sent": 4, "pending": 1}  # the one due in an hour waits


def test_campaign_update_until_the_first_send(runner, db, settings, contacts_csv):
    assert runner("contacts", "import", str(contacts_csv)).exit_code == 0
    campaign_id = str(create_campaign(db))
    result = runner("campaign", "update", campaign_id, "--subject", "One question",
                    "--brand", "Acme Cloud", "--segment", "company=Acme")
    assert result.output == f"Campaign {campaign_id}: changed brand, segment, subject\n"
    result = runner("campaign", "update", campaign_id)
    assert result.output == f"Campaign {campaign_id}: nothing to change\n"
    assert runner("campaign", "send", campaign_id).output == (
        "2 sent, 0 failed, 0 skipped, 0 left to send\n")
    from conftest import outbox

    assert {m["Subject"] for m in outbox(settings).values()} == {"One question"}
    result = runner("campaign", "update", campaign_id, "--subject", "Too late",
                    "--sender", "Other <x@acme.test>")
    assert result.exit_code == 1
    assert result.output == (f"Error: campaign {campaign_id} has started sending: its "
                             f"sender, subject can no longer change\n")
    assert campaigns.get(db, int(campaign_id))["subject"] == "One question"
    result = runner("campaign", "update", campaign_id, "--remind-after-days", "5")
    assert result.output == f"Campaign {campaign_id}: changed remind_after_days\n"
    assert campaigns.get(db, int(campaign_id))["remind_after_days"] == 5


@pytest.mark.parametrize("options, message", [
    (["--segment", "plan"], 'segment "plan" is not ATTRIBUTE=VALUE (for example '
                            'company=Acme)'),
    (["--segment", "nosuch=1"], 'no contact has the attribute "nosuch": use company, '
                                'language, name or an attribute column of the imported '
                                'contacts'),
    (["--sender", "not an address"], 'sender "not an address" is not an email address '
                                     '(for example "Acme <nps@acme.com>")'),
    (["--name", " "], "the campaign name must not be empty"),
])
def test_campaign_update_bad_values(runner, db, settings, options, message):
    campaign_id = str(create_campaign(db))
    result = runner("campaign", "update", campaign_id, *options)
    assert (result.exit_code, result.output) == (1, f"Error: {message}\n")


def test_campaign_update_remind_after_days_range(runner, db, settings):
    campaign_id = str(create_campaign(db))
    result = runner("campaign", "update", campaign_id, "--remind-after-days", "400")
    assert result.exit_code == 2
    assert "Invalid value for '--remind-after-days': 400 is not in the range 0<=x<=365." \
        in result.output


def test_campaign_list_status_schedule_and_next_send(runner, db, settings, monkeypatch):
    from datetime import UTC, datetime

    monkeypatch.setenv("SURVEY_TIMEZONE", "Europe/Stockholm")
    import_people(db, 2)
    now = datetime(2027, 2, 10, 12, tzinfo=UTC)
    with clock.frozen(now):
        ids = [create_campaign(db, name) for name in
               ("Draft", "Scheduled", "Sending", "Sent", "Recurring")]
        runner("campaign", "schedule", str(ids[1]), "--at", "2027-03-01 09:00")
        transactional.request(db, ids[2], email="person0000@example.com",
                              delay_seconds=3600)
        assert runner("campaign", "send", str(ids[3])).exit_code == 0
        runner("campaign", "schedule", str(ids[4]), "--every", "quarter", "--spread-days",
               "5")
        table = runner("campaign", "list").output
        rows = json.loads(runner("campaign", "list", "--format", "json").output)
    assert table.splitlines() == [
        f"{ids[0]}\tDraft\tdraft\t0 sent\t0 responses\t-\t-",
        f"{ids[1]}\tScheduled\tscheduled\t0 sent\t0 responses\t"
        f"at 2027-03-01 09:00 Europe/Stockholm\tnext 2027-03-01T08:00:00Z",
        f"{ids[2]}\tSending\tsending\t0 sent\t0 responses\t-\tnext 2027-02-10T13:00:00Z",
        f"{ids[3]}\tSent\tsent\t1 sent\t0 responses\t-\t-",
        f"{ids[4]}\tRecurring\trecurring\t0 sent\t0 responses\t"
        f"every quarter, over 5 weekdays\tnext 2027-03-31T22:00:00Z",
    ]
    assert [(r["status"], r["schedule"], r["next_send"]) for r in rows] == [
        ("draft", "", None),
        ("scheduled", "at 2027-03-01 09:00 Europe/Stockholm", "2027-03-01T08:00:00Z"),
        ("sending", "", "2027-02-10T13:00:00Z"),
        ("sent", "", None),
        ("recurring", "every quarter, over 5 weekdays", "2027-03-31T22:00:00Z"),
    ]


@pytest.mark.slow
def test_a_message_in_flight_when_killed_is_listed_not_resent(db, workers, smtp):
    server = smtp
    server.handler = server.controller.handler = HoldingRecorder("person0000@example.com")
    campaign_id, emails = due_now(db, 3)
    worker = workers.start()
    wait_for(server.handler.holding.is_set, "the first message in flight",
             processes=[worker])
    workers.kill(worker)  # mid-DATA: the worker cannot know whether the server took it
    server.handler.release.set()
    again = workers.start()
    wait_for(lambda: count(db, "sent") == 2, "the other two sent", processes=[again])
    wait_for(lambda: "unknown fate" in again.log.read_text(), "the unknown one listed",
             processes=[again])
    assert workers.stop(again) == 0
    assert statuses(db) == {"sent": 2, "sending": 1}
    # The server dropped it with the connection (it never said 250): not resent either.
    assert sorted(m["to"][0] for m in server.handler.messages) == emails[1:]
    lines = [line.split(" ", 2)[2] for line in again.log.read_text().splitlines()]
    assert (f"campaign {campaign_id}: 1 with unknown fate (interrupted mid-send, not "
            f"resent): person0000@example.com") in lines


def test_a_campaign_that_cannot_be_sent_is_logged_once(db, settings, monkeypatch, caplog):
    monkeypatch.delenv("SURVEY_POSTAL_ADDRESS")
    campaign_id, _ = due_now(db, 2)
    worker = Worker(db, config_.load())
    for _ in range(3):
        assert worker.round()["sent"] == 0
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        f"campaign {campaign_id}: not sent: campaign {campaign_id} has no postal address "
        f"for the email's footer: set SURVEY_POSTAL_ADDRESS, or create the campaign with "
        f"--postal-address"]
    assert statuses(db) == {"pending": 2}  # it waits for the address
