"""/staff/campaigns for marketers: create, edit, preview, schedule (the worker sends),
progress, pause and resume."""

# ruff: noqa: F811  (fixtures imported from staff_support are parameters here)

from __future__ import annotations

import re

import pytest
from conftest import csrf_token, outbox
from staff_support import XSS, marketer  # noqa: F401

from survey_mailer import config as config_
from survey_mailer.worker import Worker

FIELDS = {"name": "Q1 relationship", "subject": "One question", "sender": "Acme <nps@acme.test>",
          "brand": "", "postal_address": "1 Main St\nSpringfield", "segment": "",
          "remind_after_days": ""}


def create(client, **fields) -> object:
    token = csrf_token(client.get("/staff/campaigns/new").text)
    return client.post("/staff/campaigns/new", data={**FIELDS, **fields, "csrf_token": token})


def test_create_edit_and_list(marketer, db):
    reply = create(marketer, name=XSS, segment="company=Acme\nplan=pro")
    assert reply.status_code == 303
    campaign_id = int(reply.headers["Location"].rsplit("/", 1)[1])
    row = db.execute("SELECT name, postal_address, segment, brand FROM campaigns").fetchone()
    assert tuple(row) == (XSS, "1 Main St, Springfield", '{"company": "Acme", "plan": "pro"}',
                          "Acme")
    page = marketer.get(f"/staff/campaigns/{campaign_id}").text
    assert XSS not in page and "&lt;script&gt;" in page
    assert "<strong>1</strong> contacts would get it now" in page  # ana: Acme, pro
    listing = marketer.get("/staff/campaigns").text
    assert XSS not in listing and "draft" in listing
    token = csrf_token(page)
    reply = marketer.post(f"/staff/campaigns/{campaign_id}/edit",
                          data={**FIELDS, "subject": "Two words?", "csrf_token": token})
    assert reply.status_code == 303
    assert db.execute("SELECT subject, segment FROM campaigns").fetchone()[:] == \
        ("Two words?", "{}")


@pytest.mark.parametrize("fields, message", [
    ({"sender": "not an address"}, "is not an email address"),
    ({"segment": "no equals sign"}, "is not ATTRIBUTE=VALUE"),
    ({"segment": "shoe_size=42"}, "no contact has the attribute &#34;shoe_size&#34;"),
    ({"name": ""}, "This field is required."),
    ({"remind_after_days": "400"}, "Number must be between 0 and 365."),
])
def test_a_bad_campaign_is_a_400_naming_the_problem(marketer, db, fields, message):
    reply = create(marketer, **fields)
    assert reply.status_code == 400
    assert message in reply.text
    assert db.execute("SELECT count(*) FROM campaigns").fetchone()[0] == 0


def test_preview_in_every_language(marketer, db):
    campaign_id = int(create(marketer).headers["Location"].rsplit("/", 1)[1])
    page = marketer.get(f"/staff/campaigns/{campaign_id}/preview?language=es")
    assert page.status_code == 200
    assert page.text.count("<iframe") == 2 and 'width="375"' in page.text
    email = marketer.get(f"/staff/campaigns/{campaign_id}/email.html?language=es")
    assert "recomiende Acme" in email.text and "Hola:" in email.text
    assert "frame-ancestors 'self'" in email.headers["Content-Security-Policy"]
    assert "script-src" not in email.headers["Content-Security-Policy"]
    assert email.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert marketer.get(f"/staff/campaigns/{campaign_id}/preview?language=de"
                        ).status_code == 404


def test_send_now_is_the_worker_s_job_and_pause_holds_it(marketer, db, settings):
    campaign_id = int(create(marketer).headers["Location"].rsplit("/", 1)[1])
    page = marketer.get(f"/staff/campaigns/{campaign_id}").text
    token = csrf_token(page)
    reply = marketer.post(f"/staff/campaigns/{campaign_id}/schedule",
                          data={"csrf_token": token, "action": "now"})
    assert reply.status_code == 303
    assert outbox(settings) == {}  # the web request sent nothing itself
    # Paused before the worker's round: nothing goes out.
    assert marketer.post(f"/staff/campaigns/{campaign_id}/pause",
                         data={"csrf_token": token}).status_code == 303
    worker = Worker(db, config_.load())
    worker.round()
    assert outbox(settings) == {}
    progress = marketer.get(f"/staff/campaigns/{campaign_id}/progress.json").json
    assert (progress["remaining"], progress["paused"], progress["status"]) == (4, True,
                                                                                "paused")
    marketer.post(f"/staff/campaigns/{campaign_id}/resume", data={"csrf_token": token})
    worker.round()
    assert len(outbox(settings)) == 4
    progress = marketer.get(f"/staff/campaigns/{campaign_id}/progress.json").json
    assert {k: progress[k] for k in ("sent", "failed", "remaining", "status")} == {
        "sent": 4, "failed": 0, "remaining": 0, "status": "sent"}
    # Sent: its content can no longer change.
    reply = marketer.post(f"/staff/campaigns/{campaign_id}/edit",
                          data={**FIELDS, "subject": "Changed", "csrf_token": token})
    assert reply.status_code == 400 and "has started sending" in reply.text


def test_schedules_from_the_browser(marketer, db):
    campaign_id = int(create(marketer).headers["Location"].rsplit("/", 1)[1])
    token = csrf_token(marketer.get(f"/staff/campaigns/{campaign_id}").text)
    url = f"/staff/campaigns/{campaign_id}/schedule"
    marketer.post(url, data={"csrf_token": token, "action": "at", "at": "2099-03-01T09:30"})
    assert db.execute("SELECT send_at FROM campaigns").fetchone()[0] == \
        "2099-03-01 09:30:00.000000"
    marketer.post(url, data={"csrf_token": token, "action": "at", "at": "2001-01-01T09:30"})
    assert "has passed" in marketer.get(f"/staff/campaigns/{campaign_id}").text
    marketer.post(url, data={"csrf_token": token, "action": "every", "every": "quarter"})
    assert db.execute("SELECT every FROM campaigns").fetchone()[0] == "quarter"
    marketer.post(url, data={"csrf_token": token, "action": "off"})
    assert tuple(db.execute("SELECT every, send_at FROM campaigns").fetchone()) == (None, None)
    assert marketer.post(url, data={"action": "now"}).status_code == 400  # no CSRF token
    assert marketer.post("/staff/campaigns/999/schedule",
                         data={"csrf_token": token, "action": "now"}).status_code == 404


def test_subjects_per_language_on_the_command_line_and_in_the_form(runner, marketer, db,
                                                                   settings):
    result = runner("campaign", "create", "--name", "Q2", "--subject", "A quick question",
                    "--subject-es", "Una pregunta", "--subject-sv", "En fråga",
                    "--sender", "Acme <nps@acme.test>", "--postal-address", "1 Main St")
    campaign_id = int(result.output.strip().splitlines()[-1])
    assert runner("campaign", "update", str(campaign_id), "--subject-fr",
                  "Une question").output == f"Campaign {campaign_id}: changed subject_fr\n"
    assert runner("campaign", "send", str(campaign_id)).exit_code == 0
    subjects = {address: msg["Subject"] for address, msg in outbox(settings).items()}
    assert subjects == {"ana@example.com": "Una pregunta", "bob@example.com": "A quick question",
                        "chloe@example.com": "Une question", "sven@example.com": "En fråga"}
    reply = create(marketer, name="Q3", subject_es="Otra pregunta")
    assert reply.status_code == 303
    assert db.execute("SELECT subject_es, subject_fr FROM campaigns WHERE name = 'Q3'"
                      ).fetchone()[:] == ("Otra pregunta", "")


def test_send_me_a_test_arrives_marked_and_counts_nothing(marketer, db, settings, client):
    campaign_id = int(create(marketer, subject_es="Una pregunta").headers["Location"]
                      .rsplit("/", 1)[1])
    token = csrf_token(marketer.get(f"/staff/campaigns/{campaign_id}").text)
    reply = marketer.post(f"/staff/campaigns/{campaign_id}/test",
                          data={"csrf_token": token, "language": "es"})
    assert reply.status_code == 303
    assert "A test in es went to marketer@acme.test" in marketer.get(
        f"/staff/campaigns/{campaign_id}").text
    test = outbox(settings)["marketer@acme.test"]
    assert test["Subject"] == "[Test] Una pregunta"
    assert db.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 0
    link = re.search(r"http://survey.test(/r/\S+/3)", test.get_body(("plain",)).get_content())
    page = client.get(link.group(1))
    assert page.status_code == 200 and "This was a test email" in page.text
    assert db.execute("SELECT count(*) FROM clicks").fetchone()[0] == 0
    assert marketer.post(f"/staff/campaigns/{campaign_id}/test",
                         data={"csrf_token": token, "language": "de"}).status_code == 400


def test_the_audience_count_answers_as_the_lines_are_typed(marketer, db):
    assert marketer.get("/staff/campaigns/audience.json").json == {"count": 4}
    assert marketer.get("/staff/campaigns/audience.json?segment=company%3DAcme").json == \
        {"count": 2}
    reply = marketer.get("/staff/campaigns/audience.json?segment=company%3DAcme%0Aplan%3Dpro")
    assert reply.json == {"count": 1}
    reply = marketer.get("/staff/campaigns/audience.json?segment=shoe_size%3D42")
    assert reply.status_code == 400
    assert reply.json["error"].startswith('no contact has the attribute "shoe_size"')
    assert 'id="audience-count"' in marketer.get("/staff/campaigns/new").text
