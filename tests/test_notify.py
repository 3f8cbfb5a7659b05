"""Detractor alerts through the outbox and webhooks to a real HTTP server on loopback."""
# ruff: noqa: F811  (fixtures imported from staff_support are parameters here)

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import csrf_token, outbox, score_links
from staff_support import (  # noqa: F401 (fixtures)
    answer,
    deliveries,
    login,
    receiver,
    staff_client,
    staff_user,
)

from landing import create_app
from survey_mailer import clock as clock_
from survey_mailer import config as config_
from survey_mailer import db as db_
from survey_mailer import humans, leases, notify, responses
from survey_mailer.backends.outbox import OutboxBackend
from survey_mailer.migrations import migrations

SUPPORT = "support@acme.test"
SECRET = "webhook-secret"


@pytest.fixture
def alerting(settings, monkeypatch):
    monkeypatch.setenv("SURVEY_SUPPORT_EMAIL", SUPPORT)
    return config_.load()


def outcome(sent=0, retry=0, failed=0, unknown=0) -> dict:
    """Return what `notify.dispatch` answers."""
    return {"sent": sent, "retry": retry, "failed": failed, "unknown": unknown}


def _age_clicks(db, seconds=60):
    """Pretend the clicks happened a while ago: the burst window has passed."""
    db.execute("UPDATE responses SET last_click_at = datetime(last_click_at, ?)",
               [f"-{seconds} seconds"])
    db.execute("UPDATE clicks SET clicked_at = datetime(clicked_at, ?)", [f"-{seconds} seconds"])
    db.conn.commit()


def alerts(settings):
    return {k: m for k, m in outbox(settings).items() if k == SUPPORT}


def alert_files(settings) -> list[email.message.EmailMessage]:
    """Return the alerts in the outbox (each notification is its own file), oldest first."""
    paths = Path(settings["SURVEY_OUTBOX_DIR"]).glob("alert-n*.eml")
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in sorted(paths, key=lambda p: int(p.stem.removeprefix("alert-n")))]


@pytest.fixture
def clock():
    frozen = clock_.Stopped()
    with clock_.frozen(frozen):
        yield frozen


def test_confirmed_detractor_sends_one_alert(db, sent_campaign, alerting, settings):
    ids = deliveries(db, sent_campaign)
    response_id = answer(db, ids["ana@example.com"], 2, "Support never answered",
                         contact_ok=True)
    answer(db, ids["bob@example.com"], 9, "Great")  # a promoter: no alert
    assert notify.dispatch(db, alerting) == outcome(sent=1)
    msg = alerts(settings)[SUPPORT]
    assert msg["Subject"] == "Detractor: Ana García (Acme) scored 2"
    assert msg["Reply-To"].addresses[0].addr_spec == "ana@example.com"
    assert msg["Reply-To"].addresses[0].display_name == "Ana García"
    assert msg["From"].addresses[0].addr_spec == "nps@acme.test"
    assert msg["Date"].datetime is not None
    assert msg["Message-ID"].endswith("@acme.test>")
    body = msg.get_body(("plain",)).get_content()
    assert "Ana García (Acme) answered 2 out of 10" in body
    assert "Support never answered" in body
    assert "(agreed to be contacted)" in body
    assert f"http://survey.test/staff/followups/{response_id}" in body
    # Idempotent: dispatching again, or finding the same response again, sends nothing.
    assert notify.dispatch(db, alerting) == outcome()
    assert notify.queue_response(db, alerting, response_id) == 0
    assert len(list(Path(settings["SURVEY_OUTBOX_DIR"]).glob("alert-*.eml"))) == 1


def test_no_alert_without_support_email(db, sent_campaign, config, settings):
    answer(db, deliveries(db, sent_campaign)["ana@example.com"], 1)
    assert notify.dispatch(db, config)["sent"] == 0
    assert alerts(settings) == {}


def test_click_alerts_only_once_settled(db, sent_campaign, alerting, settings):
    found = responses.delivery(db, deliveries(db, sent_campaign)["ana@example.com"])
    humans.record_click(db, found, 4, method="GET", user_agent="Mozilla/5.0", seen=True)
    assert notify.dispatch(db, alerting)["sent"] == 0  # a burst may still come
    _age_clicks(db)
    assert notify.dispatch(db, alerting)["sent"] == 1
    assert "scored 4" in alerts(settings)[SUPPORT]["Subject"]


def test_automated_burst_never_alerts(db, sent_campaign, alerting, settings):
    found = responses.delivery(db, deliveries(db, sent_campaign)["ana@example.com"])
    for score in (0, 1, 2, 3):
        humans.record_click(db, found, score, method="GET", user_agent="Mozilla/5.0")
    _age_clicks(db)
    assert notify.dispatch(db, alerting)["sent"] == 0
    assert alerts(settings) == {}


def test_strict_policy_alerts_only_confirmed(db, sent_campaign, settings, monkeypatch):
    monkeypatch.setenv("SURVEY_SUPPORT_EMAIL", SUPPORT)
    monkeypatch.setenv("SURVEY_SCORE_POLICY", "strict")
    strict = config_.load()
    ids = deliveries(db, sent_campaign)
    humans.record_click(db, responses.delivery(db, ids["ana@example.com"]), 3,
                           method="GET", user_agent="Mozilla/5.0")
    _age_clicks(db)
    assert notify.dispatch(db, strict)["sent"] == 0
    answer(db, ids["ana@example.com"], 3, "ok, confirmed")
    assert notify.dispatch(db, strict)["sent"] == 1


def test_form_post_alerts_right_away(alerting, client, db, sent_campaign, settings):
    msg = outbox(settings)["ana@example.com"]
    link = score_links(msg)[3]
    page = client.get(link, headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"},
                      follow_redirects=True)
    token = link.split("/")[2]
    response = client.post(f"/feedback/{token}",
                           data={"csrf_token": csrf_token(page.text), "score": "3",
                                 "comment": "Please call me"})
    assert response.status_code == 200
    response.close()  # the server closes it after sending; dispatch runs then
    msg = alerts(settings)[SUPPORT]
    assert "Please call me" in msg.get_body(("plain",)).get_content()


def test_form_post_sends_only_its_own_alert(alerting, client, db, sent_campaign, settings):
    # The soak (issue 15) found each form's request sending up to five alerts of others
    # after its answer, and scanning every recent response under the write lock first:
    # under load the web workers spent most of their time there. The backlog is the worker's.
    ids = deliveries(db, sent_campaign)
    answer(db, ids["bob@example.com"], 1, "Too slow")  # counted, settled, not yet queued
    link = score_links(outbox(settings)["ana@example.com"])[3]
    page = client.get(link, headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"},
                      follow_redirects=True)
    response = client.post(f"/feedback/{link.split('/')[2]}",
                           data={"csrf_token": csrf_token(page.text), "score": "3",
                                 "comment": "Please call me"})
    assert response.status_code == 200
    response.close()
    sent = alert_files(settings)
    assert len(sent) == 1
    assert "Please call me" in sent[0].get_body(("plain",)).get_content()
    queued = db.execute("SELECT c.email FROM notifications n JOIN responses r ON r.id ="
                        " n.response_id JOIN contacts c ON c.id = r.contact_id").fetchall()
    assert [row[0] for row in queued] == ["ana@example.com"]
    assert notify.dispatch(db, alerting) == outcome(sent=1)  # the worker's round: Bob's
    assert "Too slow" in alert_files(settings)[1].get_body(("plain",)).get_content()


# Webhooks ---------------------------------------------------------------------------------


def hooked(settings, monkeypatch, *urls):
    monkeypatch.setenv("SURVEY_WEBHOOK_URLS", ",".join(urls))
    monkeypatch.setenv("SURVEY_WEBHOOK_SECRET", SECRET)
    return config_.load()


def test_webhook_gets_signed_slack_compatible_json(db, sent_campaign, settings, monkeypatch,
                                                   receiver):
    config = hooked(settings, monkeypatch, receiver.url + "/hook")
    ids = deliveries(db, sent_campaign)
    response_id = answer(db, ids["ana@example.com"], 2, "Too <b>slow</b> & buggy")
    answer(db, ids["chloe@example.com"], 10, "Love it")
    assert notify.dispatch(db, config)["sent"] == 2
    by_score = {r["json"]["response"]["score"]: r for r in receiver.received}
    detractor = by_score[2]
    assert detractor["path"] == "/hook"
    assert detractor["headers"]["Content-Type"] == "application/json"
    expected = "sha256=" + hmac.new(SECRET.encode(), detractor["body"],
                                    hashlib.sha256).hexdigest()
    assert detractor["headers"]["X-Survey-Signature"] == expected
    assert len(detractor["headers"]["X-Survey-Event"]) == 32
    payload = detractor["json"]
    assert payload["event"] == "response.counted"
    assert payload["text"] == ('Ana García (Acme) scored 2 (detractor): '
                               '"Too &lt;b&gt;slow&lt;/b&gt; &amp; buggy" - follow up: '
                               f"http://survey.test/staff/followups/{response_id}")
    assert payload["response"]["comment"] == "Too <b>slow</b> & buggy"
    assert by_score[10]["json"]["text"] == 'Chloé Martin (Globex) scored 10 (promoter): "Love it"'
    assert notify.dispatch(db, config)["sent"] == 0  # nothing twice


def test_failing_webhook_is_retried_with_backoff(db, sent_campaign, settings, monkeypatch,
                                                 receiver):
    receiver.failures_left = 2
    config = hooked(settings, monkeypatch, receiver.url + "/fail", receiver.url + "/ok")
    answer(db, deliveries(db, sent_campaign)["ana@example.com"], 2)
    assert notify.dispatch(db, config) == outcome(sent=1, retry=1)
    row = db.execute("SELECT status, attempts, last_error, next_attempt_at > ? "
                     "FROM notifications WHERE target LIKE '%/fail'", [notify.now()]).fetchone()
    assert tuple(row) == ("pending", 1, f"{receiver.url}/fail answered 500", 1)
    assert notify.dispatch(db, config)["sent"] == 0  # not due yet: backoff
    for expected in (outcome(retry=1), outcome(sent=1)):
        db.execute("UPDATE notifications SET next_attempt_at = '2000-01-01'")
        db.conn.commit()
        assert notify.dispatch(db, config) == expected
    paths = [r["path"] for r in receiver.received]
    assert paths.count("/fail") == 3 and paths.count("/ok") == 1
    bodies = {r["body"] for r in receiver.received if r["path"] == "/fail"}
    assert len(bodies) == 1  # the same event each time


def test_webhook_gives_up_after_max_attempts(db, sent_campaign, settings, monkeypatch,
                                             receiver):
    receiver.failures_left = -1  # always fails
    config = hooked(settings, monkeypatch, receiver.url + "/fail")
    answer(db, deliveries(db, sent_campaign)["ana@example.com"], 2)
    for _ in range(notify.MAX_ATTEMPTS):
        db.execute("UPDATE notifications SET next_attempt_at = '2000-01-01'")
        db.conn.commit()
        notify.dispatch(db, config)
    row = db.execute("SELECT status, attempts FROM notifications").fetchone()
    assert tuple(row) == ("failed", notify.MAX_ATTEMPTS)
    # Staff see where it failed, not the URL's path (often its secret, as Slack's are).
    [problem] = notify.problems(db)
    assert problem["message"] == (f"Webhook to {receiver.url}/... failed: "
                                  f"{receiver.url}/... answered 500")


def test_unreachable_webhook_is_retried(db, sent_campaign, settings, monkeypatch):
    from conftest import free_port

    config = hooked(settings, monkeypatch, f"http://127.0.0.1:{free_port()}/nobody")
    answer(db, deliveries(db, sent_campaign)["ana@example.com"], 2)
    assert notify.dispatch(db, config) == outcome(retry=1)


def test_expired_claim_is_sent_again(db, sent_campaign, settings, monkeypatch, receiver):
    config = hooked(settings, monkeypatch, receiver.url + "/hook")
    answer(db, deliveries(db, sent_campaign)["ana@example.com"], 2)
    notify.scan(db, config)
    assert len(notify.claim(db)) == 1  # then the process dies before sending
    assert notify.dispatch(db, config)["sent"] == 0  # still claimed by the dead process
    db.execute("UPDATE notifications SET claimed_until = '2000-01-01'")
    db.conn.commit()
    assert notify.dispatch(db, config)["sent"] == 1
    assert len(receiver.received) == 1


def test_case_update_sends_webhook(settings, db, sent_campaign, monkeypatch, receiver,
                                   staff_user):
    monkeypatch.setenv("SURVEY_WEBHOOK_URLS", receiver.url + "/hook")
    app = create_app({"TESTING": True, "RATELIMIT_ENABLED": False})
    client = app.test_client()
    login(client)
    response_id = answer(db, deliveries(db, sent_campaign)["ana@example.com"], 2)
    notify.dispatch(db, config_.load())
    html = client.get(f"/staff/followups/{response_id}").text
    response = client.post(f"/staff/followups/{response_id}",
                           data={"csrf_token": csrf_token(html), "status": "resolved",
                                 "assignee": "", "note": "Refunded"})
    response.close()
    events = [r["json"] for r in receiver.received]
    assert [e["event"] for e in events] == ["response.counted", "case.updated"]
    update = events[1]
    assert update["case"] == {"response_id": response_id, "status": "resolved",
                              "assignee_id": None, "note": "Refunded",
                              "by": "agent@acme.test"}
    assert update["text"].startswith(
        "Case of Ana García (score 2) updated by agent@acme.test: status new -> resolved, "
        "note added")


def test_notify_command(runner, db, sent_campaign, settings, monkeypatch, receiver):
    monkeypatch.setenv("SURVEY_WEBHOOK_URLS", receiver.url + "/hook")
    answer(db, deliveries(db, sent_campaign)["ana@example.com"], 2)
    result = runner("notify")
    assert result.exit_code == 0
    assert result.output == "1 sent, 0 to retry, 0 failed\n"
    assert json.loads(receiver.received[0]["body"])["response"]["email"] == "ana@example.com"


def test_watch_dispatches_until_stopped(db, sent_campaign, settings, monkeypatch, receiver):
    config = hooked(settings, monkeypatch, receiver.url + "/hook")
    answer(db, deliveries(db, sent_campaign)["ana@example.com"], 2)
    rounds = iter([False, True])
    notify.watch(db, config, interval=0, stop=lambda: next(rounds))
    assert len(receiver.received) == 1


# One bad notification fails alone; a crash is taken over in seconds (issue 10, item 2) -----

CRLF_NAME = "Bob\r\nBcc: everyone@example.net"
BAD_HEADER = "Header values may not contain linefeed or carriage return characters"
ROOT = str(Path(__file__).resolve().parent.parent)


def _fail_to_build_for_crlf(monkeypatch):
    """Make building an alert raise for a name with CR/LF, however headers come to be built."""
    build = notify.alert_message

    def alert_message(config, payload):
        if "\n" in payload["response"]["name"]:
            raise ValueError(BAD_HEADER)
        return build(config, payload)

    monkeypatch.setattr(notify, "alert_message", alert_message)


def test_one_bad_alert_fails_alone_and_staff_see_why(db, sent_campaign, alerting, settings,
                                                     runner, monkeypatch, staff_client):
    ids = deliveries(db, sent_campaign)
    db.execute("UPDATE contacts SET name = ? WHERE email = 'bob@example.com'", [CRLF_NAME])
    db.conn.commit()
    ana = answer(db, ids["ana@example.com"], 2, "Slow")
    bob = answer(db, ids["bob@example.com"], 3, "Broken")
    chloe = answer(db, ids["chloe@example.com"], 1, "Expensive")
    _fail_to_build_for_crlf(monkeypatch)
    result = runner("notify")
    assert result.exit_code == 0
    assert result.stdout == "2 sent, 0 to retry, 1 failed\n"
    problem = f"Alert to {SUPPORT} failed: could not build the message: {BAD_HEADER}"
    assert result.stderr == problem + "\n"
    rows = {r[0]: (r[1], r[2]) for r in db.execute(
        "SELECT response_id, status, last_error FROM notifications")}
    assert rows == {ana: ("sent", None), chloe: ("sent", None),
                    bob: ("failed", f"could not build the message: {BAD_HEADER}")}
    assert sorted(m["Subject"] for m in alert_files(settings)) == [
        "Detractor: Ana García (Acme) scored 2", "Detractor: Chloé Martin (Globex) scored 1"]
    # Staff see it on the dashboard, linked to the case, and on the case itself.
    dashboard = staff_client.get("/staff/").text
    assert f'<a href="/staff/followups/{bob}">{problem}</a>' in dashboard
    assert problem in staff_client.get(f"/staff/followups/{bob}").text
    assert "Alert to" not in staff_client.get(f"/staff/followups/{ana}").text
    # Given up: not tried again, and the next run is clean.
    assert runner("notify").output == "0 sent, 0 to retry, 0 failed\n"


class FlakyOutbox(OutboxBackend):
    """The real outbox, with an error nobody foresaw while handing over one delivery's alert."""

    def __init__(self, directory: str, delivery_id: int):
        super().__init__(directory)
        self.delivery_id = delivery_id

    def send(self, envelope, message):
        if envelope.delivery_id == self.delivery_id:
            raise RuntimeError("socket in a state nobody foresaw")
        return super().send(envelope, message)


def test_an_unforeseen_error_mid_hand_off_is_not_sent_blindly(db, sent_campaign, alerting,
                                                              settings, runner, staff_client):
    from markupsafe import escape

    ids = deliveries(db, sent_campaign)
    answer(db, ids["ana@example.com"], 2)
    chloe = answer(db, ids["chloe@example.com"], 1)
    flaky = FlakyOutbox(settings["SURVEY_OUTBOX_DIR"], ids["chloe@example.com"])
    assert notify.dispatch(db, alerting, backend=flaky) == outcome(sent=1, unknown=1)
    assert notify.dispatch(db, alerting, backend=flaky) == outcome()  # it may have gone out
    problem = (f"Alert to {SUPPORT} was interrupted: unexpected error while handing over: "
               f"RuntimeError('socket in a state nobody foresaw')")
    assert str(escape(problem)) in staff_client.get(f"/staff/followups/{chloe}").text
    result = runner("notify", "--retry-unknown")
    assert (result.stdout, result.stderr) == ("1 sent, 0 to retry, 0 failed\n",
                                              "1 interrupted email queued again\n")
    assert len(alert_files(settings)) == 2


def test_watch_survives_any_failing_round(db, sent_campaign, settings, monkeypatch, receiver,
                                          capsys):
    config = hooked(settings, monkeypatch, receiver.url + "/hook")
    answer(db, deliveries(db, sent_campaign)["ana@example.com"], 2)
    real, calls = notify.dispatch, []

    def dispatch(db, config):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("something nobody foresaw\nover two lines")
        return real(db, config)

    monkeypatch.setattr(notify, "dispatch", dispatch)
    rounds = iter([False, False, True])
    notify.watch(db, config, interval=0, stop=lambda: next(rounds))
    assert len(receiver.received) == 1
    assert capsys.readouterr().err == ("survey-mailer notify: RuntimeError: something nobody "
                                       "foresaw over two lines; trying again in 0s\n")


def _python(script: str, *args: str) -> subprocess.Popen:
    """Start a Python process on this worktree's code; its stdout is a pipe."""
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": ROOT})


def _kill(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(30)
    process.stdout.close()


# Claims for a lease that outlasts the test: only the claimer's death frees them.
CLAIM_AND_HANG = """
import sys, time
from datetime import datetime, UTC
from survey_mailer import clock, db, notify
with clock.frozen(datetime(2999, 1, 1, tzinfo=UTC)):
    print(len(notify.claim(db.connect(sys.argv[1]))), flush=True)
time.sleep(600)
"""


def test_a_killed_dispatchers_claims_are_taken_over_at_once(db, sent_campaign, settings,
                                                            monkeypatch, receiver):
    config = hooked(settings, monkeypatch, receiver.url + "/hook")
    answer(db, deliveries(db, sent_campaign)["ana@example.com"], 2)
    notify.scan(db, config)
    process = _python(CLAIM_AND_HANG, settings["SURVEY_DATABASE"])
    try:
        assert process.stdout.readline() == b"1\n"
        assert notify.dispatch(db, config) == outcome()  # its claimer lives: hands off
    finally:
        _kill(process)
    assert notify.dispatch(db, config) == outcome(sent=1)
    assert len(receiver.received) == 1


HAND_OVER_AND_HANG = """
import sys, time
from survey_mailer import config, db, notify

class Stuck:
    def send(self, envelope, message):
        print("handing over", flush=True)
        time.sleep(600)

    def close(self):
        pass

notify.dispatch(db.connect(sys.argv[1]), config.load(), backend=Stuck())
"""


def test_an_email_whose_sender_died_mid_hand_off_is_not_sent_twice(db, sent_campaign,
                                                                   alerting, settings, runner,
                                                                   staff_client):
    ana = answer(db, deliveries(db, sent_campaign)["ana@example.com"], 2)
    process = _python(HAND_OVER_AND_HANG, settings["SURVEY_DATABASE"])
    try:
        assert process.stdout.readline() == b"handing over\n"
    finally:
        _kill(process)
    assert notify.dispatch(db, alerting) == outcome()  # it may have gone out: not again
    assert [tuple(r) for r in db.execute("SELECT status, last_error FROM notifications")] == [
        ("unknown", notify.INTERRUPTED)]
    assert alert_files(settings) == []
    problem = f"Alert to {SUPPORT} was interrupted: {notify.INTERRUPTED}"
    assert problem in staff_client.get(f"/staff/followups/{ana}").text
    assert problem in staff_client.get("/staff/").text
    assert runner("notify", "--retry-unknown").stdout == "1 sent, 0 to retry, 0 failed\n"
    assert len(alert_files(settings)) == 1


def test_a_claim_from_another_host_is_taken_over_when_its_lease_ends(db, sent_campaign,
                                                                     settings, monkeypatch,
                                                                     receiver, clock):
    config = hooked(settings, monkeypatch, receiver.url + "/hook")
    answer(db, deliveries(db, sent_campaign)["ana@example.com"], 2)
    notify.scan(db, config)
    assert len(notify.claim(db, by="another-host:4242:cafe:0001")) == 1
    clock.advance(leases.LEASE_SECONDS - 1)
    assert notify.dispatch(db, config) == outcome()  # cannot tell it died: its lease holds
    clock.advance(1)
    assert notify.dispatch(db, config) == outcome(sent=1)
    assert len(receiver.received) == 1


def test_a_slow_send_keeps_its_claim_renewed(db, sent_campaign, alerting, settings,
                                            monkeypatch):
    monkeypatch.setattr(leases, "LEASE_SECONDS", 0.3)  # a beat every 0.1 s
    answer(db, deliveries(db, sent_campaign)["ana@example.com"], 2)
    seen = []

    class Slow(OutboxBackend):
        def send(self, envelope, message):
            other = db_.reconnect(db)
            try:
                first = other.execute("SELECT claimed_until FROM notifications").fetchone()[0]
                for _ in range(600):  # until the heartbeat renews the lease (or 60 s)
                    seen.append(other.execute(
                        "SELECT claimed_until FROM notifications").fetchone()[0])
                    if seen[-1] > first:
                        break
                    time.sleep(0.1)
            finally:
                other.close()
            return super().send(envelope, message)

    backend = Slow(settings["SURVEY_OUTBOX_DIR"])
    assert notify.dispatch(db, alerting, backend=backend) == outcome(sent=1)
    assert len(set(seen)) == 2  # renewed while the message was being handed over


def test_lease_owners_alive_or_not():
    me = leases.owner()
    host, pid, token = me.split(":")
    assert (host, int(pid)) == (socket.gethostname(), os.getpid())
    assert leases.alive(me) and leases.alive(f"{me}:a-claim")
    assert not leases.alive(f"{host}:{pid}:{token}x")  # an earlier process with this pid
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait(30)
    assert not leases.alive(f"{host}:{ended.pid}:cafe")
    assert leases.alive(f"elsewhere:{ended.pid}:cafe")  # another host: only its lease tells
    assert leases.alive(None)


# One alert per response, then updates in its thread (issue 10, item 11) ------------------


@pytest.fixture
def both(settings, monkeypatch, receiver):
    """Settings with support alerts and a webhook to the receiver."""
    monkeypatch.setenv("SURVEY_SUPPORT_EMAIL", SUPPORT)
    return hooked(settings, monkeypatch, receiver.url + "/hook")


def test_quick_changes_are_one_update_in_the_alerts_thread(db, sent_campaign, both, settings,
                                                          receiver, clock):
    ana = deliveries(db, sent_campaign)["ana@example.com"]
    response_id = answer(db, ana, 2)
    assert notify.dispatch(db, both) == outcome(sent=2)  # the alert and the webhook
    clock.advance(2)
    answer(db, ana, 3)
    assert notify.dispatch(db, both) == outcome()  # still changing
    clock.advance(2)
    answer(db, ana, 3, "Nobody called back")
    assert notify.dispatch(db, both) == outcome()
    clock.advance(10.5)  # quiet for the burst window: one update for both changes
    assert notify.dispatch(db, both) == outcome(sent=2)
    assert notify.dispatch(db, both) == outcome()
    alert, update = alert_files(settings)
    assert alert["Subject"] == "Detractor: Ana García (Acme) scored 2"
    assert alert["In-Reply-To"] is None
    assert update["Subject"] == "Re: Detractor: Ana García (Acme) scored 2"
    assert update["In-Reply-To"] == alert["Message-ID"]
    assert update["References"] == alert["Message-ID"]
    assert update["Message-ID"] != alert["Message-ID"]
    assert update["Reply-To"].addresses[0].addr_spec == "ana@example.com"
    assert update.get_body(("plain",)).get_content().startswith(
        'Ana García (Acme) changed their answer to "Q4": score 2 -> 3, comment added.\n'
        "Now: 3 out of 10 (detractor).\n\nComment:\nNobody called back\n")
    counted, updated = [r["json"] for r in receiver.received]
    assert (counted["event"], counted["response"]["score"]) == ("response.counted", 2)
    assert updated["event"] == "response.updated"
    assert updated["changes"] == ["score 2 -> 3", "comment added"]
    assert updated["previous"] == {"score": 2}
    assert updated["response"]["score"] == 3
    assert updated["text"] == (
        'Ana García (Acme) changed their answer (score 2 -> 3, comment added): now 3 '
        '(detractor): "Nobody called back" - follow up: '
        f"http://survey.test/staff/followups/{response_id}")
    assert len({r["headers"]["X-Survey-Event"] for r in receiver.received}) == 2


def test_a_passive_who_turns_detractor_gets_one_alert(db, sent_campaign, both, settings,
                                                      receiver, clock):
    bob = deliveries(db, sent_campaign)["bob@example.com"]
    answer(db, bob, 8, "Fine")
    assert notify.dispatch(db, both) == outcome(sent=1)  # the webhook: no alert for a passive
    assert alert_files(settings) == []
    clock.advance(3600)
    answer(db, bob, 4, "Actually, it broke")
    clock.advance(11)
    assert notify.dispatch(db, both) == outcome(sent=2)
    assert notify.dispatch(db, both) == outcome()
    [alert] = alert_files(settings)
    assert alert["Subject"] == "Detractor: Bob Smith (Acme) scored 4"
    assert alert["In-Reply-To"] is None
    assert alert.get_body(("plain",)).get_content().startswith(
        'Bob Smith (Acme) answered 4 out of 10 to "Q4".')
    events = [r["json"] for r in receiver.received]
    assert [(e["event"], e["response"]["score"]) for e in events] == [
        ("response.counted", 8), ("response.updated", 4)]
    assert events[1]["changes"] == ["score 8 -> 4", "comment changed"]


def test_the_same_answer_sent_twice_changes_nothing(db, sent_campaign, both, settings, receiver,
                                                    clock):
    ana = deliveries(db, sent_campaign)["ana@example.com"]
    answer(db, ana, 2, "Slow")
    assert notify.dispatch(db, both) == outcome(sent=2)
    clock.advance(30)
    answer(db, ana, 2, "Slow")
    assert notify.dispatch(db, both) == outcome()
    clock.advance(30)
    assert notify.dispatch(db, both) == outcome()
    assert len(alert_files(settings)) == 1
    assert len(receiver.received) == 1


def test_an_update_after_a_detractor_turns_promoter_says_so(db, sent_campaign, both, settings,
                                                            clock):
    ana = deliveries(db, sent_campaign)["ana@example.com"]
    answer(db, ana, 3, "Slow")
    notify.dispatch(db, both)
    clock.advance(60)
    answer(db, ana, 9, "")
    clock.advance(11)
    assert notify.dispatch(db, both) == outcome(sent=2)
    _, update = alert_files(settings)
    body = update.get_body(("plain",)).get_content()
    assert body.startswith('Ana García (Acme) changed their answer to "Q4": score 3 -> 9, '
                           "comment removed.\nNow: 9 out of 10 (promoter).\n")
    assert "No follow-up case: they are no longer a detractor." in body


def _race(db, config) -> None:
    """Dispatch from two threads at once, each on its own connection, as two workers do."""
    start, errors = threading.Barrier(2), []

    def run():
        own = db_.reconnect(db)
        try:
            start.wait()
            notify.dispatch(own, config)
        except Exception as e:  # reported below, in the test's thread
            errors.append(e)
        finally:
            own.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_two_dispatchers_at_once_announce_each_change_once(db, sent_campaign, both, settings,
                                                           receiver, clock):
    ids = deliveries(db, sent_campaign)
    people = ["ana@example.com", "bob@example.com", "chloe@example.com"]
    for person in people:
        answer(db, ids[person], 2, "first")
    _race(db, both)
    clock.advance(60)
    for person in people:
        answer(db, ids[person], 3, "second")
    clock.advance(11)
    _race(db, both)
    _race(db, both)
    events = sorted((r["json"]["response"]["email"], r["json"]["event"])
                    for r in receiver.received)
    assert events == sorted([(p, "response.counted") for p in people]
                            + [(p, "response.updated") for p in people])
    emails = db.execute("SELECT json_extract(payload, '$.type'), status, count(*) "
                        "FROM notifications WHERE kind = 'email' GROUP BY 1, 2").fetchall()
    assert [tuple(r) for r in emails] == [("alert", "sent", 3), ("update", "sent", 3)]
    assert len(alert_files(settings)) == 6


def test_alerts_queued_before_threads_are_not_announced_again(settings, monkeypatch, clock):
    monkeypatch.setenv("SURVEY_SUPPORT_EMAIL", SUPPORT)
    config = config_.load()
    database = db_.connect(settings["SURVEY_DATABASE"])
    migrations.apply(database, stop_before="m013_alert_threads")
    stamp = notify.now()
    database.execute("INSERT INTO contacts (id, email, name, company, created_at, updated_at)"
                     " VALUES (1, 'ana@example.com', 'Ana García', 'Acme', ?, ?)", [stamp] * 2)
    database.execute("INSERT INTO campaigns (id, name, subject, sender, brand, created_at)"
                     " VALUES (1, 'Q4', 'Hi', 'Acme <nps@acme.test>', 'Acme', ?)", [stamp])
    database.execute("INSERT INTO deliveries (id, campaign_id, contact_id, status, created_at)"
                     " VALUES (1, 1, 1, 'sent', ?)", [stamp])
    database.execute("INSERT INTO responses (id, delivery_id, campaign_id, contact_id, score,"
                     " comment, confirmed, created_at, responded_at)"
                     " VALUES (1, 1, 1, 1, 2, 'Slow', 1, ?, ?)", [stamp] * 2)
    row = {"id": 1, "delivery_id": 1, "campaign_id": 1, "score": 2, "comment": "Slow",
           "contact_ok": 0, "confirmed": 1, "responded_at": stamp, "email": "ana@example.com",
           "name": "Ana García", "company": "Acme", "language": "en", "campaign_name": "Q4",
           "sender": "Acme <nps@acme.test>"}
    digest = hashlib.sha256(b"Slow").hexdigest()[:12]  # how keys were made then
    for key, kind, target in [(f"response/1/2/{digest}|email", "email", SUPPORT),
                              (f"case/1/{'ab' * 8}|webhook|http://hooks.test/", "webhook",
                               "http://hooks.test/")]:
        database.execute(
            "INSERT INTO notifications (event_key, kind, target, payload, status, attempts,"
            " next_attempt_at, created_at, sent_at) VALUES (?, ?, ?, ?, 'sent', 1, ?, ?, ?)",
            [key, kind, target, json.dumps({"response": row, "case_url": "x"}), stamp, stamp,
             stamp])
    database.conn.commit()
    db_.migrate(database)
    assert [r[0] for r in database.execute("SELECT response_id FROM notifications")] == [1, 1]
    assert [tuple(r) for r in database.execute(
        "SELECT revision, score, subject, message_id FROM alert_threads")] == [
        (1, 2, "Detractor: Ana García (Acme) scored 2", None)]
    assert notify.dispatch(database, config) == outcome()  # announced already
    clock.advance(60)
    database.execute("UPDATE responses SET comment = 'Slow and rude', responded_at = ?",
                     [notify.now()])
    database.conn.commit()
    clock.advance(11)
    assert notify.dispatch(database, config) == outcome(sent=1)
    [update] = alert_files(settings)
    assert update["Subject"] == "Re: Detractor: Ana García (Acme) scored 2"
    assert update["In-Reply-To"] is None  # its alert's Message-ID was never kept
    database.close()


def test_an_update_waits_for_its_alert(db, sent_campaign, settings, monkeypatch, receiver,
                                       clock):
    receiver.failures_left = 1
    config = hooked(settings, monkeypatch, receiver.url + "/fail")
    ana = deliveries(db, sent_campaign)["ana@example.com"]
    answer(db, ana, 2)
    assert notify.dispatch(db, config) == outcome(retry=1)  # again in 30 s
    clock.advance(5)
    answer(db, ana, 2, "Still waiting")
    clock.advance(11)
    assert notify.dispatch(db, config) == outcome()  # queued, behind the event it updates
    clock.advance(notify.backoff(1))
    assert notify.dispatch(db, config) == outcome(sent=2)
    assert [r["json"]["event"] for r in receiver.received] == [
        "response.counted", "response.counted", "response.updated"]
