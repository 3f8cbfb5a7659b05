"""The SMTP backend against a real aiosmtpd server on loopback: plain, STARTTLS, SSL, login."""

from __future__ import annotations

import email
import email.policy
import ssl

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from certs import self_signed, write_pair
from conftest import free_port, send_campaign

from survey_mailer import db as db_
from survey_mailer.backends.smtp import SMTPBackend
from survey_mailer.sender import Sender

USER, PASSWORD = "nps", "s3cret-pass"


class Recorder:
    """An aiosmtpd handler that keeps every message and can refuse chosen recipients."""

    def __init__(self):
        self.messages: list[dict] = []
        self.rcpt_replies: dict[str, list[str]] = {}
        self.hang_up_after_data: set[str] = set()  # take the message, drop before replying

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        replies = self.rcpt_replies.get(address)
        if replies:
            return replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.hang_up_after_data & set(envelope.rcpt_tos):
            self.hang_up_after_data -= set(envelope.rcpt_tos)
            self.messages.append({"to": list(envelope.rcpt_tos), "hung_up": True})
            server.transport.close()  # the message arrived; its reply never leaves
            return "250 2.0.0 queued"
        self.messages.append({
            "from": envelope.mail_from, "to": list(envelope.rcpt_tos),
            "message": email.message_from_bytes(envelope.content, policy=email.policy.default),
            "session": id(session),
            "tls": (session.ssl or server.transport.get_extra_info("ssl_object")) is not None,
            "login": session.auth_data if session.authenticated else None,
        })
        return "250 2.0.0 queued"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False, auth_data=auth_data.login)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("smtp-tls")
    return write_pair(directory, *self_signed("localhost", ip="127.0.0.1"))


class Server:
    """Start and stop aiosmtpd on one port (a restart drops every open connection)."""

    def __init__(self, tls_files, mode: str):
        self.handler = Recorder()
        self.port = free_port()
        self.mode = mode
        self.tls_files = tls_files
        self.controller = None

    def _context(self):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*map(str, self.tls_files))
        return context

    def start(self):
        kwargs = {}
        if self.mode == "starttls":
            kwargs = dict(tls_context=self._context(), require_starttls=True,
                          authenticator=authenticator, auth_required=True)
        elif self.mode == "ssl":
            # aiosmtpd does not see implicit TLS as TLS, so it may not insist on it.
            kwargs = dict(ssl_context=self._context(), authenticator=authenticator,
                          auth_require_tls=False)
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     **kwargs)
        self.controller.start()

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp_server(tls_files, monkeypatch, settings):
    servers = []

    def start(mode: str = "none") -> Server:
        server = Server(tls_files, mode)
        server.start()
        servers.append(server)
        monkeypatch.setenv("SURVEY_MAIL_BACKEND", "smtp")
        monkeypatch.setenv("SURVEY_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("SURVEY_SMTP_PORT", str(server.port))
        monkeypatch.setenv("SURVEY_SMTP_SECURITY", mode)
        # The default SSL context trusts SSL_CERT_FILE: the certificate made for the test.
        monkeypatch.setenv("SSL_CERT_FILE", str(tls_files[0]))
        if mode != "none":
            monkeypatch.setenv("SURVEY_SMTP_USERNAME", USER)
            monkeypatch.setenv("SURVEY_SMTP_PASSWORD", PASSWORD)
        return server

    yield start
    for server in servers:
        server.stop()


def campaign(runner, contacts_csv) -> str:
    assert runner("contacts", "import", str(contacts_csv)).exit_code == 0
    result = runner("campaign", "create", "--name", "Q4", "--subject", "A quick question",
                    "--sender", "Acme <nps@acme.test>")
    return result.output.splitlines()[-1]


def statuses(db) -> dict[str, str]:
    return dict(db.execute("SELECT c.email, d.status FROM deliveries d JOIN contacts c "
                           "ON c.id = d.contact_id").fetchall())


EMAILS = ["ana@example.com", "bob@example.com", "chloe@example.com", "sven@example.com"]


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


def sender(db, links, server) -> Sender:
    backend = SMTPBackend("127.0.0.1", server.port, sleep=lambda seconds: None)
    return Sender(db, backend, concurrency=backend.concurrency)


def send(db, links, server, campaign_id):
    """Run one send and close the connection, as the command does."""
    the_sender = sender(db, links, server)
    try:
        return send_campaign(db, the_sender, campaign_id)
    finally:
        the_sender.backend.close()


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
