"""Helpers and fixtures shared by the staff workspace and notification tests."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import csrf_token

from landing import create_app
from survey_mailer import responses, users

EMAIL = "agent@acme.test"
PASSWORD = "correct horse battery"
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def staff_user(db) -> int:
    user_id, _ = users.add_user(db, EMAIL, PASSWORD)
    return user_id


def login(client, email=EMAIL, password=PASSWORD, next_=None):
    page = client.get("/staff/login")
    url = "/staff/login" + (f"?next={next_}" if next_ else "")
    return client.post(url, data={"csrf_token": csrf_token(page.text), "email": email,
                                  "password": password})


@pytest.fixture
def staff_client(client, staff_user):
    assert login(client).status_code == 302
    return client


@pytest.fixture
def marketer(db, contacts_csv, runner):
    """A logged-in client of a marketer, with the contacts imported (and an admin)."""
    assert runner("contacts", "import", str(contacts_csv)).exit_code == 0
    users.add_user(db, "admin@acme.test", PASSWORD)
    users.add_user(db, "marketer@acme.test", PASSWORD, "marketer")
    client = create_app({"TESTING": True, "RATELIMIT_ENABLED": False}).test_client()
    assert login(client, "marketer@acme.test").status_code == 302
    return client


def deliveries(db, campaign_id) -> dict[str, int]:
    """Return delivery ids by contact email."""
    return {r[0]: r[1] for r in db.execute(
        "SELECT c.email, d.id FROM deliveries d JOIN contacts c ON c.id = d.contact_id "
        "WHERE d.campaign_id = ?", [campaign_id])}


def answer(db, delivery_id: int, score: int, comment: str = "", **fields) -> int:
    """Save a landing-page answer (confirmed by a person); return the response id."""
    responses.save_answer(db, responses.delivery(db, delivery_id), score=score,
                          comment=comment, **fields)
    return db.execute("SELECT id FROM responses WHERE delivery_id = ?",
                      [delivery_id]).fetchone()[0]


def page_token(html: str) -> str:
    return csrf_token(html)


class Receiver:
    """A real HTTP server on loopback that records webhook POSTs; /fail answers 500."""

    def __init__(self):
        self.received: list[dict] = []
        self.failures_left = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append({"path": self.path, "headers": dict(self.headers),
                                          "body": body, "json": json.loads(body)})
                failing = self.path.startswith("/fail") and receiver.failures_left != 0
                if failing:
                    receiver.failures_left -= 1
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()
