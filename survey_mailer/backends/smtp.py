"""The SMTP backend: the standard library's smtplib, one connection reused across messages.

Replies are classified per recipient: 5xx is permanent for that address (the delivery
fails, the campaign goes on); 4xx and dropped connections are retried a few times with
backoff. A connection that drops while the message itself is being transmitted leaves
its fate unknown (`FateUnknown`): the server may have accepted it, so it is not retried.
"""

from __future__ import annotations

import random
import smtplib
import ssl
import time
from collections.abc import Callable

from ..errors import DeliveryError, FateUnknown, SendingStopped
from . import Envelope

SECURITY = ("none", "starttls", "ssl")


class SMTPBackend:
    """Send through one SMTP server, reconnecting when the server drops the connection."""

    # One worker, one connection. Relays commonly cap concurrent connections per client
    # (and count parallel ones against reputation), a single connection on a LAN already
    # carries hundreds of messages a second, and one in flight bounds what a crash can
    # leave unknown to a single message. smtplib connections are not thread-safe, so more
    # workers would need one connection per thread; not worth it for these gains.
    concurrency = 1
    # The sender takes a rate slot for the first attempt and hands us its limiter
    # (`pace`) for the retries, so every attempt takes a slot.
    paced = True

    def __init__(self, host: str, port: int, *, security: str = "none",
                 username: str | None = None, password: str | None = None,
                 timeout: float = 30.0, attempts: int = 4, backoff: float = 0.5,
                 ssl_context: ssl.SSLContext | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        if security not in SECURITY:
            raise ValueError(f"security must be one of {', '.join(SECURITY)}")
        self.host, self.port = host, port
        self.security = security
        self.username, self.password = username, password
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        # The default context verifies the server's certificate and name (and honours
        # SSL_CERT_FILE, which is how the tests trust the certificate they made).
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.pace: Callable[[], None] = lambda: None
        self._sleep = sleep
        self._conn: smtplib.SMTP | None = None

    @classmethod
    def from_config(cls, config) -> SMTPBackend:
        """Build the backend from the SURVEY_SMTP_* settings."""
        return cls(config["SURVEY_SMTP_HOST"], config["SURVEY_SMTP_PORT"],
                   security=config["SURVEY_SMTP_SECURITY"],
                   username=config["SURVEY_SMTP_USERNAME"],
                   password=config["SURVEY_SMTP_PASSWORD"])

    def rate_limit(self) -> float | None:
        return None

    @property
    def where(self) -> str:
        return f"SMTP server {self.host}:{self.port}"

    def _open(self) -> smtplib.SMTP:
        if self.security == "ssl":
            conn = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                    context=self.ssl_context)
        else:
            conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            conn.ehlo()
            if self.security == "starttls":
                conn.starttls(context=self.ssl_context)
                conn.ehlo()
            if self.username:
                self._login(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect(self) -> smtplib.SMTP:
        try:
            return self._open()
        except smtplib.SMTPAuthenticationError as e:
            raise SendingStopped(
                f"{self.where} refused the login of {self.username!r} ({_reply(e)}): check "
                f"SURVEY_SMTP_USERNAME and SURVEY_SMTP_PASSWORD") from e
        except smtplib.SMTPNotSupportedError as e:
            raise SendingStopped(
                f"{self.where} does not support {_what(self.security, self.username)}: "
                f"check SURVEY_SMTP_SECURITY") from e
        except ssl.SSLError as e:
            raise SendingStopped(
                f"TLS with {self.where} failed ({e}): check SURVEY_SMTP_SECURITY and "
                f"SURVEY_SMTP_PORT") from e

    def _login(self, conn: smtplib.SMTP) -> None:
        if not conn.has_extn("auth"):
            raise smtplib.SMTPNotSupportedError("AUTH")
        if "PLAIN" in conn.esmtp_features["auth"].upper().split():
            # One mechanism: when PLAIN refuses the password, LOGIN will too, and
            # smtplib's fallback to LOGIN can stall on some servers after a refusal.
            conn.user, conn.password = self.username, self.password or ""
            conn.auth("PLAIN", conn.auth_plain)
        else:
            conn.login(self.username, self.password or "")

    def send(self, envelope: Envelope, message: bytes) -> str:
        """Hand the message to the server; return the server's reply to DATA."""
        last: Exception | None = None
        for attempt in range(self.attempts):
            if attempt:
                # Exponential backoff with full jitter, so retries do not march in step.
                self._sleep(random.uniform(0, self.backoff * 2 ** attempt))
                self.pace()  # the sender took the first attempt's slot
            try:
                return self._send_once(envelope, message)
            except _Retry as e:
                last = e.__cause__
        if _unreachable(last):
            raise SendingStopped(f"cannot reach {self.where}: {last}") from last
        raise DeliveryError(f"temporary failure after {self.attempts} attempts: "
                            f"{_reply(last)}") from last

    def _send_once(self, envelope: Envelope, message: bytes) -> str:
        try:
            if self._conn is None:
                self._conn = self._connect()
            conn = self._conn
            code, reply = conn.mail(envelope.sender)
            if code != 250:
                conn.rset()
                if code >= 500:
                    raise SendingStopped(f"{self.where} refused the sender "
                                         f"{envelope.sender}: {code} {_text(reply)}")
                raise _Retry from smtplib.SMTPSenderRefused(code, reply, envelope.sender)
            code, reply = conn.rcpt(envelope.recipient)
            if code not in (250, 251):
                conn.rset()
                if code >= 500:
                    raise DeliveryError(f"{code} {_text(reply)}", permanent=True)
                raise _Retry from smtplib.SMTPRecipientsRefused(
                    {envelope.recipient: (code, reply)})
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, OSError) as e:
            # Nothing was transmitted yet: reconnect and try again is safe.
            self._drop()
            raise _Retry from e
        try:
            code, reply = conn.data(message)
        except smtplib.SMTPDataError as e:
            if e.smtp_code >= 500:
                raise DeliveryError(f"{e.smtp_code} {_text(e.smtp_error)}",
                                    permanent=True) from e
            raise _Retry from e
        except (smtplib.SMTPServerDisconnected, OSError) as e:
            self._drop()
            raise FateUnknown(f"connection to {self.where} lost while sending: {e}") from e
        return _text(reply)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except OSError:
                pass

    def close(self) -> None:
        """Say QUIT politely; a connection already gone is fine."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            conn.close()


class _Retry(Exception):
    """Internal: a temporary failure; its cause says why."""


def _unreachable(error: BaseException | None) -> bool:
    # smtplib's own exceptions subclass OSError; only the connection-level ones count.
    if isinstance(error, smtplib.SMTPServerDisconnected | smtplib.SMTPConnectError):
        return True
    return isinstance(error, OSError) and not isinstance(error, smtplib.SMTPException)


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _reply(error: BaseException | None) -> str:
    code = getattr(error, "smtp_code", None)
    if code is not None:
        return f"{code} {_text(error.smtp_error)}"
    recipients = getattr(error, "recipients", None)
    if recipients:
        code, reply = next(iter(recipients.values()))
        return f"{code} {_text(reply)}"
    return str(error)


def _what(security: str, username: str | None) -> str:
    return "STARTTLS" if security == "starttls" else "AUTH" if username else security
