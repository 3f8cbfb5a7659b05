"""The JSON API under /api/v1 (SPEC 11): what a program sends, and exactly what it gets back."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
import requests

from landing import create_app
from landing.openapi import DOCUMENT
from survey_mailer import api_keys, campaigns, contacts, nps, responses
from survey_mailer import clock as clock_
from survey_mailer.clock import stamp

START = datetime(2026, 12, 3, 9, 0, 0, 250_000, tzinfo=UTC)


@pytest.fixture
def clock():
    frozen = clock_.Stopped(START)
    with clock_.frozen(frozen):
        yield frozen


def _campaign(db, name: str) -> int:
    return campaigns.create(db, name=name, subject="A quick question",
                            sender="Acme <nps@acme.test>", postal_address="1 Main St")


@pytest.fixture
def campaign(db, clock) -> int:
    return _campaign(db, "Onboarding")


@pytest.fixture
def key(db) -> str:
    return api_keys.create_api_key(db, "crm")


@pytest.fixture
def auth(key) -> dict:
    return {"Authorization": f"Bearer {key}"}


def rows(db) -> dict:
    """Every row an API request may write, to compare before and after."""
    return {table: [tuple(r) for r in db.execute(f"SELECT * FROM {table} ORDER BY 1")]
            for table in ("contacts", "deliveries", "idempotency_keys", "unsubscribes")}


def survey(client, auth, body, **headers):
    return client.post("/api/v1/surveys", json=body, headers={**auth, **headers})


# POST /api/v1/surveys ----------------------------------------------------------------


def test_a_survey_is_scheduled_for_a_new_contact(client, db, auth, campaign):
    answer = survey(client, auth, {
        "email": "ana@example.com", "campaign": campaign, "name": "Ana García",
        "company": "Acme", "language": "ES", "properties": {"Plan": "pro", "seats": "12"},
        "delay_seconds": 3600, "event": "ticket solved"})
    assert answer.status_code == 202
    assert answer.json == {"delivery_id": 1, "contact_id": 1, "campaign": campaign,
                           "status": "scheduled", "scheduled_at": "2026-12-03T10:00:00Z"}
    assert answer.headers["Content-Type"] == "application/json"
    contact = dict(db.execute("SELECT * FROM contacts").fetchone())
    assert (contact["email"], contact["name"], contact["company"], contact["language"]) == \
        ("ana@example.com", "Ana García", "Acme", "es")
    assert json.loads(contact["attributes"]) == {"plan": "pro", "seats": "12"}
    delivery = dict(db.execute("SELECT * FROM deliveries").fetchone())
    assert {k: delivery[k] for k in ("campaign_id", "contact_id", "status", "due_at", "event",
                                     "source")} == {
        "campaign_id": campaign, "contact_id": 1, "status": "pending",
        "due_at": "2026-12-03 10:00:00.250000", "event": "ticket solved", "source": "api"}


def test_a_survey_updates_a_known_contact_and_keeps_what_is_not_sent(client, db, auth,
                                                                     campaign):
    contacts.import_csv(db, b"email,name,company,language,plan\n"
                            b"bob@example.com,Bob,Globex,fr,free\n")
    answer = survey(client, auth, {"email": "BOB@example.com", "campaign": campaign,
                                   "properties": {"region": "EU"}, "name": None})
    assert answer.status_code == 202
    assert answer.json["contact_id"] == 1
    assert answer.json["scheduled_at"] == "2026-12-03T09:00:00Z"  # no delay: at once
    contact = dict(db.execute("SELECT * FROM contacts").fetchone())
    assert (contact["name"], contact["company"], contact["language"]) == ("Bob", "Globex", "fr")
    assert json.loads(contact["attributes"]) == {"plan": "free", "region": "EU"}


FIELDS = ("email, campaign, name, company, language, properties, delay_seconds, event")
CONTROL = 'name "Ana\\nBcc: x@evil.test" contains a line break (\\n), which cannot go into ' \
          'an email header'
BAD_FIELDS = [
    ({"campaign": 1}, "email", "email is required: the address to survey"),
    ({"email": "", "campaign": 1}, "email", "email is required: the address to survey"),
    ({"email": 5, "campaign": 1}, "email", "email is required: the address to survey"),
    ({"email": "ana@", "campaign": 1}, "email", '"ana@" is not a valid email address'),
    ({"email": "jörg@example.com", "campaign": 1}, "email",
     '"jörg@example.com" has non-ASCII characters before the @, which cannot be sent to'),
    ({"email": "a@b\r\nc.com", "campaign": 1}, "email",
     '"a@b\\r\\nc.com" is not a valid email address'),
    ({"email": "a" * 250 + "@x.com", "campaign": 1}, "email",
     "email is longer than 254 characters: not an address"),
    ({"email": "ana@example.com"}, "campaign",
     "campaign is required: the id of the campaign to survey for"),
    *[({"email": "ana@example.com", "campaign": value}, "campaign",
       "campaign must be a campaign's id: a whole number (see survey-mailer campaign list)")
      for value in ("1", 1.0, True, 0, -1, 2**63, [1])],
    ({"email": "ana@example.com", "campaign": 1, "name": 5}, "name",
     "name must be text of at most 200 characters"),
    ({"email": "ana@example.com", "campaign": 1, "name": "x" * 201}, "name",
     "name must be text of at most 200 characters"),
    ({"email": "ana@example.com", "campaign": 1, "name": "Ana\nBcc: x@evil.test"}, "name",
     CONTROL),
    ({"email": "ana@example.com", "campaign": 1, "company": "Acme\x00"}, "company",
     'company "Acme\\x00" contains a control character (\\x00), which cannot go into an '
     'email header'),
    ({"email": "ana@example.com", "campaign": 1, "company": {"x": 1}}, "company",
     "company must be text of at most 200 characters"),
    ({"email": "ana@example.com", "campaign": 1, "language": "de"}, "language",
     "language must be one of en, es, fr, sv"),
    ({"email": "ana@example.com", "campaign": 1, "language": 1}, "language",
     "language must be one of en, es, fr, sv"),
    ({"email": "ana@example.com", "campaign": 1, "properties": ["plan"]}, "properties",
     "properties must be an object of text values"),
    ({"email": "ana@example.com", "campaign": 1, "properties": {"plan": 1}}, "properties",
     'properties["plan"] must be text (at most 1000 characters) under a simple name'),
    ({"email": "ana@example.com", "campaign": 1, "properties": {"a/b": "x"}}, "properties",
     'properties["a/b"] must be text (at most 1000 characters) under a simple name'),
    ({"email": "ana@example.com", "campaign": 1, "properties": {"plan": "x" * 1001}},
     "properties",
     'properties["plan"] must be text (at most 1000 characters) under a simple name'),
    *[({"email": "ana@example.com", "campaign": 1, "delay_seconds": value}, "delay_seconds",
       "delay_seconds must be a whole number from 0 to 31536000")
      for value in (-1, 31_536_001, "60", 1.5, True)],
    ({"email": "ana@example.com", "campaign": 1, "event": "x" * 101}, "event",
     "event must be text of at most 100 characters"),
    ({"email": "ana@example.com", "campaign": 1, "event": 7}, "event",
     "event must be text of at most 100 characters"),
    ({"email": "ana@example.com", "campaign": 1, "delay": 60}, "delay",
     f'unknown field "delay": the fields are {FIELDS}'),
]


@pytest.mark.parametrize(("body", "field", "message"), BAD_FIELDS)
def test_each_bad_field_is_named_and_nothing_is_written(client, db, auth, campaign, body,
                                                        field, message):
    before = rows(db)
    answer = survey(client, auth, body)
    assert (answer.status_code, answer.json) == (400, {"error": message, "field": field})
    assert rows(db) == before


BAD_BODIES = [
    (b"", "the body is empty: send a JSON object (Content-Type: application/json)"),
    (b"  \n", "the body is empty: send a JSON object (Content-Type: application/json)"),
    (b"email=ana@example.com&campaign=1",
     "the body is not JSON: Expecting value: line 1 column 1 (char 0)"),
    (b'{"email": "ana@example.com",}',
     "the body is not JSON: Expecting property name enclosed in double quotes: line 1 "
     "column 29 (char 28)"),
    (b"\xff\xfe\x00", "the body is not JSON: 'utf-16-le' codec can't decode byte 0x00 in "
                      "position 2: truncated data"),
    (b"[1, 2]", "the body must be a JSON object, not an array"),
    (b'"ana@example.com"', "the body must be a JSON object, not a string"),
    (b"12", "the body must be a JSON object, not a number"),
    (b"null", "the body must be a JSON object, not null"),
    (b"[" * 30_000 + b"]" * 30_000, "the body is not usable JSON: it is nested too deeply"),
    (b'{"email": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
     "the body is not usable JSON: it is nested too deeply"),
    (b"1" * 5000, "the body is not JSON: Exceeds the limit (4300 digits) for integer string "
                  "conversion: value has 5000 digits; use sys.set_int_max_str_digits() to "
                  "increase the limit"),
]


@pytest.mark.parametrize(("data", "message"), BAD_BODIES)
def test_a_body_that_is_not_a_json_object_is_a_400_naming_the_problem(client, db, auth,
                                                                      campaign, data,
                                                                      message):
    before = rows(db)
    answer = client.post("/api/v1/surveys", data=data, headers={
        **auth, "Content-Type": "application/json"})
    assert (answer.status_code, answer.json) == (400, {"error": message})
    assert rows(db) == before


def test_a_lone_surrogate_is_refused_naming_its_field(client, db, auth, campaign):
    data = b'{"email": "ana@example.com", "campaign": 1, "name": "\\ud800"}'
    answer = client.post("/api/v1/surveys", data=data, headers=auth)
    assert (answer.status_code, answer.json) == (400, {
        "error": '"name" holds a lone surrogate (\\ud800-\\udfff): not text', "field": "name"})


def test_an_unknown_campaign_is_a_404(client, db, auth, campaign):
    before = rows(db)
    answer = survey(client, auth, {"email": "ana@example.com", "campaign": 99})
    assert (answer.status_code, answer.json) == (404, {
        "error": 'campaign "99" does not exist', "field": "campaign"})
    assert rows(db) == before


def test_a_body_over_64_kb_is_a_413(client, db, auth, campaign):
    before = rows(db)
    body = {"email": "ana@example.com", "campaign": campaign, "event": "x" * 70_000}
    answer = survey(client, auth, body)
    assert (answer.status_code, answer.json) == (413, {
        "error": "The data value transmitted exceeds the capacity limit."})
    assert rows(db) == before


def test_a_body_over_64_kb_without_a_length_is_a_413_through_gunicorn(live_server, db, key,
                                                                   campaign):
    def chunks(email: str, kilobytes: int):  # chunked: no Content-Length to refuse it by
        yield b'{"email": "' + email.encode() + b'", "campaign": 1, "event": "'
        for _ in range(kilobytes):
            yield b"x" * 1024
        yield b'"}'

    def post(data):
        return requests.post(f"{live_server}/api/v1/surveys", data=data, timeout=30,
                             headers={"Authorization": f"Bearer {key}",
                                      "Content-Type": "application/json"})

    # A chunked body under 64 KB is read whole: its (too long) event is what is wrong.
    small = post(chunks("bob@example.com", 63))
    assert (small.status_code, small.json()["field"]) == (400, "event")
    before = rows(db)
    answer = post(chunks("ana@example.com", 70))
    assert (answer.status_code, answer.json()) == (413, {
        "error": "The data value transmitted exceeds the capacity limit."})
    assert rows(db) == before


# 409: who must not be surveyed, and nothing written ------------------------------------


def _unsubscribed(db, campaign):
    contacts.unsubscribe(db, contacts.get_by_email(db, "ana@example.com")["id"],
                         method="link")


def _suppressed(db, campaign):
    db.execute("UPDATE contacts SET suppressed_at = '2026-11-01 00:00:00', "
               "suppressed_reason = 'bounce' WHERE email = 'ana@example.com'")
    db.conn.commit()


def _erased(db, campaign):
    db.execute("DELETE FROM contacts WHERE email = 'ana@example.com'")
    db.execute("INSERT INTO erased_addresses (email_hash, erased_at) VALUES (?, ?)",
               [contacts.email_hash(db, "Ana@Example.com"), "2026-11-01 00:00:00"])
    db.conn.commit()


def _recently_surveyed(db, campaign):
    other = _campaign(db, "Renewal")
    (contact_id,) = db.execute("SELECT id FROM contacts").fetchone()
    db.execute("INSERT INTO deliveries (campaign_id, contact_id, status, created_at, sent_at) "
               "VALUES (?, ?, 'sent', ?, ?)", [other, contact_id, stamp(START - timedelta(
                   days=89)), stamp(START - timedelta(days=89))])
    db.conn.commit()


def _already_surveyed(db, campaign):
    (contact_id,) = db.execute("SELECT id FROM contacts").fetchone()
    db.execute("INSERT INTO deliveries (campaign_id, contact_id, status, created_at, sent_at) "
               "VALUES (?, ?, 'sent', '2025-01-01 00:00:00', '2025-01-01 00:00:00')",
               [campaign, contact_id])
    db.conn.commit()


REFUSALS = [
    (_unsubscribed, "unsubscribed", "this person unsubscribed from surveys"),
    (_suppressed, "suppressed", "mail to this address bounced or was reported as spam"),
    (_erased, "erased", "this person asked to be forgotten; they are never added back"),
    (_recently_surveyed, "recently_surveyed",
     "this person was surveyed in the last 90 days (SURVEY_RESURVEY_DAYS)"),
    (_already_surveyed, "already_surveyed", "this person already has this campaign's survey"),
]


@pytest.mark.parametrize(("make", "reason", "message"), REFUSALS,
                         ids=[r[1] for r in REFUSALS])
def test_a_person_who_must_not_be_surveyed_is_a_409_with_the_reason(client, db, auth,
                                                                   campaign, make, reason,
                                                                   message):
    contacts.import_csv(db, b"email,name\nana@example.com,Ana\n")
    make(db, campaign)
    before = rows(db)
    answer = survey(client, auth, {"email": "ana@example.com", "campaign": campaign,
                                   "name": "Someone Else", "properties": {"plan": "pro"}})
    assert (answer.status_code, answer.json) == (409, {"error": message, "reason": reason})
    assert rows(db) == before  # not even the contact's name or attributes


def test_a_survey_more_than_resurvey_days_after_the_last_is_scheduled(client, db, auth,
                                                                     campaign, clock):
    contacts.import_csv(db, b"email\nana@example.com\n")
    _recently_surveyed(db, campaign)
    clock.advance(86400 + 1)  # the other survey is now 90 days and a second old
    assert survey(client, auth, {"email": "ana@example.com",
                                 "campaign": campaign}).status_code == 202


def test_two_surveys_in_a_row_the_second_is_already_surveyed(client, db, auth, campaign):
    body = {"email": "ana@example.com", "campaign": campaign, "delay_seconds": 600}
    assert survey(client, auth, body).status_code == 202
    before = rows(db)
    answer = survey(client, auth, body)
    assert (answer.status_code, answer.json["reason"]) == (409, "already_surveyed")
    assert rows(db) == before
    other = _campaign(db, "Renewal")  # a pending survey counts as recent
    answer = survey(client, auth, {**body, "campaign": other})
    assert (answer.status_code, answer.json["reason"]) == (409, "recently_surveyed")


# Idempotency-Key ---------------------------------------------------------------------


def test_the_same_idempotency_key_gets_the_first_answer_and_creates_nothing(client, db, auth,
                                                                           campaign, clock):
    body = {"email": "ana@example.com", "campaign": campaign, "delay_seconds": 60}
    first = survey(client, auth, body, **{"Idempotency-Key": "order-1001"})
    assert first.status_code == 202
    assert "Idempotent-Replayed" not in first.headers
    before = rows(db)
    clock.advance(3600)
    again = survey(client, auth, body, **{"Idempotency-Key": "order-1001"})
    assert (again.status_code, again.json) == (202, first.json)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert rows(db) == before
    # The same body under another key is a new request: that person has the survey.
    other = survey(client, auth, body, **{"Idempotency-Key": "order-1002"})
    assert (other.status_code, other.json["reason"]) == (409, "already_surveyed")
    # A refusal is an answer too: it is replayed as it was, even once the reason is gone.
    db.execute("DELETE FROM deliveries")
    db.conn.commit()
    replayed = survey(client, auth, body, **{"Idempotency-Key": "order-1002"})
    assert (replayed.status_code, replayed.json) == (409, other.json)
    assert replayed.headers["Idempotent-Replayed"] == "true"


def test_idempotency_keys_are_per_api_key_and_last_24_hours(client, db, auth, campaign,
                                                            clock):
    other_auth = {"Authorization": f"Bearer {api_keys.create_api_key(db, 'shop')}"}
    body = {"email": "ana@example.com", "campaign": campaign}
    first = survey(client, auth, body, **{"Idempotency-Key": "k1"})
    assert first.status_code == 202
    # Another API key with the same Idempotency-Key: its own request, not a replay.
    theirs = survey(client, other_auth, body, **{"Idempotency-Key": "k1"})
    assert (theirs.status_code, theirs.json["reason"]) == (409, "already_surveyed")
    assert "Idempotent-Replayed" not in theirs.headers
    clock.advance(24 * 3600 - 1)
    assert survey(client, auth, body, **{"Idempotency-Key": "k1"}).status_code == 202
    clock.advance(2)  # the key expired: the request runs again
    late = survey(client, auth, body, **{"Idempotency-Key": "k1"})
    assert (late.status_code, late.json["reason"]) == (409, "already_surveyed")
    assert "Idempotent-Replayed" not in late.headers
    # Expired keys are deleted as new ones are kept.
    assert db.execute("SELECT count(*) FROM idempotency_keys").fetchone()[0] == 1


def test_an_idempotency_key_with_another_request_is_a_422(client, db, auth, campaign):
    survey(client, auth, {"email": "ana@example.com", "campaign": campaign},
           **{"Idempotency-Key": "k1"})
    before = rows(db)
    answer = survey(client, auth, {"email": "bob@example.com", "campaign": campaign},
                    **{"Idempotency-Key": "k1"})
    assert (answer.status_code, answer.json) == (422, {
        "error": "this Idempotency-Key was used with a different request in the last 24 "
                 "hours: use a new key for a new request", "field": "Idempotency-Key"})
    assert rows(db) == before


@pytest.mark.parametrize("value", ["x" * 256, "caf\u00e9", " padded"])
def test_a_bad_idempotency_key_is_a_400(client, db, auth, campaign, value):
    answer = survey(client, auth, {"email": "ana@example.com", "campaign": campaign},
                    **{"Idempotency-Key": value.encode().decode("latin-1")})
    assert (answer.status_code, answer.json) == (400, {
        "error": "Idempotency-Key must be 1 to 255 printable ASCII characters (a UUID, say)",
        "field": "Idempotency-Key"})


def test_two_requests_with_one_key_at_once_one_creates_the_other_replays(
        app, db, auth, campaign, monkeypatch):
    # A is held inside its write transaction until B has looked for the key (and found
    # nothing, A has not committed); B then waits for the write lock, and must replay.
    from survey_mailer import idempotency

    a_inside, b_looked = threading.Event(), threading.Event()
    upsert, recall = contacts.upsert, idempotency.recall

    def held_upsert(conn, **fields):
        if threading.current_thread().name == "A":
            a_inside.set()
            assert b_looked.wait(10)
        return upsert(conn, **fields)

    def watched_recall(db, key):
        found = recall(db, key)
        if threading.current_thread().name == "B":
            b_looked.set()
        return found

    monkeypatch.setattr(contacts, "upsert", held_upsert)
    monkeypatch.setattr(idempotency, "recall", watched_recall)
    answers, ready, go = {}, threading.Barrier(3), {"A": threading.Event(),
                                                    "B": threading.Event()}

    def post():
        name = threading.current_thread().name
        client = app.test_client()
        # First a request that opens (and migrates) this thread's connection: that takes
        # the write lock, which must not be what B waits on.
        assert client.get("/api/v1/responses", headers=auth).status_code == 200
        ready.wait(10)
        assert go[name].wait(10)
        answers[name] = survey(client, auth, {"email": "ana@example.com",
                                              "campaign": campaign},
                               **{"Idempotency-Key": "same"})

    threads = [threading.Thread(target=post, name=name) for name in go]
    for thread in threads:
        thread.start()
    ready.wait(10)
    go["A"].set()
    assert a_inside.wait(10)
    go["B"].set()
    for thread in threads:
        thread.join()
    assert (answers["A"].status_code, answers["B"].status_code) == (202, 202)
    assert answers["B"].json == answers["A"].json
    assert "Idempotent-Replayed" not in answers["A"].headers
    assert answers["B"].headers["Idempotent-Replayed"] == "true"
    assert db.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 1


def test_requests_with_one_idempotency_key_at_once_create_one_survey(live_server, db,
                                                                    campaign, key):
    # Real gunicorn workers, eight requests released together: one creates, the others
    # replay its answer (the exact race, forced step by step, is the test above).
    barrier = threading.Barrier(8)
    answers = []

    def post():
        barrier.wait()
        answers.append(requests.post(
            f"{live_server}/api/v1/surveys", timeout=30,
            json={"email": "ana@example.com", "campaign": campaign, "delay_seconds": 60},
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "same"}))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [202] * 8
    assert len({a.text for a in answers}) == 1
    assert sorted(a.headers.get("Idempotent-Replayed", "") for a in answers) == \
        [""] + ["true"] * 7
    assert db.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 1
    assert db.execute("SELECT count(*) FROM idempotency_keys").fetchone()[0] == 1


# DELETE /api/v1/surveys/<id> ----------------------------------------------------------


def test_a_pending_survey_is_cancelled_and_can_be_asked_for_again(client, db, auth,
                                                                  campaign):
    body = {"email": "ana@example.com", "campaign": campaign, "delay_seconds": 600}
    delivery_id = survey(client, auth, body).json["delivery_id"]
    answer = client.delete(f"/api/v1/surveys/{delivery_id}", headers=auth)
    assert (answer.status_code, answer.data) == (204, b"")
    assert tuple(db.execute("SELECT status, error FROM deliveries").fetchone()) == \
        ("skipped", "cancelled")
    assert client.delete(f"/api/v1/surveys/{delivery_id}", headers=auth).status_code == 204
    again = survey(client, auth, {**body, "delay_seconds": 60})
    assert (again.status_code, again.json["delivery_id"]) == (202, delivery_id)
    assert tuple(db.execute("SELECT status, error, due_at FROM deliveries").fetchone()) == \
        ("pending", None, "2026-12-03 09:01:00.250000")


@pytest.mark.parametrize("status", ["sending", "sent", "failed"])
def test_a_survey_sent_or_being_sent_cannot_be_cancelled(client, db, auth, campaign, status):
    delivery_id = survey(client, auth, {"email": "ana@example.com",
                                        "campaign": campaign}).json["delivery_id"]
    db.execute("UPDATE deliveries SET status = ?", [status])
    db.conn.commit()
    answer = client.delete(f"/api/v1/surveys/{delivery_id}", headers=auth)
    assert (answer.status_code, answer.json) == (409, {
        "error": f"delivery {delivery_id} is {status}: too late to cancel", "status": status})
    assert db.execute("SELECT status FROM deliveries").fetchone()[0] == status


@pytest.mark.parametrize("path", ["/api/v1/surveys/99", "/api/v1/surveys/0"])
def test_cancelling_an_unknown_survey_is_a_404(client, auth, campaign, path):
    answer = client.delete(path, headers=auth)
    assert (answer.status_code, answer.json) == (404, {
        "error": f'delivery "{path.rsplit("/", 1)[1]}" does not exist'})


@pytest.mark.parametrize("path", ["/api/v1/surveys/abc", "/api/v1/surveys/-1",
                                  "/api/v1/surveys/99999999999999999999",
                                  "/api/v1/surveys/" + "9" * 5000])
def test_a_delivery_id_that_is_no_number_is_a_404(client, auth, path):
    answer = client.delete(path, headers=auth)
    assert answer.status_code == 404
    assert answer.json == {"error": "There is nothing at this address."}


# GET /api/v1/responses ---------------------------------------------------------------


def _answered(client, db, auth, campaign, emails_scores, clock):
    """Survey each email through the API, mark it sent, and save an answer a minute apart."""
    ids = []
    for email, score in emails_scores:
        delivery_id = survey(client, auth, {"email": email, "campaign": campaign,
                                            "event": f"deal {email[0]}"}).json["delivery_id"]
        db.execute("UPDATE deliveries SET status = 'sent', sent_at = ? WHERE id = ?",
                   [clock_.now(), delivery_id])
        db.conn.commit()
        clock.advance(60)
        responses.save_answer(db, responses.delivery(db, delivery_id), score=score,
                              comment=f"{email} says {score}")
        ids.append(delivery_id)
    return ids


def test_responses_come_in_change_order_with_every_field(client, db, auth, campaign, clock):
    contacts.import_csv(db, b"email,name,company,language,plan\n"
                            b"ana@example.com,Ana,Acme,es,pro\n")
    _answered(client, db, auth, campaign, [("ana@example.com", 9), ("bob@example.com", 3)],
              clock)
    answer = client.get("/api/v1/responses", headers=auth)
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.json == {"next_cursor": "2", "has_more": False, "data": [
        {"id": 1, "delivery_id": 1, "contact_id": 1, "campaign": campaign,
         "email": "ana@example.com", "name": "Ana", "company": "Acme", "language": "es",
         "score": 9, "segment": "promoter", "comment": "ana@example.com says 9",
         "testimonial_consent": False, "counted": True, "confirmed": True,
         "responded_at": "2026-12-03T09:01:00Z", "updated_at": "2026-12-03T09:01:00Z",
         "event": "deal a", "properties": {"plan": "pro"}},
        {"id": 2, "delivery_id": 2, "contact_id": 2, "campaign": campaign,
         "email": "bob@example.com", "name": "", "company": "", "language": "en",
         "score": 3, "segment": "detractor", "comment": "bob@example.com says 3",
         "testimonial_consent": False, "counted": True, "confirmed": True,
         "responded_at": "2026-12-03T09:02:00Z", "updated_at": "2026-12-03T09:02:00Z",
         "event": "deal b", "properties": {}},
    ]}


def test_a_sync_never_misses_a_response_changed_after_it_was_read(client, db, auth,
                                                                   campaign, clock):
    emails = [(f"p{i}@example.com", i) for i in range(5)]
    ids = _answered(client, db, auth, campaign, emails, clock)
    first = client.get("/api/v1/responses?limit=2", headers=auth).json
    assert [r["email"] for r in first["data"]] == ["p0@example.com", "p1@example.com"]
    assert first["has_more"] is True
    second = client.get(f"/api/v1/responses?limit=2&cursor={first['next_cursor']}",
                        headers=auth).json
    assert [r["email"] for r in second["data"]] == ["p2@example.com", "p3@example.com"]
    clock.advance(60)
    # p0, read on the first page, changes its answer while the sync goes on.
    responses.save_answer(db, responses.delivery(db, ids[0]), score=10, comment="better now")
    third = client.get(f"/api/v1/responses?limit=2&cursor={second['next_cursor']}",
                       headers=auth).json
    assert [(r["email"], r["score"], r["comment"]) for r in third["data"]] == [
        ("p4@example.com", 4, "p4@example.com says 4"), ("p0@example.com", 10, "better now")]
    assert third["data"][1]["updated_at"] == "2026-12-03T09:06:00Z"
    assert third["has_more"] is False
    done = client.get(f"/api/v1/responses?cursor={third['next_cursor']}", headers=auth).json
    assert done == {"data": [], "next_cursor": third["next_cursor"], "has_more": False}


def test_responses_filtered_by_campaign_and_since(client, db, auth, campaign, clock):
    _answered(client, db, auth, campaign, [("ana@example.com", 9)], clock)
    clock.advance(86400 * 100)  # past the resurvey window
    other = _campaign(db, "Renewal")
    _answered(client, db, auth, other, [("bob@example.com", 5)], clock)
    by_campaign = client.get(f"/api/v1/responses?campaign={other}", headers=auth).json
    assert [r["email"] for r in by_campaign["data"]] == ["bob@example.com"]
    for since in ("2026-12-04", "2026-12-04T00:00:00Z", "2026-12-04T01:00:00+01:00"):
        later = client.get("/api/v1/responses", query_string={"since": since},
                           headers=auth).json
        assert [r["email"] for r in later["data"]] == ["bob@example.com"], since


@pytest.mark.parametrize(("query", "status", "body"), [
    ("limit=0", 400, {"error": "limit must be a whole number from 1 to 1000",
                      "field": "limit"}),
    ("limit=1001", 400, {"error": "limit must be a whole number from 1 to 1000",
                         "field": "limit"}),
    ("limit=ten", 400, {"error": "limit must be a whole number from 1 to 1000",
                        "field": "limit"}),
    ("limit=%EF%BC%95", 400, {"error": "limit must be a whole number from 1 to 1000",
                              "field": "limit"}),
    *[(f"cursor={value}", 400, {"error": "cursor is not one this API gave: pass next_cursor "
                                         "as it came (or no cursor, to start)",
                                "field": "cursor"})
      for value in ("abc", "", "-1", "99999999999999999999")],
    ("limit=", 400, {"error": "limit must be a whole number from 1 to 1000",
                     "field": "limit"}),
    ("since=", 400, {"error": 'since "" is not an ISO 8601 time (like 2026-12-03T09:00:00Z)',
                     "field": "since"}),
    ("campaign=", 400, {"error": 'campaign "" is not a campaign id', "field": "campaign"}),
    ("since=yesterday", 400, {
        "error": 'since "yesterday" is not an ISO 8601 time (like 2026-12-03T09:00:00Z)',
        "field": "since"}),
    ("since=0001-01-01T00:00:00%2B01:00", 400, {
        "error": 'since "0001-01-01T00:00:00+01:00" is not an ISO 8601 time (like '
                 '2026-12-03T09:00:00Z)', "field": "since"}),
    ("campaign=x", 400, {"error": 'campaign "x" is not a campaign id', "field": "campaign"}),
    ("campaign=0", 400, {"error": 'campaign "0" is not a campaign id', "field": "campaign"}),
    ("campaign=" + "9" * 5000, 400, {"error": f'campaign "{"9" * 60}..." is not a campaign id',
                                     "field": "campaign"}),
    ("campaign=42", 404, {"error": 'campaign "42" does not exist', "field": "campaign"}),
])
def test_bad_query_values_name_the_parameter(client, auth, campaign, query, status, body):
    answer = client.get(f"/api/v1/responses?{query}", headers=auth)
    assert (answer.status_code, answer.json) == (status, body)


@pytest.mark.parametrize(("method", "path", "message"), [
    ("get", "/api/v1/responses?campain=2", 'unknown parameter "campain": the parameters '
                                           'are campaign, since, limit, cursor'),
    ("get", "/api/v1/stats?campaign=1&group=company", 'unknown parameter "group": the '
                                                      'parameters are campaign, by'),
    ("post", "/api/v1/surveys?delay_seconds=60", 'unknown parameter "delay_seconds": this '
                                                 'route takes none'),
    ("delete", "/api/v1/surveys/1?force=1", 'unknown parameter "force": this route takes '
                                            'none'),
])
def test_an_unknown_query_parameter_is_named(client, db, auth, campaign, method, path,
                                             message):
    before = rows(db)
    answer = getattr(client, method)(path, headers=auth,
                                     json={"email": "ana@example.com", "campaign": campaign})
    assert (answer.status_code, answer.json) == (400, {"error": message,
                                                       "field": message.split('"')[1]})
    assert rows(db) == before


def test_limit_defaults_to_100_and_goes_up_to_1000(client, db, auth, campaign, clock):
    _answered(client, db, auth, campaign, [("ana@example.com", 9)], clock)
    stamp_ = clock_.now()
    with db.conn:  # 1,100 more responses, straight in
        for i in range(2, 1102):
            db.execute("INSERT INTO contacts (id, email, created_at, updated_at) "
                       "VALUES (?, ?, ?, ?)", [i, f"c{i}@example.com", stamp_, stamp_])
            db.execute("INSERT INTO deliveries (id, campaign_id, contact_id, status, "
                       "created_at) VALUES (?, ?, ?, 'sent', ?)", [i, campaign, i, stamp_])
            db.execute("INSERT INTO responses (delivery_id, campaign_id, contact_id, score, "
                       "created_at, responded_at) VALUES (?, ?, ?, 7, ?, ?)",
                       [i, campaign, i, stamp_, stamp_])
    assert len(client.get("/api/v1/responses", headers=auth).json["data"]) == 100
    page = client.get("/api/v1/responses?limit=1000", headers=auth).json
    assert (len(page["data"]), page["has_more"]) == (1000, True)


# Stats -------------------------------------------------------------------------------


def test_a_campaigns_stats_are_the_report(client, db, auth, campaign, clock):
    _answered(client, db, auth, campaign, [("ana@example.com", 9), ("bob@example.com", 3),
                                           ("cy@example.com", 10)], clock)
    answer = client.get(f"/api/v1/campaigns/{campaign}/stats", headers=auth)
    assert answer.status_code == 200
    assert answer.json == nps.report(db, campaign_id=campaign)
    assert (answer.json["nps"], answer.json["responses"], answer.json["campaign_name"]) == \
        (33.3, 3, "Onboarding")
    by = client.get(f"/api/v1/campaigns/{campaign}/stats?by=language", headers=auth).json
    assert by == nps.report(db, campaign_id=campaign, by="language")
    assert client.get("/api/v1/stats", headers=auth).json == nps.report(db)


@pytest.mark.parametrize(("path", "status", "body"), [
    ("/api/v1/campaigns/1/stats?by=planet", 400, {
        "error": 'cannot group by "planet": use company, language, quarter, campaign or '
                 'attribute:NAME', "field": "by"}),
    ("/api/v1/campaigns/1/stats?by=attribute:plan", 400, {
        "error": 'no contact has the attribute "plan": group by an attribute column of the '
                 'imported contacts', "field": "by"}),
    ("/api/v1/campaigns/7/stats", 404, {"error": 'campaign "7" does not exist'}),
    ("/api/v1/campaigns/x/stats", 404, {"error": "There is nothing at this address."}),
    ("/api/v1/stats?campaign=7", 404, {"error": 'campaign "7" does not exist',
                                       "field": "campaign"}),
])
def test_bad_stats_requests(client, auth, campaign, path, status, body):
    answer = client.get(path, headers=auth)
    assert (answer.status_code, answer.json) == (status, body)


# Keys, and keys for one campaign ----------------------------------------------------------

MISSING = {"error": "send an API key as: Authorization: Bearer KEY"}
INVALID = {"error": "this API key is not valid: it was revoked, or mistyped"}


@pytest.mark.parametrize(("header", "body"), [
    (None, MISSING), ("", MISSING), ("Bearer", MISSING), ("Bearer   ", MISSING),
    ("Basic c21fa2V5Og==", MISSING), ("Bearer sm_not-a-key", INVALID),
    ("bearer sm_not-a-key", INVALID),
])
@pytest.mark.parametrize(("method", "path"), [
    ("get", "/api/v1/responses"), ("post", "/api/v1/surveys"),
    ("delete", "/api/v1/surveys/1"), ("get", "/api/v1/campaigns/1/stats"),
    ("get", "/api/v1/stats"),
])
def test_no_key_or_a_wrong_key_is_a_401(client, db, campaign, header, body, method, path):
    before = rows(db)
    headers = {"Authorization": header} if header is not None else {}
    answer = getattr(client, method)(path, headers=headers,
                                     json={"email": "ana@example.com", "campaign": 1})
    assert (answer.status_code, answer.json) == (401, body)
    assert answer.headers["WWW-Authenticate"].startswith('Bearer realm="survey-mailer"')
    assert rows(db) == before


def test_a_revoked_key_is_a_401_at_once(client, db, auth, key, campaign):
    assert client.get("/api/v1/responses", headers=auth).status_code == 200
    api_keys.revoke_api_key(db, 1)
    answer = client.get("/api/v1/responses", headers=auth)
    assert (answer.status_code, answer.json) == (401, INVALID)
    assert answer.headers["WWW-Authenticate"] == \
        'Bearer realm="survey-mailer", error="invalid_token"'


def test_a_key_for_one_campaign_reaches_only_that_campaign(client, db, runner, campaign,
                                                           clock):
    other = _campaign(db, "Renewal")
    result = runner("api-key", "create", "--name", "delighted", "--campaign", str(campaign))
    assert result.exit_code == 0
    scoped = {"Authorization": f"Bearer {result.output.strip().splitlines()[-1]}"}
    listed = runner("api-key", "list").output
    assert listed.rstrip("\n").endswith(f"never used\tcampaign {campaign}")
    assert json.loads(runner("api-key", "list", "--format", "json").output)[0][
        "campaign_id"] == campaign
    assert survey(client, scoped, {"email": "ana@example.com", "campaign": campaign}
                  ).status_code == 202
    refused = survey(client, scoped, {"email": "bob@example.com", "campaign": other})
    assert (refused.status_code, refused.json) == (403, {
        "error": f"this API key is for campaign {campaign} only", "field": "campaign"})
    unscoped = {"Authorization": f"Bearer {api_keys.create_api_key(db, 'all')}"}
    elsewhere = survey(client, unscoped, {"email": "bob@example.com", "campaign": other})
    assert elsewhere.status_code == 202
    cancel = client.delete(f"/api/v1/surveys/{elsewhere.json['delivery_id']}", headers=scoped)
    assert (cancel.status_code, cancel.json) == (404, {"error": 'delivery "2" does not exist'})
    assert client.get(f"/api/v1/responses?campaign={other}", headers=scoped).status_code == 403
    assert client.get(f"/api/v1/campaigns/{other}/stats", headers=scoped).status_code == 403
    assert client.get("/api/v1/stats", headers=scoped).json["campaign"] == campaign


def test_a_key_for_an_unknown_campaign_is_refused(runner, db):
    result = runner("api-key", "create", "--name", "x", "--campaign", "9")
    assert (result.exit_code, result.output) == (1, 'Error: campaign "9" does not exist\n')
    assert api_keys.list_api_keys(db) == []


# Rate limit per key ------------------------------------------------------------------


def test_each_key_has_its_own_rate_limit_whatever_its_address(settings, db, monkeypatch,
                                                              campaign):
    monkeypatch.setenv("SURVEY_API_RATE_LIMIT", "3 per minute")
    # (The limiter is one object: an earlier app may have left it disabled.)
    client = create_app({"TESTING": True, "RATELIMIT_ENABLED": True}).test_client()
    busy = {"Authorization": f"Bearer {api_keys.create_api_key(db, 'busy')}"}
    calm = {"Authorization": f"Bearer {api_keys.create_api_key(db, 'calm')}"}
    for _ in range(5):  # refused keys spend no one's budget
        assert client.get("/api/v1/responses", headers={
            "Authorization": busy["Authorization"] + "x"}).status_code == 401
    for address in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        answer = client.get("/api/v1/responses", headers=busy,
                            environ_base={"REMOTE_ADDR": address})
        assert answer.status_code == 200
    assert answer.headers["X-RateLimit-Remaining"] == "0"
    # Another address and another route: the same key's budget, spent.
    limited = client.post("/api/v1/surveys", headers=busy,
                          json={"email": "ana@example.com", "campaign": campaign},
                          environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert (limited.status_code, limited.json) == (429, {
        "error": "this API key's rate limit (3 per 1 minute) is used up: try again in "
                 "Retry-After seconds"})
    assert 0 < int(limited.headers["Retry-After"]) <= 60
    assert db.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 0
    # The same address with another key: its own budget.
    assert client.get("/api/v1/responses", headers=calm,
                      environ_base={"REMOTE_ADDR": "192.0.2.1"}).status_code == 200
    assert client.get("/api/v1/openapi.json").status_code == 200  # no key, no limit


def test_a_bad_rate_limit_setting_is_refused_at_start(settings, monkeypatch):
    from survey_mailer.errors import ConfigError

    monkeypatch.setenv("SURVEY_API_RATE_LIMIT", "lots")
    with pytest.raises(ConfigError) as raised:
        create_app()
    assert str(raised.value) == ("SURVEY_API_RATE_LIMIT='lots' is not valid: not a rate "
                                 "limit (like 600 per minute or 10/second)")


# OpenAPI -----------------------------------------------------------------------------


def _documented_path(rule) -> str:
    path = rule.rule
    for argument in rule.arguments:
        path = path.replace(f"<id:{argument}>", f"{{{argument}}}")
    return path


def test_every_api_route_is_in_the_openapi_document(app):
    routes = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            methods = {m.lower() for m in rule.methods} - {"head", "options"}
            routes.setdefault(_documented_path(rule), set()).update(methods)
    documented = {path: set(operations) for path, operations in DOCUMENT["paths"].items()}
    assert routes == documented
    for path, operations in DOCUMENT["paths"].items():
        for method, operation in operations.items():
            for name in ("{delivery_id}", "{campaign_id}"):
                if name in path:
                    assert name[1:-1] in [p["name"] for p in operation["parameters"]], path
            assert operation["responses"], (method, path)


def test_the_openapi_document_is_valid_and_public(client):
    from openapi_spec_validator import validate

    answer = client.get("/api/v1/openapi.json")
    assert answer.status_code == 200
    assert answer.json == DOCUMENT
    assert answer.json["openapi"] == "3.1.0"
    validate(answer.json)


# schemathesis against the document ---------------------------------------------------

EXAMPLES = 25  # per operation and mode: 5 operations, 250 requests in all


def _fuzz(operation, mode, auth: dict, campaign: int, seen: dict) -> None:
    """Send EXAMPLES cases of one operation and mode; check each answer against the document."""
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hypothesis_settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        negative_data_rejection,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance, response_headers_conformance]
    if not mode.is_positive:
        checks.append(negative_data_rejection)  # data that breaks the document: a 4xx
    label = f"{operation.method.upper()} {operation.path}"
    count = 0

    @hypothesis_settings(max_examples=EXAMPLES, deadline=None, database=None,
                         derandomize=True, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode, headers=auth))
    def call(case):
        nonlocal count
        count += 1
        if mode.is_positive and count % 2:
            # Random ids almost never exist: every other valid case gets a real campaign or
            # delivery (still valid), so answers other than 404 are checked too.
            if "campaign_id" in case.path_parameters:
                case.path_parameters["campaign_id"] = campaign
            if "delivery_id" in case.path_parameters:
                case.path_parameters["delivery_id"] = 1 + count % 3
            if isinstance(case.body, dict) and "campaign" in case.body:
                case.body["campaign"] = campaign
                if count % 4 == 1:  # someone this campaign surveyed already: a 409
                    case.body["email"] = "p0@example.com"
        answer = case.call_and_validate(checks=checks)
        seen.setdefault(label, set()).add(answer.status_code)

    call()


def test_schemathesis_finds_no_5xx_and_no_answer_outside_the_document(settings, db,
                                                                      monkeypatch):
    import schemathesis

    monkeypatch.setenv("SURVEY_API_RATE_LIMIT", "100000 per minute")
    app = create_app({"TESTING": True, "RATELIMIT_ENABLED": True})
    campaign = _campaign(db, "Onboarding")
    client = app.test_client()
    auth = {"Authorization": f"Bearer {api_keys.create_api_key(db, 'fuzz')}"}
    contacts.import_csv(db, b"email,plan\np0@example.com,pro\n")
    for i, score in enumerate((0, 7, 10)):  # responses to list, stats to compute
        delivery_id = survey(client, auth, {"email": f"p{i}@example.com",
                                            "campaign": campaign}).json["delivery_id"]
        responses.save_answer(db, responses.delivery(db, delivery_id), score=score)
    db.execute("UPDATE deliveries SET status = 'sent' WHERE id = 3")  # too late to cancel
    db.conn.commit()
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    seen: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        for mode in schemathesis.GenerationMode:
            _fuzz(result.ok(), mode, auth, campaign, seen)
    # Every operation also answered with success and refusals, not only errors: the cases
    # reached the code behind the checks.
    reached = {
        "GET /api/v1/campaigns/{campaign_id}/stats": {200, 400, 404},
        "GET /api/v1/responses": {200, 400, 404},
        "GET /api/v1/stats": {200, 400, 404},
        "POST /api/v1/surveys": {202, 400, 404, 409},
        "DELETE /api/v1/surveys/{delivery_id}": {204, 404, 409},
    }
    assert {label: seen[label] & codes for label, codes in reached.items()} == reached
