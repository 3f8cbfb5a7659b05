"""The SMTP backend against a real aiosmtpd server on loopback: plain, STARTTLS, SSL, login."""
# ruff: noqa: F811  (fixtures imported from smtpfixtures are parameters here)

from __future__ import annotations

import pytest
from conftest import free_port, send_campaign
from smtpfixtures import (  # noqa: F401 - fixtures used by name
    EMAILS,
    USER,
    campaign,
    send,
    smtp_server,
    statuses,
    tls_files,
)

from survey_mailer import db as db_
from survey_mailer.backends.smtp import SMTPBackend
from survey_mailer.sender import Sender


def test_plain_smtp_sends_each_contact_once_over_one_connection(
        smtp_server, runner, db, contacts_csv):
    server = smtp_server("none")
    result = runner("campaign", "send", campaign(runner, contacts_csv))
    assert result.output == "4 sent, 0 failed, 0 skipped, 0 left to send\n"
    messages = server.handler.messages
    assert sorted(m["to"][0] for m in messages) == EMAILS
    assert {m["from"] for m in messages} == {"nps@acme.test"}
    assert len({m["session"] for m in messages}) == 1  # one connection, reused
    first = messages[0]["message"]
    assert first["Subject"] == "A quick question"
    assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert set(statuses(db).values()) == {"sent"}


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_tls_and_login(smtp_server, runner, db, contacts_csv, mode):
    server = smtp_server(mode)
    result = runner("campaign", "send", campaign(runner, contacts_csv))
    assert result.output == "4 sent, 0 failed, 0 skipped, 0 left to send\n"
    messages = server.handler.messages
    assert sorted(m["to"][0] for m in messages) == EMAILS
    assert all(m["tls"] for m in messages)
    assert {m["login"] for m in messages} == {USER.encode()}


def test_wrong_password_stops_the_campaign_with_a_clear_message(
        smtp_server, runner, db, contacts_csv, monkeypatch):
    server = smtp_server("starttls")
    monkeypatch.setenv("SURVEY_SMTP_PASSWORD", "wrong")
    result = runner("campaign", "send", campaign(runner, contacts_csv))
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        f"Error: sending stopped: SMTP server 127.0.0.1:{server.port} refused the login of "
        f"'nps' (535 5.7.8 Authentication credentials invalid): check SURVEY_SMTP_USERNAME "
        f"and SURVEY_SMTP_PASSWORD")
    assert set(statuses(db).values()) == {"pending"}  # nothing lost: a later run sends
    assert server.handler.messages == []


def test_5xx_recipient_fails_alone_and_4xx_is_retried(
        smtp_server, runner, db, links, contacts_csv):
    server = smtp_server("none")
    server.handler.rcpt_replies = {
        "bob@example.com": ["550 5.1.1 no such user"],
        "chloe@example.com": ["451 4.3.0 try again later", "452 4.2.2 mailbox full"],
    }
    campaign_id = int(campaign(runner, contacts_csv))
    summary = send(db, links, server, campaign_id)
    assert (summary.sent, summary.failed, summary.deferred) == (3, 1, 0)
    assert sorted(m["to"][0] for m in server.handler.messages) == [
        "ana@example.com", "chloe@example.com", "sven@example.com"]
    row = db.execute("SELECT d.status, d.error FROM deliveries d JOIN contacts c "
                     "ON c.id = d.contact_id WHERE c.email = 'bob@example.com'").fetchone()
    assert tuple(row) == ("failed", "550 5.1.1 no such user")


def test_a_4xx_that_never_clears_is_deferred_to_the_next_run(
        smtp_server, runner, db, links, contacts_csv):
    server = smtp_server("none")
    server.handler.rcpt_replies = {"bob@example.com": ["450 4.2.1 busy"] * 4}
    campaign_id = int(campaign(runner, contacts_csv))
    summary = send(db, links, server, campaign_id)
    assert (summary.sent, summary.failed, summary.deferred, summary.remaining) == (3, 0, 1, 1)
    assert statuses(db)["bob@example.com"] == "pending"
    assert send(db, links, server, campaign_id).sent == 1  # the next run sends it
    assert sorted(m["to"][0] for m in server.handler.messages) == EMAILS


def test_unreachable_server_stops_the_campaign(runner, db, links, contacts_csv, settings):
    port = free_port()  # nothing listens there
    campaign_id = int(campaign(runner, contacts_csv))
    backend = SMTPBackend("127.0.0.1", port, sleep=lambda seconds: None)
    summary = send_campaign(db, Sender(db, backend), campaign_id)
    backend.close()
    assert summary.stopped.startswith(f"cannot reach SMTP server 127.0.0.1:{port}: ")
    assert summary.sent == 0
    assert set(statuses(db).values()) == {"pending"}
    with db_.write(db):
        pass  # the database is not left locked
