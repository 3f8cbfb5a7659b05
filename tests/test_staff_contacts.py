"""/staff/contacts for marketers: upload, search, a contact's history, unsubscribe, erase."""

from __future__ import annotations

import io

import pytest
from conftest import csrf_token
from staff_support import PASSWORD, XSS, answer, deliveries, login

from landing import create_app
from survey_mailer import users

MARKETER = "marketer@acme.test"


@pytest.fixture
def marketer(db):
    users.add_user(db, "admin@acme.test", PASSWORD)  # the first account, an admin
    users.add_user(db, MARKETER, PASSWORD, "marketer")
    client = create_app({"TESTING": True, "RATELIMIT_ENABLED": False}).test_client()
    assert login(client, MARKETER).status_code == 302
    return client


def upload(client, text: bytes | str, name: str = "contacts.csv"):
    token = csrf_token(client.get("/staff/contacts").text)
    data = text.encode("utf-8") if isinstance(text, str) else text
    return client.post("/staff/contacts", data={"csrf_token": token,
                                                "file": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def count(db) -> int:
    return db.execute("SELECT count(*) FROM contacts").fetchone()[0]


def test_an_upload_with_bad_rows_lists_each_and_imports_nothing(marketer, db):
    reply = upload(marketer, "email,name,plan\nana@example.com,Ana,pro\nnot-an-address,X,\n"
                             "bob@example.com,Bob,free\nana@example.com,Again,\n")
    assert reply.status_code == 400
    assert "2 problems: nothing was imported." in reply.text
    assert "<li>line 3: &#34;not-an-address&#34; is not a valid email address</li>" in \
        reply.text
    assert "<li>line 5: &#34;ana@example.com&#34; already appears on line 2</li>" in reply.text
    assert count(db) == 0
    reply = upload(marketer, "email,name,plan\nana@example.com,Ana,pro\n"
                             "bob@example.com,Bob,free\n")
    assert reply.status_code == 303
    page = marketer.get("/staff/contacts").text
    assert "Imported contacts.csv: 2 added, 0 updated." in page
    assert count(db) == 2


@pytest.mark.parametrize("data, message", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "line 1:"),
    (b"", "line 1: the file is empty"),
])
def test_an_upload_that_is_no_csv_gets_a_clear_answer(marketer, db, data, message):
    reply = upload(marketer, data, "logo.png")
    assert reply.status_code == 400
    assert message in reply.text
    assert count(db) == 0


def test_an_upload_without_a_file_or_too_large(marketer, db):
    token = csrf_token(marketer.get("/staff/contacts").text)
    reply = marketer.post("/staff/contacts", data={"csrf_token": token},
                          content_type="multipart/form-data")
    assert reply.status_code == 400 and "Choose a CSV file to upload." in reply.text
    big = b"a" * (21 * 1024 * 1024)  # refused on its length, before it is read
    reply = marketer.post("/staff/contacts", input_stream=io.BytesIO(big),
                          content_length=len(big),
                          content_type="multipart/form-data; boundary=x")
    assert reply.status_code == 413
    assert "That is too much text" in reply.text


def test_search_filters_and_paging(marketer, db):
    rows = "".join(f"p{i:03}@example.com,Person {i},{'Acme' if i % 2 else 'Globex'},"
                   f"{'pro' if i % 3 == 0 else 'free'}\n" for i in range(120))
    assert upload(marketer, "email,name,company,plan\n" + rows).status_code == 303
    page = marketer.get("/staff/contacts").text
    assert "120 found" in page and page.count('href="/staff/contacts/') == 50
    assert "Older →" in page
    last = marketer.get("/staff/contacts?page=3").text
    assert last.count('href="/staff/contacts/') == 20 and "Older →" not in last
    assert "60 found" in marketer.get("/staff/contacts?q=acme").text
    assert "40 found" in marketer.get("/staff/contacts?attribute=plan&value=pro").text
    assert "1 found" in marketer.get("/staff/contacts?q=p007@").text
    assert "0 found" in marketer.get("/staff/contacts?q=%25").text  # LIKE's % is text
    assert "120 found" in marketer.get("/staff/contacts?status=subscribed").text


def test_the_contact_page_unsubscribe_and_erase(marketer, db, sent_campaign, runner):
    ids = deliveries(db, sent_campaign)
    answer(db, ids["bob@example.com"], 3, XSS)
    bob = db.execute("SELECT id FROM contacts WHERE email = 'bob@example.com'").fetchone()[0]
    page = marketer.get(f"/staff/contacts/{bob}").text
    assert "Bob Smith" in page and "Q4" in page and "counted" in page
    assert XSS not in page and "&lt;script&gt;" in page
    token = csrf_token(page)
    assert marketer.post(f"/staff/contacts/{bob}/unsubscribe",
                         data={"csrf_token": token}).status_code == 303
    assert db.execute("SELECT unsubscribed_at IS NOT NULL FROM contacts WHERE id = ?",
                      [bob]).fetchone()[0] == 1
    # Erase needs the box ticked, then removes the person and keeps the score.
    marketer.post(f"/staff/contacts/{bob}/erase", data={"csrf_token": token})
    assert "Tick the box to confirm" in marketer.get(f"/staff/contacts/{bob}").text
    assert db.execute("SELECT erased_at FROM contacts WHERE id = ?", [bob]).fetchone()[0] \
        is None
    assert marketer.post(f"/staff/contacts/{bob}/erase",
                         data={"csrf_token": token, "sure": "y"}).status_code == 303
    page = marketer.get(f"/staff/contacts/{bob}").text
    assert "Erased. 1 responses stay counted" in page
    assert "bob@example.com" not in page and "Bob Smith" not in page
    assert db.execute("SELECT count(*) FROM responses WHERE contact_id = ?", [bob]
                      ).fetchone()[0] == 1
    assert marketer.get("/staff/contacts/999").status_code == 404
    assert marketer.post("/staff/contacts/999/erase",
                         data={"csrf_token": token, "sure": "y"}).status_code == 404
