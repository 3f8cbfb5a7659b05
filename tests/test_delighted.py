"""The Delighted-compatible API (SPEC 11), proven with Delighted's own Python client against
a real gunicorn: a team changes its client's base URL and keeps its integrations."""

from __future__ import annotations

import json
import time

import delighted
import pytest
from delighted.errors import (
    AuthenticationError,
    GeneralAPIError,
    ResourceValidationError,
    TooManyRequestsError,
)

from landing import create_app
from survey_mailer import cases, notify
from survey_mailer import config as config_
from survey_mailer import db as db_

pytestmark = pytest.mark.slow


def make_key(runner, campaign_id: int | None) -> str:
    args = ["api-key", "create", "--name", "delighted"]
    if campaign_id is not None:
        args += ["--campaign", str(campaign_id)]
    result = runner(*args)
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


@pytest.fixture
def campaign(runner) -> int:
    result = runner("campaign", "create", "--name", "Onboarding", "--subject", "One question",
                    "--sender", "Acme <nps@acme.test>", "--postal-address", "1 Main St")
    return int(result.output.strip().splitlines()[-1])


@pytest.fixture
def client(live_server, runner, campaign):
    """Delighted's client, its base URL pointed at our server."""
    return delighted.Client(api_key=make_key(runner, campaign),
                            api_base_url=f"{live_server}/delighted/v1/")


def rows(db, sql: str, *args) -> list[tuple]:
    return [tuple(r) for r in db.execute(sql, args)]


def test_every_call_of_delighted_s_client(client, db, campaign, runner, settings):
    c = {"client": client}
    before = time.time()
    # POST people: a survey scheduled after the delay; locale and Company understood.
    ana = delighted.Person.create(email="ana@example.com", name="Ana García", delay=3600,
                                  properties={"locale": "es-MX", "Company": "Acme",
                                              "plan": "pro", "seats": 12}, **c)
    assert ana["email"] == "ana@example.com" and isinstance(ana["id"], str)
    assert before + 3590 <= ana["survey_scheduled_at"] <= time.time() + 3610
    assert ana["properties"] == {"plan": "pro", "seats": "12"}
    assert rows(db, "SELECT name, company, language FROM contacts WHERE email = ?",
                "ana@example.com") == [("Ana García", "Acme", "es")]
    assert rows(db, "SELECT status, source FROM deliveries WHERE contact_id = ?",
                int(ana["id"])) == [("pending", "delighted")]
    # send=false only upserts; an unsubscribed person is saved, never an error.
    bob = delighted.Person.create(email="bob@example.com", send=False, **c)
    assert bob["survey_scheduled_at"] is None
    delighted.Unsubscribe.create(person_email="dan@example.com", **c)
    dan = delighted.Person.create(email="dan@example.com", **c)
    assert dan["survey_scheduled_at"] is None
    assert rows(db, "SELECT count(*) FROM deliveries") == [(1,)]
    # GET people: pages through the Link header.
    listing = delighted.Person.list(per_page=2, **c)
    people = [p["email"] for p in listing.auto_paging_iter()]
    assert people == ["ana@example.com", "bob@example.com", "dan@example.com"]
    assert listing.iteration_count == 2
    # DELETE people/ADDRESS/survey_requests/pending: the survey is cancelled.
    assert delighted.SurveyRequest.delete_pending(person_email="ana@example.com",
                                                  **c) == {"ok": True}
    assert rows(db, "SELECT status, error FROM deliveries") == [("skipped", "cancelled")]
    # POST survey_responses: history imported, counted, never an alert or a case.
    old = delighted.SurveyResponse.create(person_email="carl@example.com", score=2,
                                          comment="Too slow", created_at=1735689600, **c)
    assert (old["score"], old["comment"], old["created_at"], old["survey_type"]) == \
        (2, "Too slow", 1735689600, "nps")
    delighted.SurveyResponse.create(person=bob["id"], score=10, comment="Love it", **c)
    delighted.SurveyResponse.create(person_email="eve@example.com", score=8,
                                    person_properties={"plan": "free"}, **c)
    assert notify.scan(db, config_.load()) == 0
    assert cases.list_cases(db, "balanced") == []
    # GET survey_responses: pages, order, filters, expand.
    every = delighted.SurveyResponse.all(**c)
    assert [r["score"] for r in every] == [2, 10, 8]
    assert [r["score"] for r in delighted.SurveyResponse.all(per_page=1, page=1,
                                                             order="asc", **c)] == [2]
    newest = delighted.SurveyResponse.all(order="desc", per_page=1, expand=["person"], **c)
    assert isinstance(newest[0]["person"], delighted.Person)
    assert newest[0]["person"]["email"] in ("bob@example.com", "eve@example.com")
    carl = delighted.SurveyResponse.all(person_email="carl@example.com", **c)
    assert [(r["score"], r["person_properties"]) for r in carl] == [(2, {})]
    assert delighted.SurveyResponse.all(since=1735689601, until=1735689700, **c) == []
    assert [r["id"] for r in delighted.SurveyResponse.all(updated_since=int(before) - 60,
                                                          order="asc:updated_at", **c)] \
        == [r["id"] for r in every]
    # GET metrics
    assert dict(delighted.Metrics.retrieve(**c)) == {
        "nps": 0, "promoter_count": 1, "promoter_percent": 33.3, "passive_count": 1,
        "passive_percent": 33.3, "detractor_count": 1, "detractor_percent": 33.3,
        "response_count": 3}
    assert delighted.Metrics.retrieve(since=1735689500, until=1735689700, **c)[
        "detractor_count"] == 1
    # GET unsubscribes, GET bounces
    assert [u["email"] for u in delighted.Unsubscribe.all(**c)] == ["dan@example.com"]
    with db_.write(db) as conn:
        conn.execute("UPDATE contacts SET suppressed_at = '2026-01-02 03:04:05',"
                     " suppressed_reason = 'bounce: Permanent/General'"
                     " WHERE email = 'eve@example.com'")
    assert [(b["email"], b["bounced_at"]) for b in delighted.Bounce.all(**c)] == [
        ("eve@example.com", 1767323045)]
    # DELETE people/email:ADDRESS: the person is erased, the score stays counted.
    assert delighted.Person.delete(email="carl@example.com", **c) == {"ok": True}
    assert rows(db, "SELECT count(*) FROM contacts WHERE email = 'carl@example.com'") == [(0,)]
    assert delighted.Metrics.retrieve(**c)["response_count"] == 3
    # Paths work with .json too.
    assert client.request_json("get", "metrics.json")["response_count"] == 3


def test_errors_as_delighted_gave_them(client, live_server, runner, campaign):
    with pytest.raises(ResourceValidationError) as raised:
        delighted.Person.create(email="not an address", client=client)
    body = json.loads(raised.value.response.body)
    assert body["status"] == 422 and body["errors"][0]["field"] == "email"
    with pytest.raises(ResourceValidationError) as raised:
        delighted.SurveyResponse.create(person_email="a@example.com", score=11, client=client)
    assert json.loads(raised.value.response.body)["errors"][0]["field"] == "score"
    wrong = delighted.Client(api_key="sm_wrong", api_base_url=client.api_base_url)
    with pytest.raises(AuthenticationError) as raised:
        delighted.Metrics.retrieve(client=wrong)
    assert json.loads(raised.value.response.body) == {
        "status": 401, "message": "this API key is not valid: it was revoked, or mistyped"}
    unscoped = delighted.Client(api_key=make_key(runner, None),
                                api_base_url=client.api_base_url)
    with pytest.raises(GeneralAPIError) as raised:
        delighted.Metrics.retrieve(client=unscoped)
    assert raised.value.response.status_code == 403


@pytest.fixture
def tight_limit(monkeypatch, settings):
    monkeypatch.setenv("SURVEY_API_RATE_LIMIT", "3 per minute")


def test_the_rate_limit_answers_429_with_retry_after(tight_limit, client):
    # Each of gunicorn's two workers counts its own budget: 3 + 3, then the 7th is refused
    # whichever worker takes it.
    with pytest.raises(TooManyRequestsError) as raised:
        for _ in range(7):
            delighted.Metrics.retrieve(client=client)
    assert 0 < raised.value.retry_after <= 60


# Without the client: what a hand-written integration might send ----------------------


@pytest.fixture
def app_client(db, runner, campaign):
    return create_app({"TESTING": True, "RATELIMIT_ENABLED": False}).test_client(), \
        make_key(runner, campaign)


def basic(key: str, colon: bool) -> dict:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(
        (key + (":" if colon else "")).encode()).decode()}


@pytest.mark.parametrize("colon", [True, False])
def test_the_key_works_with_and_without_a_colon(app_client, colon):
    client, key = app_client
    reply = client.get("/delighted/v1/metrics", headers=basic(key, colon))
    assert reply.status_code == 200
    assert reply.json["response_count"] == 0


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer x"},
                                     {"Authorization": "Basic !!!"}])
def test_no_key_is_401(app_client, headers):
    client, _ = app_client
    reply = client.get("/delighted/v1/people", headers=headers)
    assert reply.status_code == 401
    assert reply.json == {"status": 401,
                          "message": "send your API key as the HTTP Basic user name"}
    assert reply.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize("body, field", [
    ({"name": "No email"}, "email"),
    ({"email": "a@example.com", "delay": -5}, "delay"),
    ({"email": "a@example.com", "properties": ["a"]}, "properties"),
    ({"email": "a@example.com", "name": "A\nBcc: x@evil.test"}, "name"),
])
def test_a_bad_person_is_422_naming_the_field(app_client, body, field):
    client, key = app_client
    reply = client.post("/delighted/v1/people.json", json=body, headers=basic(key, False))
    assert reply.status_code == 422
    assert reply.json["errors"][0]["field"] == field
    assert reply.json["status"] == 422


def test_a_form_body_works_too(app_client, db):
    client, key = app_client
    reply = client.post("/delighted/v1/people", data={"email": "f@example.com", "send": "false"},
                        headers=basic(key, False))
    assert reply.status_code == 200
    assert reply.json["survey_scheduled_at"] is None


@pytest.mark.parametrize("query, field", [
    ("per_page=101", "per_page"), ("page=0", "page"), ("order=sideways", "order"),
    ("since=yesterday", "since"), ("updated_until=-1", "updated_until"),
])
def test_bad_parameters_are_422_naming_them(app_client, query, field):
    client, key = app_client
    reply = client.get(f"/delighted/v1/survey_responses?{query}", headers=basic(key, False))
    assert reply.status_code == 422
    assert reply.json["errors"][0]["field"] == field


def test_deleting_an_unknown_person_is_404(app_client):
    client, key = app_client
    reply = client.delete("/delighted/v1/people/email:nobody@example.com",
                          headers=basic(key, False))
    assert reply.status_code == 404
    assert reply.json["status"] == 404


def test_an_erased_person_s_response_still_counts_without_their_address(app_client):
    client, key = app_client
    auth = basic(key, False)
    made = client.post("/delighted/v1/survey_responses.json", headers=auth,
                       json={"person_email": "gone@example.com", "score": 3,
                             "comment": "Gone soon", "created_at": 1735689600})
    assert made.status_code == 201, made.json
    assert client.delete("/delighted/v1/people/email:gone@example.com",
                         headers=auth).status_code == 202
    listed = client.get("/delighted/v1/survey_responses?expand[]=person", headers=auth).json
    assert [(r["score"], r["comment"], r["person"]["email"], r["person"]["name"])
            for r in listed] == [(3, None, None, None)]
    assert client.get("/delighted/v1/metrics", headers=auth).json["detractor_count"] == 1
    assert client.get("/delighted/v1/people", headers=auth).json == []
