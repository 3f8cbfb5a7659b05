"""Replies from a case (SPEC 13): through a real aiosmtpd server and through the outbox."""
# ruff: noqa: F811  (fixtures imported from staff_support are parameters here)

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from conftest import csrf_token, free_port
from staff_support import EMAIL, answer, deliveries, staff_client, staff_user  # noqa: F401

from survey_mailer import config as config_
from survey_mailer import notify

SUPPORT = "Acme Support <support@acme.test>"


class Recorder:
    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content,
                                                      policy=email.policy.default))
        return "250 2.0.0 queued"


@pytest.fixture
def smtp(settings, monkeypatch):
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    monkeypatch.setenv("SURVEY_MAIL_BACKEND", "smtp")
    monkeypatch.setenv("SURVEY_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SURVEY_SMTP_PORT", str(controller.port))
    monkeypatch.setenv("SURVEY_SUPPORT_EMAIL", SUPPORT)
    yield recorder
    controller.stop()


def reply(client, response_id: int, subject: str, message: str, button: str = "resolve"):
    page = client.get(f"/staff/followups/{response_id}")
    return client.post(f"/staff/followups/{response_id}/reply",
                       data={"csrf_token": csrf_token(page.text), "subject": subject,
                             "message": message, button: "x"})


def test_a_reply_reaches_smtp_threaded_to_the_survey_email(smtp, sent_campaign, db,
                                                            staff_client):
    [survey] = [m for m in smtp.messages if m["To"].addresses[0].addr_spec ==
                "ana@example.com"]
    ana = answer(db, deliveries(db, sent_campaign)["ana@example.com"], 2, "Too slow")
    answered = reply(staff_client, ana, "About your feedback", "We fixed the slowness.\n"
                     "Thank you, Ana.")
    assert answered.status_code == 303
    notify.dispatch(db, config_.load())  # what the worker's round does
    [sent] = [m for m in smtp.messages if m["Subject"] == "About your feedback"]
    assert sent["To"].addresses[0].addr_spec == "ana@example.com"
    assert sent["To"].addresses[0].display_name == "Ana García"
    assert sent["From"].addresses[0].addr_spec == "support@acme.test"
    assert sent["Reply-To"].addresses[0].addr_spec == EMAIL
    assert survey["Message-ID"].startswith("<survey.")
    assert sent["In-Reply-To"] == survey["Message-ID"]
    assert sent["References"] == survey["Message-ID"]
    assert sent["Message-ID"] != survey["Message-ID"]
    assert sent.get_content().replace("\r\n", "\n") == (
        "We fixed the slowness.\nThank you, Ana.\n")
    assert "Auto-Submitted" not in sent
    page = staff_client.get(f"/staff/followups/{ana}").text
    assert "Reply to ana@example.com: About your feedback" in page
    assert 'class="status reply-sent">sent</span>' in page
    assert '<span class="status resolved">resolved</span>' in page
    # Sent once: another dispatch sends nothing more.
    notify.dispatch(db, config_.load())
    assert len([m for m in smtp.messages if m["Subject"] == "About your feedback"]) == 1


def test_a_reply_through_the_outbox_is_queued_then_sent(settings, monkeypatch, sent_campaign,
                                                         db, staff_client):
    monkeypatch.setenv("SURVEY_SUPPORT_EMAIL", "support@acme.test")
    staff_client.application.extensions["survey"]["SURVEY_SUPPORT_EMAIL"] = "support@acme.test"
    ana = answer(db, deliveries(db, sent_campaign)["ana@example.com"], 4, "Meh")
    # Queued: the note says so until a dispatch sends it.
    db.execute("UPDATE notifications SET next_attempt_at = '9999'")  # old alerts wait
    db.conn.commit()
    assert reply(staff_client, ana, "Thanks", "We hear you.", button="send").status_code == 303
    page = staff_client.get(f"/staff/followups/{ana}").text
    assert "status reply-" in page
    assert '<span class="status new">new</span>' in page  # "Send" alone does not resolve
    notify.dispatch(db, config_.load())
    [path] = Path(settings["SURVEY_OUTBOX_DIR"]).glob("reply-n*.eml")
    sent = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert sent["Subject"] == "Thanks"
    assert sent["In-Reply-To"].startswith(f"<survey.{sent_campaign}.")
    assert sent["In-Reply-To"].endswith("@acme.test>")
    assert sent["Reply-To"].addresses[0].addr_spec == EMAIL
    assert 'class="status reply-sent">sent</span>' in staff_client.get(
        f"/staff/followups/{ana}").text


def test_without_a_support_address_the_form_is_disabled(sent_campaign, db, staff_client):
    ana = answer(db, deliveries(db, sent_campaign)["ana@example.com"], 1, "No")
    page = staff_client.get(f"/staff/followups/{ana}").text
    assert "Replying from here needs SURVEY_SUPPORT_EMAIL" in page
    assert "<fieldset disabled" in page
    answered = reply(staff_client, ana, "Hi", "Text")
    assert answered.status_code == 303
    page = staff_client.get(f"/staff/followups/{ana}").text
    assert ("Not sent: replies need SURVEY_SUPPORT_EMAIL, the address they come from."
            in page)
    assert db.execute("SELECT count(*) FROM case_notes").fetchone()[0] == 0


def test_a_reply_needs_a_subject_and_a_message(smtp, sent_campaign, db, staff_client):
    ana = answer(db, deliveries(db, sent_campaign)["ana@example.com"], 1, "No")
    answered = reply(staff_client, ana, "", "")
    assert answered.status_code == 400
    assert "Subject: This field is required." in answered.text
    assert db.execute("SELECT count(*) FROM case_notes").fetchone()[0] == 0


def test_the_case_page_shows_the_contacts_whole_history(sent_campaign, db, staff_client,
                                                        runner):
    ana = answer(db, deliveries(db, sent_campaign)["ana@example.com"], 3, "First time")
    page = staff_client.get(f"/staff/followups/{ana}").text
    assert "Everything from Ana García" in page
    assert "First time" in page
    assert "(this one)" in page


def test_overdue_cases_are_marked_in_the_queue(sent_campaign, db, staff_client, monkeypatch):
    ana = answer(db, deliveries(db, sent_campaign)["ana@example.com"], 1, "No")
    assert 'status overdue' not in staff_client.get("/staff/followups").text  # 48 h
    staff_client.application.extensions["survey"]["SURVEY_CASE_SLA_HOURS"] = 0
    queue = staff_client.get("/staff/followups").text
    assert '<span class="status overdue">overdue</span>' in queue
    only = staff_client.get("/staff/followups?status=overdue").text
    assert f"/staff/followups/{ana}" in only


def test_after_a_reminder_the_reply_answers_the_reminder(settings, monkeypatch, sent_campaign,
                                                        db, staff_client, runner):
    monkeypatch.setenv("SURVEY_SUPPORT_EMAIL", "support@acme.test")
    staff_client.application.extensions["survey"]["SURVEY_SUPPORT_EMAIL"] = "support@acme.test"
    assert runner("campaign", "remind", str(sent_campaign), "--after-days", "0").exit_code == 0
    [reminder] = [m for m in (email.message_from_bytes(p.read_bytes(),
                                                       policy=email.policy.default)
                              for p in Path(settings["SURVEY_OUTBOX_DIR"]).glob("*.eml"))
                  if m["To"].addresses[0].addr_spec == "ana@example.com"
                  and m["Subject"].startswith("Recordatorio")]
    ana = answer(db, deliveries(db, sent_campaign)["ana@example.com"], 4, "Meh")
    reply(staff_client, ana, "Thanks", "We hear you.", button="send")
    notify.dispatch(db, config_.load())
    [path] = Path(settings["SURVEY_OUTBOX_DIR"]).glob("reply-n*.eml")
    sent = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    survey_id = f"<survey.{sent_campaign}.{deliveries(db, sent_campaign)['ana@example.com']}"
    assert sent["In-Reply-To"] == reminder["Message-ID"]
    assert sent["References"] == f"{survey_id}@acme.test> {reminder['Message-ID']}"
