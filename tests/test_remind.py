"""`campaign remind ID --after-days N`: one reminder to those without a counted response."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest
from conftest import outbox, score_links, show
from itsdangerous import timed

from survey_mailer import clock
from survey_mailer import db as db_


@pytest.fixture(autouse=True)
def signing_second(monkeypatch):
    # A token carries the second it was signed in: hold that second, so the survey and its
    # reminder carry the same links even when a second boundary falls between them.
    second = int(timed.time.time())
    monkeypatch.setattr(timed.time, "time", lambda: second)


def backdate(db, days: int) -> None:
    with db_.write(db) as conn:
        conn.execute("UPDATE deliveries SET sent_at = datetime(sent_at, ?)", [f"-{days} days"])


def respond(db, address: str, *, confirmed: int, automated: int, seen: int = 1) -> None:
    with db_.write(db) as conn:
        conn.execute(
            "INSERT INTO responses (delivery_id, campaign_id, contact_id, score, confirmed, "
            "automated, seen, created_at, responded_at) SELECT d.id, d.campaign_id, "
            "d.contact_id, 9, ?, ?, ?, ?, ? FROM deliveries d JOIN contacts c "
            "ON c.id = d.contact_id WHERE c.email = ?",
            [confirmed, automated, seen, clock.now(), clock.now(), address])


def reminders(settings) -> dict[str, email.message.EmailMessage]:
    found = {}
    for path in Path(settings["SURVEY_OUTBOX_DIR"]).glob("*-r1.eml"):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        found[msg["To"].addresses[0].addr_spec] = (path.name, msg)
    return found


def test_not_due_before_n_days(runner, db, settings, sent_campaign):
    result = runner("campaign", "remind", str(sent_campaign), "--after-days", "3")
    assert result.output == "Reminders: 0 sent, 0 failed, 0 skipped, 0 left to send\n"
    assert reminders(settings) == {}


def test_one_reminder_to_those_without_a_counted_response(runner, db, settings,
                                                          sent_campaign):
    originals = outbox(settings)
    backdate(db, 4)
    respond(db, "ana@example.com", confirmed=1, automated=0)  # counted: no reminder
    respond(db, "bob@example.com", confirmed=0, automated=1)  # a scanner's click: reminded
    result = runner("campaign", "remind", str(sent_campaign), "--after-days", "3")
    assert result.output == "Reminders: 3 sent, 0 failed, 0 skipped, 0 left to send\n"
    sent = reminders(settings)
    assert sorted(sent) == ["bob@example.com", "chloe@example.com", "sven@example.com"]
    name, bob = sent["bob@example.com"]
    delivery_id = db.execute("SELECT d.id FROM deliveries d JOIN contacts c "
                             "ON c.id = d.contact_id WHERE c.email = 'bob@example.com'"
                             ).fetchone()[0]
    assert name == f"c{sent_campaign}-d{delivery_id}-r1.eml"
    assert bob["Subject"] == "Reminder: A quick question"
    assert sent["chloe@example.com"][1]["Subject"] == "Rappel : A quick question"
    assert sent["sven@example.com"][1]["Subject"] == "Påminnelse: A quick question"
    # The same links as the survey itself, so an answer counts for the campaign,
    assert score_links(bob) == score_links(originals["bob@example.com"])
    # but its own Message-ID, or mail clients would drop it as a duplicate.
    assert bob["Message-ID"] != originals["bob@example.com"]["Message-ID"]
    again = runner("campaign", "remind", str(sent_campaign), "--after-days", "0")
    assert again.output == "Reminders: 0 sent, 0 failed, 0 skipped, 0 left to send\n"
    assert len(reminders(settings)) == 3


def test_a_person_who_clicked_is_not_reminded_and_a_bare_fetch_is(runner, db, settings,
                                                                   sent_campaign, client):
    backdate(db, 4)
    for address in ("ana@example.com", "bob@example.com"):
        link = score_links(outbox(settings)[address])[9]
        reply = client.get(link, headers={"User-Agent": "Mozilla/5.0"})
        assert reply.status_code == 303
    assert db.execute("SELECT count(*) FROM responses").fetchone()[0] == 0  # only logged
    # Ana's browser showed the page; bob's link was only fetched (a scanner, a preview).
    ana_token = score_links(outbox(settings)["ana@example.com"])[9].split("/")[2]
    show(client, f"/testimonial/{ana_token}", ua="Mozilla/5.0")
    result = runner("campaign", "remind", str(sent_campaign), "--after-days", "3")
    assert result.output == "Reminders: 3 sent, 0 failed, 0 skipped, 0 left to send\n"
    assert "ana@example.com" not in reminders(settings)
    assert "bob@example.com" in reminders(settings)


def test_strict_policy_reminds_unconfirmed_responses(runner, db, settings, sent_campaign,
                                                     monkeypatch):
    backdate(db, 4)
    respond(db, "ana@example.com", confirmed=0, automated=0)  # counts only when balanced
    monkeypatch.setenv("SURVEY_SCORE_POLICY", "strict")
    result = runner("campaign", "remind", str(sent_campaign), "--after-days", "3")
    assert result.output.startswith("Reminders: 4 sent,")


def test_dry_run_and_unsubscribed(runner, db, settings, sent_campaign):
    backdate(db, 4)
    runner("contacts", "unsubscribe", "sven@example.com")
    result = runner("campaign", "remind", str(sent_campaign), "--after-days", "3",
                    "--dry-run")
    assert result.output == "Dry run: 3 would be sent\n"
    assert reminders(settings) == {}
    result = runner("campaign", "remind", str(sent_campaign), "--after-days", "3")
    assert result.output == "Reminders: 3 sent, 0 failed, 0 skipped, 0 left to send\n"
    assert "sven@example.com" not in reminders(settings)


def test_answer_after_planning_skips_the_reminder(runner, db, settings, sent_campaign):
    backdate(db, 4)
    runner("campaign", "remind", str(sent_campaign), "--after-days", "3", "--limit", "1")
    respond(db, "chloe@example.com", confirmed=1, automated=0)
    result = runner("campaign", "remind", str(sent_campaign), "--after-days", "3")
    assert result.output == "Reminders: 2 sent, 0 failed, 1 skipped, 0 left to send\n"
    assert "chloe@example.com" not in reminders(settings)


def test_unknown_reminder_is_listed_then_resent_without_duplicate(runner, db, settings,
                                                                  sent_campaign):
    backdate(db, 4)
    runner("campaign", "remind", str(sent_campaign), "--after-days", "3", "--limit", "2")
    with db_.write(db) as conn:  # a crash mid-hand-off
        conn.execute("UPDATE reminders SET status = 'sending' WHERE id = 2")
    email_of_2 = db.execute("SELECT c.email FROM reminders m JOIN deliveries d ON "
                            "d.id = m.delivery_id JOIN contacts c ON c.id = d.contact_id "
                            "WHERE m.id = 2").fetchone()[0]
    result = runner("campaign", "remind", str(sent_campaign), "--after-days", "3")
    assert result.output.splitlines() == [
        "Reminders: 2 sent, 0 failed, 0 skipped, 0 left to send",
        "1 with unknown fate (interrupted mid-send; not resent, use --retry-unknown to "
        "resend):",
        f"  {email_of_2}",
    ]
    result = runner("campaign", "remind", str(sent_campaign), "--after-days", "3",
                    "--retry-unknown")
    assert result.output == "Reminders: 1 sent, 0 failed, 0 skipped, 0 left to send\n"
    assert len(reminders(settings)) == 4  # one file per reminder, never two


def test_unknown_campaign(runner, db):
    result = runner("campaign", "remind", "99", "--after-days", "3")
    assert result.exit_code == 1
    assert result.output == 'Error: campaign "99" does not exist\n'


def test_zero_days_includes_what_was_sent_this_very_second(runner, db, settings, contacts_csv):
    """--after-days 0 reminds every unanswered delivery, even one sent a microsecond ago."""
    from datetime import UTC, datetime

    moment = datetime(2026, 12, 3, 9, 30, 15, 500000, tzinfo=UTC)
    with clock.frozen(moment):  # the send and the reminder within the same second
        runner("contacts", "import", str(contacts_csv))
        runner("campaign", "create", "--name", "Q", "--subject", "S", "--sender",
               "nps@acme.test")
        assert runner("campaign", "send", "1").exit_code == 0
        result = runner("campaign", "remind", "1", "--after-days", "0")
    assert result.output == "Reminders: 4 sent, 0 failed, 0 skipped, 0 left to send\n"
