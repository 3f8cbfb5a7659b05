"""Detractor alerts through the outbox and webhooks to a real HTTP server on loopback."""
# ruff: noqa: F811  (fixtures imported from staff_support are parameters here)

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest
from conftest import csrf_token, outbox, score_links
from staff_support import (  # noqa: F401 (fixtures)
    answer,
    deliveries,
    login,
    receiver,
    staff_user,
)

from landing import create_app
from survey_mailer import config as config_
from survey_mailer import humans, notify, responses

SUPPORT = "support@acme.test"
SECRET = "webhook-secret"


@pytest.fixture
def alerting(settings, monkeypatch):
    monkeypatch.setenv("SURVEY_SUPPORT_EMAIL", SUPPORT)
    return config_.load()


def _age_clicks(db, seconds=60):
    """Pretend the clicks happened a while ago: the burst window has passed."""
    db.execute("UPDATE responses SET last_click_at = datetime(last_click_at, ?)",
               [f"-{seconds} seconds"])
    db.execute("UPDATE clicks SET clicked_at = datetime(clicked_at, ?)", [f"-{seconds} seconds"])
    db.conn.commit()


def alerts(settings):
    return {k: m for k, m in outbox(settings).items() if k == SUPPORT}


def test_confirmed_detractor_sends_one_alert(db, sent_campaign, alerting, settings):
    ids = deliveries(db, sent_campaign)
    response_id = answer(db, ids["ana@example.com"], 2, "Support never answered",
                         contact_ok=True)
    answer(db, ids["bob@example.com"], 9, "Great")  # a promoter: no alert
    assert notify.dispatch(db, alerting) == {"sent": 1, "retry": 0, "failed": 0}
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
    assert notify.dispatch(db, alerting) == {"sent": 0, "retry": 0, "failed": 0}
    assert notify.queue_response(db, alerting, response_id) == 0
    assert len(list(Path(settings["SURVEY_OUTBOX_DIR"]).glob("alert-*.eml"))) == 1


def test_new_comment_alerts_again(db, sent_campaign, alerting, settings):
    ids = deliveries(db, sent_campaign)
    answer(db, ids["ana@example.com"], 2, "")
    notify.dispatch(db, alerting)
    answer(db, ids["ana@example.com"], 2, "Now with words")
    assert notify.dispatch(db, alerting)["sent"] == 1


def test_no_alert_without_support_email(db, sent_campaign, config, settings):
    answer(db, deliveries(db, sent_campaign)["ana@example.com"], 1)
    assert notify.dispatch(db, config)["sent"] == 0
    assert alerts(settings) == {}


def test_click_alerts_only_once_settled(db, sent_campaign, alerting, settings):
    found = responses.delivery(db, deliveries(db, sent_campaign)["ana@example.com"])
    humans.record_click(db, found, 4, method="GET", user_agent="Mozilla/5.0")
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
    assert notify.dispatch(db, config) == {"sent": 1, "retry": 1, "failed": 0}
    row = db.execute("SELECT status, attempts, last_error, next_attempt_at > ? "
                     "FROM notifications WHERE target LIKE '%/fail'", [notify.now()]).fetchone()
    assert tuple(row) == ("pending", 1, f"{receiver.url}/fail answered 500", 1)
    assert notify.dispatch(db, config)["sent"] == 0  # not due yet: backoff
    for expected in ({"sent": 0, "retry": 1, "failed": 0}, {"sent": 1, "retry": 0, "failed": 0}):
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


def test_unreachable_webhook_is_retried(db, sent_campaign, settings, monkeypatch):
    from conftest import free_port

    config = hooked(settings, monkeypatch, f"http://127.0.0.1:{free_port()}/nobody")
    answer(db, deliveries(db, sent_campaign)["ana@example.com"], 2)
    assert notify.dispatch(db, config) == {"sent": 0, "retry": 1, "failed": 0}


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
