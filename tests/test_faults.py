"""Every fault test, in one place: processes killed, servers that fail, disks and files
that refuse writes. Each proves nothing is lost and nothing doubled, or says exactly what is
left for a person to decide.

Sending campaigns:
- test_outbox_every_contact_exactly_once_after_kills: `campaign send` SIGKILLed at random
  moments over the outbox, resumed: every contact exactly once.
- test_ses_at_most_once_and_at_most_concurrency_unknown_per_kill: the same against SES
  (moto): nobody twice, and whoever SES may have missed is listed with an unknown fate.
- test_a_full_disk_stops_the_send_and_a_rerun_sends_the_rest_once: a 64 KB tmpfs as the
  outbox: a clear error, and a re-run once space is freed sends the rest exactly once.
- test_reconnects_when_the_server_drops_the_connection: an SMTP server restarted mid-send.
- test_a_connection_lost_after_the_message_leaves_its_fate_unknown: an SMTP server that
  hangs up after taking the message: left unknown, resent only when asked.
- test_throttling_and_5xx_are_retried_every_message_once_rate_respected: SES answers
  throttling and 503s: retried, each message once, the rate kept.

Serving and background work:
- test_every_click_answered_303_is_logged_once_while_gunicorn_workers_are_killed: gunicorn's
  workers SIGKILLed mid-request under 3,000 clicks: every click answered 303 is in the
  click log once; only requests in a killed worker's hands fail, by a dropped connection.
- test_each_alert_once_after_the_worker_is_killed_mid_dispatch: `survey-mailer worker`
  SIGKILLed twice while it sends alerts: no email twice, none lost silently (one whose
  hand-off was cut is listed unknown), each webhook event arrives.

A database that cannot be written (commands run as root without the capabilities that
ignore file modes, conftest.RESPECT_FILE_MODES):
- test_a_read_only_database_is_a_one_line_error_for_every_command: a write, a send and a
  report each print one line naming the database, exit 1, no traceback, nothing written.
- test_a_lock_file_left_by_another_user_is_named_in_one_line: the write lock beside the
  database is another user's: the line names it.
- test_a_click_on_a_read_only_database_gets_a_friendly_503: gunicorn on such a database
  answers a click with the friendly error page and 503 (and /healthz 503), and logs the
  reason in one line.
"""
# ruff: noqa: F811  (fixtures imported from smtpfixtures are parameters here)

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import (
    BROWSER_UA,
    RESPECT_FILE_MODES,
    gunicorn_server,
    send_campaign,
    stop_process,
)
from sesfixtures import (  # noqa: F401 - fixtures used by name
    FaultProxy,
    max_in_any_window,
    moto_server,
    sent_recipients,
    ses_env,
)
from smtpfixtures import (  # noqa: F401 - fixtures used by name
    EMAILS,
    campaign,
    send,
    sender,
    smtp_server,
    statuses,
    tls_files,
)
from staff_support import receiver  # noqa: F401 - a fixture used by name

from survey_mailer import config as config_
from survey_mailer.backends.ses import SESBackend
from survey_mailer.ratelimit import RATE_MARGIN, RateLimiter
from survey_mailer.sender import Sender

COMMAND = str(Path(sys.executable).parent / "survey-mailer")
CONTACTS = 150
KILLS = 4


def import_contacts(runner, tmp_path, contacts: int = CONTACTS) -> list[str]:
    emails = [f"person{i:03d}@example.com" for i in range(contacts)]
    path = tmp_path / "many.csv"
    path.write_text("email,language\n" + "".join(
        f"{e},{('en', 'es', 'fr', 'sv')[i % 4]}\n" for i, e in enumerate(emails)))
    assert runner("contacts", "import", str(path)).exit_code == 0
    return emails


def create_campaign(runner) -> str:
    result = runner("campaign", "create", "--name", "Q4", "--subject", "A quick question",
                    "--sender", "Acme <nps@acme.test>")
    return result.output.splitlines()[-1]


def count(db, status: str) -> int:
    return db.execute("SELECT count(*) FROM deliveries WHERE status = ?",
                      [status]).fetchone()[0]


def send_and_kill(db, campaign_id: str, rng: random.Random, *extra: str) -> bool:
    """Start a send; once it is sending, SIGKILL it at a random moment. Return if killed."""
    before = count(db, "sent")
    process = subprocess.Popen([COMMAND, "campaign", "send", campaign_id, *extra],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=dict(os.environ))
    try:
        deadline = time.monotonic() + 30
        while count(db, "sent") == before and process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError("the sender made no progress in 30 s")
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.8))
        if process.poll() is not None:
            return False
        os.kill(process.pid, signal.SIGKILL)
        return True
    finally:
        process.wait(30)


def finish(campaign_id: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([COMMAND, "campaign", "send", campaign_id, *extra],
                          capture_output=True, text=True, env=dict(os.environ), timeout=60)


@pytest.mark.slow
def test_outbox_every_contact_exactly_once_after_kills(runner, db, settings, tmp_path,
                                                       monkeypatch):
    emails = import_contacts(runner, tmp_path)
    campaign_id = create_campaign(runner)
    monkeypatch.setenv("SURVEY_SEND_RATE", "30")  # bursts of 30 a second: ~5 s in all
    rng = random.Random(3)
    kills = 0
    for _ in range(KILLS):
        kills += send_and_kill(db, campaign_id, rng, "--retry-unknown")
        assert count(db, "sending") <= 1  # the outbox sends one at a time
    assert kills >= 2
    result = finish(campaign_id, "--retry-unknown")
    assert result.returncode == 0, result.stderr
    assert count(db, "sent") == CONTACTS
    print(f"outbox: {kills} kills")
    outbox = Path(settings["SURVEY_OUTBOX_DIR"])
    # A kill mid-write can leave a hidden temporary file; the messages are the .eml files.
    files = [p for p in outbox.glob("*.eml") if not p.name.startswith(".")]
    recipients = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)[
        "To"].addresses[0].addr_spec for p in files]
    assert sorted(recipients) == emails  # every contact, exactly once


@pytest.mark.slow
@pytest.mark.usefixtures("ses_env")
def test_ses_at_most_once_and_at_most_concurrency_unknown_per_kill(runner, db, tmp_path,
                                                                   monkeypatch):
    emails = import_contacts(runner, tmp_path)
    campaign_id = create_campaign(runner)
    monkeypatch.setenv("SURVEY_SEND_RATE", "30")
    rng = random.Random(5)
    kills = 0
    for _ in range(KILLS):
        unknown_before = count(db, "sending")
        kills += send_and_kill(db, campaign_id, rng)  # no --retry-unknown: at most once
        assert count(db, "sending") - unknown_before <= SESBackend.concurrency
    assert kills >= 2
    result = finish(campaign_id)
    assert result.returncode == 0, result.stderr
    recipients = sent_recipients()
    assert len(recipients) == len(set(recipients))  # nobody got it twice
    unknown = {r[0] for r in db.execute(
        "SELECT c.email FROM deliveries d JOIN contacts c ON c.id = d.contact_id "
        "WHERE d.status = 'sending'")}
    print(f"SES: {kills} kills, {len(unknown)} unknown, {len(recipients)} accepted")
    assert len(unknown) <= kills * SESBackend.concurrency
    assert count(db, "sent") + len(unknown) == CONTACTS
    # Whoever SES never got is among the unknown, listed for the marketer to decide.
    assert set(emails) - set(recipients) <= unknown
    listed = result.stderr.splitlines()
    if unknown:
        assert listed[0] == (f"{len(unknown)} with unknown fate (interrupted mid-send; not "
                             f"resent, use --retry-unknown to resend):")
        assert {line.strip() for line in listed[1:]} == unknown


@pytest.fixture
def small_disk(settings):
    """A 64 KB tmpfs mounted as the outbox: room for a few survey emails, then ENOSPC."""
    outbox = Path(settings["SURVEY_OUTBOX_DIR"])
    outbox.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(outbox)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.fail(f"this test mounts a small tmpfs and needs root: {mounted.stderr.strip()}")
    try:
        yield outbox
    finally:
        subprocess.run(["umount", "-l", str(outbox)], check=True)


def test_a_full_disk_stops_the_send_and_a_rerun_sends_the_rest_once(runner, db, small_disk,
                                                                      tmp_path):
    emails = import_contacts(runner, tmp_path)[:10]
    db.execute(f"DELETE FROM contacts WHERE email NOT IN ({','.join('?' * 10)})", emails)
    campaign_id = create_campaign(runner)
    first = runner("campaign", "send", campaign_id)
    assert first.exit_code == 1
    sent, pending = count(db, "sent"), count(db, "pending")
    assert sent >= 1 and pending >= 1 and sent + pending == 10
    assert count(db, "sending") == 0  # certainly not handed over: nothing left unknown
    assert first.stdout == f"{sent} sent, 0 failed, 0 skipped, {pending} left to send\n"
    assert first.stderr == (f"Error: sending stopped: cannot write to the outbox {small_disk}: "
                            f"No space left on device\n")
    assert not list(small_disk.glob(".tmp-*"))  # no half-written file left behind
    kept = tmp_path / "delivered"  # space is freed: the ones sent go elsewhere
    kept.mkdir()
    for path in small_disk.glob("*.eml"):
        shutil.move(path, kept / path.name)
    while count(db, "pending"):
        result = runner("campaign", "send", campaign_id)  # a plain re-run, as the user would
        for path in small_disk.glob("*.eml"):
            shutil.move(path, kept / path.name)
        assert result.exit_code in (0, 1)
    recipients = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)["To"]
                  .addresses[0].addr_spec for p in kept.glob("*.eml")]
    assert sorted(recipients) == sorted(emails)  # each exactly once


# Servers that fail: SMTP drops the connection, SES throttles and answers 5xx -----------


def test_reconnects_when_the_server_drops_the_connection(
        smtp_server, runner, db, links, contacts_csv):
    server = smtp_server("none")
    campaign_id = int(campaign(runner, contacts_csv))
    the_sender = sender(db, links, server)
    assert send_campaign(db, the_sender, campaign_id, limit=2).sent == 2
    server.stop()  # drops the open connection; the backend still holds it
    server.start()
    summary = send_campaign(db, the_sender, campaign_id)
    assert (summary.sent, summary.failed) == (2, 0)
    assert sorted(m["to"][0] for m in server.handler.messages) == EMAILS
    assert len({m["session"] for m in server.handler.messages}) == 2
    the_sender.backend.close()


def test_a_connection_lost_after_the_message_leaves_its_fate_unknown(
        smtp_server, runner, db, links, contacts_csv):
    # The server took the whole message and hung up before its reply: it may well deliver
    # it, so the delivery is neither sent nor retried, but listed as unknown. Resending
    # it is the operator's call (--retry-unknown); the other contacts go out meanwhile.
    server = smtp_server("none")
    server.handler.hang_up_after_data = {"bob@example.com"}
    campaign_id = int(campaign(runner, contacts_csv))
    summary = send(db, links, server, campaign_id)
    assert (summary.sent, summary.failed) == (3, 0)
    assert summary.unknown == ["bob@example.com"]
    assert statuses(db)["bob@example.com"] == "sending"
    received = [m["to"][0] for m in server.handler.messages]
    assert sorted(received) == EMAILS and received.count("bob@example.com") == 1

    result = runner("campaign", "send", str(campaign_id))  # not resent without asking
    assert result.output.startswith("0 sent, 0 failed, 0 skipped, 0 left to send")
    assert "bob@example.com" in result.output
    result = runner("campaign", "send", str(campaign_id), "--retry-unknown")
    assert result.output.startswith("1 sent, 0 failed, 0 skipped, 0 left to send")
    assert statuses(db)["bob@example.com"] == "sent"
    assert [m["to"][0] for m in server.handler.messages].count("bob@example.com") == 2


@pytest.mark.usefixtures("ses_env")
def test_throttling_and_5xx_are_retried_every_message_once_rate_respected(
        runner, db, links, tmp_path, monkeypatch):
    import_contacts(runner, tmp_path, 60)
    campaign_id = int(create_campaign(runner))

    def fault(n):
        if n % 4 == 1:
            return 400, "TooManyRequestsException", "Maximum sending rate exceeded."
        if n % 7 == 3:
            return 503, "ServiceUnavailable", "Service is unavailable"
        return None

    rate = 20
    with FaultProxy(os.environ["AWS_ENDPOINT_URL_SESV2"], fault) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SESV2", proxy.url)
        backend = SESBackend.from_config(config_.load())
        backend.backoff = 0.05  # our rounds after botocore's; botocore's own backoff stays
        starts: list[float] = []
        limiter = RateLimiter(rate, record=starts, margin=RATE_MARGIN)
        summary = send_campaign(db, Sender(db, backend, limiter=limiter,
                                           concurrency=backend.concurrency), campaign_id)
        backend.close()
    assert (summary.sent, summary.failed, summary.deferred, summary.unknown) == (60, 0, 0, [])
    recipients = sent_recipients()
    assert len(recipients) == 60 and len(set(recipients)) == 60  # each exactly once
    assert len(proxy.arrivals) > 60 + 15  # faults were answered, and retried
    # Every attempt, retries included, took a slot, and no one-second window holds more.
    # (Counted where the slots are taken: arrival times at the proxy add the scheduling
    # jitter of this shared machine, which moves requests across window edges.)
    assert len(starts) == len(proxy.arrivals)
    assert max_in_any_window(starts) <= rate


# Processes killed while they serve: gunicorn's workers, the worker's alert dispatch -----

CLICKS = 3000
CLICKERS = 16
WORKER_KILLS = 6  # each of the two worker slots three times, at even steps of the load


def many_deliveries(db, count: int) -> None:
    """One campaign sent to `count` contacts, written straight into the database."""
    from survey_mailer import clock
    from survey_mailer.db import write

    stamp = clock.now()
    with write(db) as conn:
        conn.execute("INSERT INTO campaigns (id, name, subject, sender, brand, created_at)"
                     " VALUES (1, 'Q4', 'A quick question', 'nps@acme.test', 'Acme', ?)",
                     [stamp])
        conn.executemany(
            "INSERT INTO contacts (id, email, created_at, updated_at) VALUES (?, ?, ?, ?)",
            ((i, f"person{i}@example.com", stamp, stamp) for i in range(1, count + 1)))
        conn.executemany(
            "INSERT INTO deliveries (id, campaign_id, contact_id, status, created_at, sent_at)"
            " VALUES (?, 1, ?, 'sent', ?, ?)", ((i, i, stamp, stamp) for i in range(1, count + 1)))


def click(url: str, path: str) -> int | str:
    """A person's click on a score link, not followed: the status, or why it failed."""
    import http.client

    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    try:
        conn.request("GET", path, headers={"User-Agent": BROWSER_UA})
        return conn.getresponse().status
    except (http.client.HTTPException, OSError) as e:  # a worker killed mid-request
        return f"{type(e).__name__}: {e}"
    finally:
        conn.close()


def sockets(pid: int) -> set[str]:
    """Return the inodes of the sockets a process holds open."""
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            found.add(target[8:-1])
    return found


def kill_mid_request(server, pid: int) -> bool:
    """SIGKILL a sync worker while it holds a client's connection, if one is caught within
    a few seconds (stopped, looked at, let go again); return whether it was. Return once
    the worker is dead."""
    deadline = time.monotonic() + 5
    caught = False
    try:
        while time.monotonic() < deadline:
            os.kill(pid, signal.SIGSTOP)
            # A socket the arbiter does not hold (its listener, ...) is a client's connection.
            caught = bool(sockets(pid) - sockets(server.process.pid))
            if caught:
                break
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.001)
    except (ProcessLookupError, FileNotFoundError):  # it died meanwhile
        return False
    finally:  # never leave a worker stopped
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    while pid in server.workers():
        time.sleep(0.01)
    return caught


@pytest.mark.slow
def test_every_click_answered_303_is_logged_once_while_gunicorn_workers_are_killed(
        settings, db, links, tmp_path):
    """SIGKILL gunicorn's workers (never the arbiter, which starts new ones), each slot three
    times, mostly while they hold a click, as 16 threads click 3,000 score links (one per
    email). A click answered 303 is in the click log, exactly once. A request whose worker
    died under it fails with a dropped connection (its click may be logged or not: nobody
    was told either way), at most one per kill; those waiting in the listen queue are
    served by the next worker."""
    import threading
    from concurrent.futures import ThreadPoolExecutor


    many_deliveries(db, CLICKS)
    paths = {i: f"/r/{links.token('score', i)}/{i % 11}" for i in range(1, CLICKS + 1)}
    answers: dict[int, int | str] = {}
    progress = threading.Semaphore(0)
    killed: list[int] = []
    mid_request = 0
    with gunicorn_server(settings, tmp_path) as server:

        def one(delivery_id: int) -> None:
            answers[delivery_id] = click(server.url, paths[delivery_id])
            progress.release()

        with ThreadPoolExecutor(CLICKERS) as pool:
            futures = [pool.submit(one, i) for i in paths]
            for n in range(WORKER_KILLS):  # a kill after every seventh of the clicks
                for _ in range(CLICKS // (WORKER_KILLS + 1)):
                    assert progress.acquire(timeout=30), "the clicks stopped"
                workers = sorted(server.workers())
                assert workers, "gunicorn has no worker"
                victim = workers[n % len(workers)]
                mid_request += kill_mid_request(server, victim)
                killed.append(victim)
            for future in futures:
                future.result()
        assert len(server.workers()) == 2  # the arbiter started new ones
        assert click(server.url, "/healthz") == 200
    answered = [i for i, status in answers.items() if status == 303]
    dropped = {i: status for i, status in answers.items() if status != 303}
    logged = dict(db.execute("SELECT delivery_id, count(*) FROM clicks GROUP BY delivery_id"))
    print(f"gunicorn: {len(killed)} workers killed ({mid_request} mid-request), "
          f"{len(answered)} clicks answered 303, {len(dropped)} dropped "
          f"({sum(i in logged for i in dropped)} of them logged): "
          f"{sorted(set(dropped.values()))}")
    assert len(set(killed)) == WORKER_KILLS  # a new worker each time
    assert all(isinstance(status, str) for status in dropped.values())  # no 5xx, no 4xx
    assert [i for i in answered if logged.get(i) != 1] == []  # every one, once
    assert max(logged.values()) == 1  # nothing doubled, answered or not
    assert mid_request >= 1  # at least one worker died holding a click
    assert len(dropped) <= len(killed)  # a sync worker holds one request: the rest wait


ALERTS = 60


def settled(db) -> dict[str, int]:
    """Count the alerts' notifications (not the weekly digest's, say) by status."""
    return dict(db.execute("SELECT status, count(*) FROM notifications"
                           " WHERE event_key LIKE 'response/%' GROUP BY status"))


def message_ids(db, where: str) -> set[str]:
    return {json.loads(p)["message_id"] for p, in db.execute(
        f"SELECT payload FROM notifications WHERE kind = 'email' AND {where}")}


def start_worker(log) -> subprocess.Popen:
    return subprocess.Popen([COMMAND, "worker", "--interval", "0.2"], stdout=log,
                            stderr=subprocess.STDOUT, env=dict(os.environ))


@pytest.mark.slow
def test_each_alert_once_after_the_worker_is_killed_mid_dispatch(
        settings, db, smtp_server, receiver, tmp_path, monkeypatch):
    """SIGKILL a real `survey-mailer worker` twice while it dispatches 60 detractor alerts
    (emails to support over SMTP) and their 60 webhooks, and start it again each time.

    What notify promises, and is checked here:
    - a webhook is sent at least once, and is the same event each time (X-Survey-Event):
      by its event, each arrives exactly once; a repeat only for one in flight at a kill;
    - an email is never sent twice: one not yet handed over is sent by the next worker; one
      whose hand-off a kill interrupted may have arrived, so it is left `unknown` for staff
      (listed, sent again only with `notify --retry-unknown`), never resent blindly. So
      each email arrived once, or is unknown (at most one per kill), and none is lost
      silently.
    """
    from staff_support import answer

    from survey_mailer import notify

    server = smtp_server("none")
    server.handler.delay = 0.05  # support's server takes its time: the kills land mid-send
    monkeypatch.setenv("SURVEY_SUPPORT_EMAIL", "support@acme.test")
    monkeypatch.setenv("SURVEY_WEBHOOK_URLS", receiver.url + "/hook")
    many_deliveries(db, ALERTS)
    for delivery_id in range(1, ALERTS + 1):
        answer(db, delivery_id, delivery_id % 7, f"Comment {delivery_id}")  # 0-6: detractors
    mails = server.handler.messages
    kills = 0
    with open(tmp_path / "worker.log", "wb") as log:
        for threshold in (ALERTS // 4, ALERTS * 3 // 5):
            worker = start_worker(log)
            try:
                deadline = time.monotonic() + 20
                while len(mails) < threshold:
                    assert worker.poll() is None and time.monotonic() < deadline, \
                        "the worker sent no alerts"
                    time.sleep(0.005)
            finally:
                os.kill(worker.pid, signal.SIGKILL)
                worker.wait(10)
            kills += 1
        worker = start_worker(log)
        try:
            deadline = time.monotonic() + 20
            while sum(settled(db).get(s, 0) for s in ("sent", "unknown")) < 2 * ALERTS:
                assert time.monotonic() < deadline, f"not settled: {settled(db)}"
                time.sleep(0.05)
        finally:
            stop_process(worker)
    statuses = settled(db)
    expected = message_ids(db, "event_key LIKE 'response/%'")
    sent, unknown = message_ids(db, "status = 'sent'"), message_ids(db, "status = 'unknown'")
    arrived = [m["message"]["Message-ID"] for m in mails if "message" in m]
    events = [r["headers"]["X-Survey-Event"] for r in receiver.received
              if r["json"]["event"] == "response.counted"]
    print(f"alerts: {kills} kills, {len(arrived)} emails arrived, {len(unknown)} unknown, "
          f"{len(events)} webhooks for {len(set(events))} events; {statuses}")
    assert len(expected) == ALERTS and statuses.get("sent", 0) + len(unknown) == 2 * ALERTS
    assert len(arrived) == len(set(arrived))  # no email twice
    assert sent <= set(arrived)  # every one recorded sent arrived, once
    assert expected - set(arrived) <= unknown  # none lost silently: the missing are listed
    assert len(unknown) <= kills  # one email in flight per dispatcher
    assert len(notify.problems(db)) == len(unknown)  # staff see each of them
    assert len(set(events)) == ALERTS  # each webhook event arrived
    assert len(events) - len(set(events)) <= kills  # a repeat only for one in flight


# A database this process may not write -----------------------------------------------

NOBODY = 65534  # another user, who owns a file the commands may not open


def bound(*args: str) -> subprocess.CompletedProcess:
    """Run `survey-mailer ARGS` as a process that file modes stop."""
    return subprocess.run([*RESPECT_FILE_MODES, COMMAND, *args], capture_output=True,
                          text=True, env=dict(os.environ), timeout=60)


@pytest.fixture
def read_only_database(settings, monkeypatch, tmp_path):
    """A database with three deliveries that no one bound by file modes may write: the file
    444, its folder 555."""
    from survey_mailer import db as db_

    if not shutil.which("setpriv"):
        pytest.fail("this test drops capabilities with setpriv (util-linux): install it")
    top = tmp_path / "read-only"
    top.mkdir()
    folder = top / "data"
    folder.mkdir()
    path = folder / "survey.db"
    monkeypatch.setenv("SURVEY_DATABASE", str(path))
    settings["SURVEY_DATABASE"] = str(path)
    database = db_.connect(path)
    db_.migrate(database)
    many_deliveries(database, 3)
    database.close()
    path.chmod(0o444)
    folder.chmod(0o555)
    try:
        yield path
    finally:
        folder.chmod(0o755)
        shutil.rmtree(top)


def read_only_error(path: Path, reason: str = "attempt to write a readonly database") -> str:
    return (f"Error: the database {path} is read-only ({reason}): survey-mailer must be able "
            f"to write the file and create files in its folder\n")


@pytest.mark.slow
def test_a_read_only_database_is_a_one_line_error_for_every_command(read_only_database):
    before = read_only_database.read_bytes()
    csv = read_only_database.parent.parent / "contacts.csv"
    csv.write_text("email\nana@example.com\n")
    csv.chmod(0o644)
    # A write, a send, and a report: a report folds new clicks into responses, and in WAL
    # mode SQLite cannot even read without creating the -shm file beside the database.
    for command in (["contacts", "import", str(csv)], ["campaign", "send", "1"], ["report"]):
        result = bound(*command)
        assert (result.returncode, result.stdout) == (1, ""), command
        assert result.stderr == read_only_error(read_only_database), command
    assert read_only_database.read_bytes() == before
    assert sorted(p.name for p in read_only_database.parent.iterdir()) == [
        "survey.db", "survey.db-writelock"]


@pytest.mark.slow
def test_a_lock_file_left_by_another_user_is_named_in_one_line(read_only_database):
    # `survey-mailer init` run as one user, the app as another: the database and its
    # folder are open to all, but the write lock beside it is the other user's alone.
    read_only_database.chmod(0o666)
    read_only_database.parent.chmod(0o777)
    lock = Path(f"{read_only_database}-writelock")
    os.chown(lock, NOBODY, NOBODY)
    lock.chmod(0o600)
    result = bound("contacts", "list")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == read_only_error(
        read_only_database, f"Permission denied: {read_only_database}-writelock")


@pytest.mark.slow
def test_a_click_on_a_read_only_database_gets_a_friendly_503(read_only_database, settings,
                                                             links, tmp_path):
    import http.client

    with gunicorn_server(settings, tmp_path, bound_by_file_modes=True) as server:
        deadline = time.monotonic() + 20
        while not isinstance(status := click(server.url, "/healthz"), int):
            assert server.process.poll() is None and time.monotonic() < deadline, status
            time.sleep(0.1)
        assert status == 503  # a load balancer takes it out of service
        conn = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=30)
        conn.request("GET", f"/r/{links.token('score', 1)}/3",
                     headers={"User-Agent": BROWSER_UA})
        reply = conn.getresponse()
        page = reply.read().decode()
        conn.close()
    assert reply.status == 503
    assert reply.getheader("Content-Type") == "text/html; charset=utf-8"
    assert "Something went wrong on our side" in page
    assert "Your answer may not have been saved. Please try again in a moment." in page
    assert "Traceback" not in page and "readonly" not in page
    log = server.log.read_text()
    assert "Traceback" not in log
    assert read_only_error(read_only_database).removeprefix("Error: ").strip() in log
