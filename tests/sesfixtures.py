"""SES test servers: moto's server mode as the endpoint, and a fault-injecting proxy before it."""

from __future__ import annotations

import http.client
import http.server
import json
import threading
import time
import urllib.request

import boto3
import pytest
from conftest import free_port
from moto.server import ThreadedMotoServer

SENDER = "nps@acme.test"
ACCOUNT, REGION = "123456789012", "us-east-1"
SEND_PATH = "/v2/email/outbound-emails"


def moto_sent() -> list:
    """Return the raw messages moto's SES has accepted (moto runs in this process)."""
    from moto.ses.models import ses_backends

    return list(ses_backends[ACCOUNT][REGION].sent_messages)


def sent_recipients() -> list[str]:
    return sorted(d for m in moto_sent() for d in m.destinations[:1])


@pytest.fixture(scope="session")
def moto_server():
    """moto's SES endpoint on a loopback port for the whole session."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def ses_env(moto_server, monkeypatch, settings):
    """Point boto3 (ours and the tests') at moto, with a fresh state and a verified sender."""
    urllib.request.urlopen(urllib.request.Request(
        moto_server + "/moto-api/reset", method="POST"), timeout=10).close()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    values = {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION, "AWS_ENDPOINT_URL_SESV2": moto_server,
        "AWS_ENDPOINT_URL_SES": moto_server, "SURVEY_MAIL_BACKEND": "ses",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    ses = boto3.client("ses", region_name=REGION)
    ses.verify_email_identity(EmailAddress=SENDER)
    ses.close()
    return values


class FaultProxy:
    """An HTTP proxy before moto that answers throttling or 5xx to chosen SendEmail calls.

    `fault(n)` gets the 0-based number of each SendEmail request and returns None (pass it
    to moto), (status, error type, message), or "drop" (close the connection unanswered).
    Every SendEmail request's arrival time is kept, and the bodies passed on.
    """

    def __init__(self, upstream: str, fault=lambda n: None):
        self.upstream = upstream.removeprefix("http://")
        self.fault = fault
        self.arrivals: list[float] = []
        self.forwarded: list[dict] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self._relay()

            def do_POST(self):
                self._relay()

            def _relay(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                answer = None
                if self.path.startswith(SEND_PATH):
                    with proxy.lock:
                        proxy.arrivals.append(time.monotonic())
                        answer = proxy.fault(len(proxy.arrivals) - 1)
                        if answer is None:
                            proxy.forwarded.append(json.loads(body))
                if answer == "drop":  # read the request, close without an answer
                    self.close_connection = True
                    return
                if answer is not None:
                    status, kind, message = answer
                    data = json.dumps({"message": message}).encode()
                    self.send_response(status)
                    self.send_header("x-amzn-ErrorType", kind)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                conn = http.client.HTTPConnection(proxy.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                conn.close()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("content-length", "connection",
                                           "transfer-encoding", "server", "date"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def max_in_any_window(times: list[float], window: float = 1.0) -> int:
    """Return the most events in any half-open window [t, t + window) starting at an event."""
    times = sorted(times)
    best, j = 0, 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + window:
            j += 1
        best = max(best, j - i)
    return best
