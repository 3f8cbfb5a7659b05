"""SMTP test servers: a real aiosmtpd on loopback that records, refuses and hangs up."""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from certs import self_signed, write_pair
from conftest import free_port, send_campaign

from survey_mailer.backends.smtp import SMTPBackend
from survey_mailer.sender import Sender

USER, PASSWORD = "nps", "s3cret-pass"


class Recorder:
    """An aiosmtpd handler that keeps every message and can refuse chosen recipients."""

    def __init__(self):
        self.messages: list[dict] = []
        self.rcpt_replies: dict[str, list[str]] = {}
        self.hang_up_after_data: set[str] = set()  # take the message, drop before replying
        self.delay = 0.0  # seconds each message waits before it is kept and answered

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        replies = self.rcpt_replies.get(address)
        if replies:
            return replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
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
