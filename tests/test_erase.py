"""Erasure (SPEC 12): a person's data goes for good, their scores stay counted anonymously,
and no import or API request ever adds them back."""

from __future__ import annotations

import json

import pytest
from conftest import person_click, score_links
from staff_support import answer, deliveries, staff_user  # noqa: F401 (a fixture)

from survey_mailer import cases, humans, notify, testimonials
from survey_mailer import db as db_

UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) ErasureTestBrowser/1.0"


def dump(db) -> str:
    """Everything the database file holds, as SQL text."""
    humans.fold(db)
    return "\n".join(db.conn.iterdump())


def report(runner) -> dict:
    result = runner("report", "--format", "json", "--by", "company")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture
def ana_answered(db, sent_campaign, client, settings, staff_user, runner):  # noqa: F811
    """Ana clicked, wrote a testimonial staff approved, and has a case note and a survey
    of a second campaign waiting to be sent."""
    from conftest import outbox

    person_click(client, score_links(outbox(settings)["ana@example.com"])[10], ua=UA)
    ids = deliveries(db, sent_campaign)
    response_id = answer(db, ids["ana@example.com"], 10, "Ana García loves the export",
                         display_name="Ana G.", testimonial_consent=True)
    testimonials.moderate(db, response_id, by=staff_user, action="approve",
                          display_name="Ana G.")
    cases.update_case(db, response_id, by=staff_user, status="contacted", assignee_id=None,
                      note="Called Ana García on her mobile")
    created = runner("campaign", "create", "--name", "Renewal", "--subject", "Quick one",
                     "--sender", "Acme <nps@acme.test>", "--postal-address", "1 Main St")
    later = int(created.output.strip().splitlines()[-1])
    with db_.write(db) as conn:
        conn.execute("INSERT INTO deliveries (campaign_id, contact_id, status, created_at,"
                     " due_at) SELECT ?, id, 'pending', '2026-01-01', '2099-01-01'"
                     " FROM contacts WHERE email = 'ana@example.com'", [later])
    return response_id


def test_erase_removes_the_person_and_keeps_the_score(db, runner, ana_answered):
    before = report(runner)
    assert "ana@example.com" in dump(db)
    result = runner("contacts", "erase", "ana@example.com")
    assert result.exit_code == 0, result.output
    assert result.output == ("ana@example.com is erased: 1 responses kept without personal "
                             "data, 1 unsent surveys cancelled; the address is never "
                             "imported again\n")
    text = dump(db).lower()
    for trace in ("ana@example.com", "garcía", "ana g.", "loves the export", "her mobile",
                  "erasuretestbrowser"):
        assert trace not in text, trace
    # The score still counts, in the NPS and in its company.
    after = report(runner)
    assert (after["nps"], after["responses"]) == (before["nps"], before["responses"])
    assert [g for g in after["groups"] if g["key"] == "Acme"] == \
        [g for g in before["groups"] if g["key"] == "Acme"]
    row = db.execute("SELECT email, name, company, attributes FROM contacts"
                     " WHERE erased_at IS NOT NULL").fetchone()
    assert (row["email"].startswith("erased:"), row["name"], row["company"],
            row["attributes"]) == (True, "", "Acme", "{}")
    assert testimonials.published(db) == []
    assert db.execute("SELECT status, error FROM deliveries WHERE due_at = '2099-01-01'"
                      ).fetchone()[:] == ("skipped", "cancelled")
    # Alerts about her not yet sent are not sent.
    assert db.execute("SELECT count(*) FROM notifications WHERE response_id = ? AND status"
                      " NOT IN ('sent', 'failed')", [ana_answered]).fetchone()[0] == 0


def test_an_erased_address_is_never_imported_again(db, runner, ana_answered, tmp_path):
    assert runner("contacts", "erase", "ana@example.com").exit_code == 0
    again = tmp_path / "crm-export.csv"
    again.write_text("email,name\nANA@example.com,Ana García\nnew@example.com,New Person\n")
    result = runner("contacts", "import", str(again))
    assert result.exit_code == 0, result.output
    assert result.output == "1 added, 0 updated, 1 skipped: erased\n"
    assert "ana@example.com" not in dump(db).lower()


def test_an_erased_address_gets_409_from_the_api(db, runner, ana_answered, client,
                                                 sent_campaign):
    assert runner("contacts", "erase", "ana@example.com").exit_code == 0
    key = runner("api-key", "create", "--name", "crm").output.strip().splitlines()[-1]
    reply = client.post("/api/v1/surveys", json={"email": "Ana@Example.com",
                                                 "campaign": sent_campaign},
                        headers={"Authorization": f"Bearer {key}"})
    assert reply.status_code == 409
    assert reply.json["reason"] == "erased"
    assert "ana@example.com" not in dump(db).lower()


def test_erase_on_the_command_line(db, runner, ana_answered):
    result = runner("contacts", "erase", "nobody@example.com")
    assert result.exit_code == 1
    assert result.output == 'Error: contact "nobody@example.com" does not exist\n'
    assert runner("contacts", "erase", "ana@example.com").exit_code == 0
    result = runner("contacts", "erase", "ana@example.com")
    assert (result.exit_code, result.output) == (0, "ana@example.com was already erased\n")
    listed = runner("contacts", "list").output
    assert "\terased" in listed and "ana@" not in listed


def test_a_queued_alert_about_an_erased_person_is_never_sent(db, runner, sent_campaign,
                                                             monkeypatch):
    from survey_mailer import config as config_

    monkeypatch.setenv("SURVEY_WEBHOOK_URLS", "http://127.0.0.1:9/hook")
    response_id = answer(db, deliveries(db, sent_campaign)["bob@example.com"], 2,
                         "Bob Smith is furious")
    assert notify.queue_response(db, config_.load(), response_id) == 1
    assert "furious" in dump(db).lower()
    assert runner("contacts", "erase", "bob@example.com").exit_code == 0
    assert db.execute("SELECT count(*) FROM notifications").fetchone()[0] == 0
    text = dump(db).lower()
    assert "furious" not in text and "bob@example.com" not in text and "smith" not in text


def test_a_reply_from_a_case_keeps_no_address_after_erase(db, runner, sent_campaign,
                                                          staff_user, monkeypatch):  # noqa: F811
    """A reply to a detractor holds their address as its target and may hold it in a relay
    error: both go with the erase."""
    from survey_mailer import config as config_
    from survey_mailer import loop

    monkeypatch.setenv("SURVEY_SUPPORT_EMAIL", "support@acme.test")
    response_id = answer(db, deliveries(db, sent_campaign)["bob@example.com"], 2,
                         "Bob Smith is furious")
    loop.queue_reply(db, config_.load(), response_id, by=staff_user, subject="Sorry Bob",
                     body="We are fixing the export")
    with db_.write(db) as conn:  # as if the relay had refused it, naming his address
        conn.execute("UPDATE notifications SET status = 'failed', last_error ="
                     " '550 <bob@example.com>: mailbox full' WHERE event_key LIKE 'reply/%'")
    assert "bob@example.com" in dump(db).lower()
    assert runner("contacts", "erase", "bob@example.com").exit_code == 0
    text = dump(db).lower()
    assert "bob@example.com" not in text and "fixing the export" not in text
    row = db.execute("SELECT target, last_error FROM notifications"
                     " WHERE event_key LIKE 'reply/%'").fetchone()
    assert row[:] == ("", None)
