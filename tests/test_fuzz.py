"""Odd input never reaches a 500: a list of known cases, then hypothesis on every route."""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import re
import zlib
from urllib.parse import quote, urlencode

import pytest
from certs import pem, self_signed
from conftest import csrf_token
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from staff_support import EMAIL, PASSWORD, answer, deliveries, login

from landing import create_app, openapi
from survey_mailer import api_keys, branding, humans, users
from survey_mailer.sns import SIGNED_FIELDS

HUGE = "9" * 23  # more than SQLite's largest integer
ODD_SCORES = ["²", "٥", "５", "01", "𝟓", " 5", "11", "-1", "five", ""]


class World:
    """The app with four delivered contacts (Ana and Chloé answered) and an API key."""

    def __init__(self, app, db, campaign_id: int):
        self.app, self.db, self.campaign = app, db, campaign_id
        self.links = app.extensions["links"]
        self.deliveries = deliveries(db, campaign_id)
        self.answer()
        self.api_key = api_keys.create_api_key(db, "fuzz")
        self.logo_digest = branding.set_logo(db, campaign_id, base64.b64decode(
            "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5"
            "ErkJggg=="))
        self.delighted_auth = "Basic " + base64.b64encode(api_keys.create_api_key(
            db, "fuzz-delighted", campaign_id).encode()).decode()
        self.public = app.test_client()
        # A visitor who has opened a form: a session holding a CSRF token, no login.
        self._visitor = app.test_client()
        self.visitor_csrf = csrf_token(self._visitor.get("/staff/login").text)
        self._visitor_session = self._visitor.get_cookie("session").value
        self._staff = self._staff_token = None
        self.statuses: dict[str, set[int]] = collections.defaultdict(set)
        self._version = None

    def snapshot(self) -> dict[str, tuple[int, str]]:
        """Return snapshot(db), taken again only once another connection has committed."""
        # PRAGMA data_version changes when another connection (the app's) commits.
        version = self.db.execute("PRAGMA data_version").fetchone()[0]
        if version != self._version:
            self._snapshot, self._version = snapshot(self.db), version
        return self._snapshot

    def answer(self) -> None:
        """Answer as Ana (a detractor, a case) and Chloé (a promoter quoted with consent)."""
        self._version = None  # our own commits do not change data_version
        self.responses = {
            "ana": answer(self.db, self.deliveries["ana@example.com"], 3, "Too slow",
                          contact_ok=True),
            "chloe": answer(self.db, self.deliveries["chloe@example.com"], 10, "Love it",
                            display_name="Chloé M.", testimonial_consent=True)}

    def _token(self) -> str:
        return self.db.execute("SELECT session_token FROM staff_users WHERE email = ?",
                               [EMAIL]).fetchone()[0]

    @property
    def staff(self):
        """A test client logged in as staff, whatever the last request did (a logout too)."""
        if self._staff is None:
            users.add_user(self.db, EMAIL, PASSWORD)  # only now: hashing takes a while
            self._staff = self.app.test_client()
            assert login(self._staff).status_code == 302
            self.csrf = csrf_token(self._staff.get("/staff/").text)
            self._session = self._staff.get_cookie("session").value  # with the CSRF token
            self._staff_token = self._token()
        elif self._token() != self._staff_token:  # logged out: put the session's token back
            self.db.execute("UPDATE staff_users SET session_token = ? WHERE email = ?",
                            [self._staff_token, EMAIL])
            self.db.conn.commit()
            self._version = None  # our own commits do not change data_version
        self._staff.set_cookie("session", self._session)
        return self._staff

    @property
    def visitor(self):
        """A test client with a CSRF token in its session and no login."""
        self._visitor.set_cookie("session", self._visitor_session)
        return self._visitor


@pytest.fixture
def world(app, db, sent_campaign):
    return World(app, db, sent_campaign)


# Written by a request whatever its answer, on purpose: when an API key was last used
# (a key sending bad requests is in use all the same).
BOOKKEEPING = {("api_keys", "last_used_at")}


def snapshot(db) -> dict[str, tuple[int, str]]:
    """Return every table's row count and a hash of its rows, with the click log folded.

    The accounts report's kept totals (account_stats, its state and its marks) are left
    out: any read brings them up to date, as folding does the click log.
    """
    humans.fold(db)  # folding is reading: pending clicks are folded before we compare
    tables = [r[0] for r in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        " AND name NOT LIKE 'account_%'")]
    result = {}
    for table in tables:
        columns = ", ".join(f'"{c.name}"' for c in db[table].columns
                            if (table, c.name) not in BOOKKEEPING)
        rows = db.execute(f'SELECT {columns} FROM "{table}" ORDER BY rowid').fetchall()
        result[table] = (len(rows), hashlib.sha256(repr([tuple(r) for r in rows]).encode())
                         .hexdigest())
    return result


# The cases of issue 10, item 6 ---------------------------------------------------------------


def _score_link(w, score):
    token = w.links.token("score", w.deliveries["bob@example.com"])
    return w.public.get(f"/r/{token}/{score}")


def _landing_form(w, score):
    token = w.links.token("score", w.deliveries["bob@example.com"])
    page = w.public.get(f"/comment/{token}")
    return w.public.post(f"/comment/{token}", data={
        "csrf_token": csrf_token(page.text), "score": score, "comment": "odd score"})


def _staff(path):
    def send(w, _):
        return w.staff.get(path)

    send.staff = True
    return send


def _staff_post(path):
    def send(w, _):
        client = w.staff
        return client.post(path, data={"csrf_token": w.csrf, "status": "resolved"})

    send.staff = True
    return send


def _restore_from(referrer):
    def send(w, _):
        client = w.staff
        return client.post(f"/staff/responses/{w.responses['ana']}/restore",
                           data={"csrf_token": w.csrf}, headers={"Referer": referrer})

    send.staff = True
    return send


def _api(path):
    return lambda w, _: w.public.get(path, headers={"Authorization": f"Bearer {w.api_key}"})


def _deep_json(depth):
    return lambda w, _: w.public.post("/hooks/ses", data="[" * depth + "]" * depth,
                                         headers={"Content-Type": "text/plain"})


ODD = [
    *[pytest.param(_score_link, s, 404, "That score is not on the scale", id=f"r-{s!r}")
      for s in ODD_SCORES if s],
    *[pytest.param(_landing_form, s, 400, "Choose a score from 0 to 10.", id=f"form-{s!r}")
      for s in ODD_SCORES],
    pytest.param(_staff(f"/staff/?campaign={HUGE}"), None, 200, None, id="dashboard-campaign"),
    pytest.param(_staff(f"/staff/followups?campaign={HUGE}&assignee={HUGE}"), None, 200,
                 None, id="followups-campaign-assignee"),
    pytest.param(_staff(f"/staff/responses?campaign={HUGE}&page={HUGE}"), None, 200, None,
                 id="responses-campaign-page"),
    pytest.param(_staff(f"/staff/responses?page={'9' * 18}"), None, 200, None,
                 id="responses-page-18-digits"),
    pytest.param(_staff(f"/staff/responses?page={'9' * 5000}&campaign={'9' * 5000}"), None,
                 200, None, id="responses-5000-digits"),
    pytest.param(_staff("/staff/responses?score=٥&since=２０２６-01-01"), None, 200,
                 None, id="responses-odd-score-date"),
    pytest.param(_staff(f"/staff/responses.csv?campaign={HUGE}&page={HUGE}"), None, 200,
                 None, id="csv-campaign"),
    pytest.param(_staff(f"/staff/followups/{HUGE}"), None, 404, "Page not found",
                 id="case-huge-id"),
    pytest.param(_staff("/staff/followups/٥"), None, 404, "Page not found", id="case-odd-id"),
    pytest.param(_staff_post(f"/staff/followups/{HUGE}"), None, 404, "Page not found",
                 id="case-post-huge-id"),
    pytest.param(_staff_post(f"/staff/testimonials/{HUGE}"), None, 404, "Page not found",
                 id="testimonial-huge-id"),
    pytest.param(_staff_post(f"/staff/responses/{HUGE}/restore"), None, 404,
                 "Page not found", id="restore-huge-id"),
    pytest.param(_staff("/staff/login?next=//["), None, 302, None, id="login-next-not-a-url"),
    pytest.param(_restore_from("http://["), None, 303, None, id="restore-referer-not-a-url"),
    pytest.param(_api(f"/api/v1/stats?campaign={'9' * 400}"), None, 400,
                 '"error": "campaign \\"' + "9" * 60 + '...\\" is not a campaign id"',
                 id="api-400-digits"),
    pytest.param(_api(f"/api/v1/stats?campaign={'9' * 5000}"), None, 400,
                 "is not a campaign id", id="api-5000-digits"),
    pytest.param(_api("/api/v1/stats?campaign=٥"), None, 400, "is not a campaign id",
                 id="api-odd-digit"),
    pytest.param(_deep_json(5000), None, 400, '"error": "the body is not JSON"',
                 id="ses-5000-deep"),
    pytest.param(_deep_json(100_000), None, 400, '"error": "the body is not JSON"',
                 id="ses-100000-deep"),
]


@pytest.mark.parametrize(("send", "value", "status", "text"), ODD)
def test_odd_input_gets_a_friendly_4xx_and_changes_nothing(world, db, send, value, status,
                                                           text):
    if getattr(send, "staff", False):
        _ = world.staff  # log in before the snapshot: the login is not the request under test
    before = snapshot(db)
    response = send(world, value)
    assert response.status_code == status, response.text[:500]
    if status in (302, 303):  # back to the workspace, never to the odd address
        assert response.headers["Location"].startswith("/staff/")
    if text:
        assert text in response.text
    if status >= 400:
        assert snapshot(db) == before
    assert "Traceback" not in response.text


# Hypothesis on every route ------------------------------------------------------------------

EXAMPLES_PER_ROUTE = 80
SNS_EXAMPLES = 150
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-events"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem"
SUBSCRIBE_URL = f"https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={TOPIC}"
OTHER_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE"]
ARGS = ["campaign", "assignee", "page", "status", "by", "q", "company", "segment", "score",
        "since", "until", "filtered", "next", "limit", "cursor"]
DELIGHTED_ARGS = ["per_page", "page", "since", "until", "updated_since", "updated_until",
                  "order", "expand[]", "person_email", "page_info"]
FIELDS = ["score", "comment", "contact_ok", "display_name", "testimonial_consent", "email",
          "password", "status", "assignee", "note", "action", "List-Unsubscribe", "confirm",
          "event"]
VALUES = [*map(str, range(11)), "y", "new", "contacted", "resolved", "approve", "reject",
          "rename", "One-Click", "yes", "none", "company", "language", "campaign",
          "attribute:plan", "detractor", "promoter", "2026-01-01", "1", EMAIL, PASSWORD, ""]
# Addresses for ?next= and Referer: local, elsewhere, and ones urlsplit() refuses.
URLS = ["/staff/followups", "//evil.test/staff/", "http://localhost/staff/", "//[",
        "http://[::1", "/staff/\\evil", "javascript:alert(1)", "http://localhost:99999/staff/"]
CONTENT_TYPES = ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                 "application/json", "text/plain; charset=UTF-8", "text/plain; charset=latin-1",
                 "application/json; charset=utf-16",
                 "application/x-www-form-urlencoded; charset=utf-16"]
MAX_BODY = 64 * 1024

header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255,
                                    exclude_characters="\x7f"), max_size=60)
# Ids and pages at SQLite's edges (2**63 - 1 fits, 2**63 does not), and past int()'s 4300
# digits; then any integer.
numbers = st.one_of(
    st.sampled_from([str(2**63 - 1), "1", str(2**63), "1" + "0" * 17, "0", "-1", "9" * 23,
                     "9" * 400, "9" * 5000]),
    st.integers(-10**30, 10**30).map(str))
# Every character, lone surrogates too (JSON can carry them as \ud800 escapes).
# (Drawn from a list: st.text would weigh the 2,048 surrogates against a million others.)
any_text = st.lists(st.characters(codec=None) | st.sampled_from(["\ud800", "\udc80", "\udfff"]),
                    max_size=30).map("".join)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12)


@pytest.fixture(scope="module")
def signing():
    return self_signed("sns.amazonaws.com")


@pytest.fixture
def fuzz_world(settings, db, sent_campaign, signing, monkeypatch):
    """The World, with SNS messages accepted from one topic signed by a key made here."""
    monkeypatch.setenv("SURVEY_SNS_TOPIC_ARNS", TOPIC)
    monkeypatch.setenv("SURVEY_SUPPORT_EMAIL", "support@acme.test")
    app = create_app({"TESTING": True, "RATELIMIT_ENABLED": False})
    app.extensions["sns_fetch"] = lambda url: (
        pem(signing[1]) if url == CERT_URL else b"<ConfirmSubscriptionResponse/>")
    world = World(app, db, sent_campaign)
    world.signing_key = signing[0]
    return world


def _tampered(token: str, i: int, char: str) -> str:
    i %= len(token)
    return token[:i] + char + token[i + 1:]


PURPOSES = {"survey.unsubscribe": "unsubscribe", "survey.beacon": "beacon",
            "survey.seen": "seen"}  # else "score"


def _valid(w: World, name: str, endpoint: str) -> list[str]:
    """Return values of a route variable that reach the view: real tokens, ids, scores."""
    if name == "token":
        purpose = PURPOSES.get(endpoint, "score")
        return [w.links.token(purpose, d) for d in w.deliveries.values()]
    if name == "response_id":
        return [str(i) for i in w.responses.values()]
    if name == "score":
        return [*map(str, range(11)), "hp"]
    if name == "filename":
        return ["style.css", "human.js", "../README.md", "..%2fwsgi.py", "x/../style.css"]
    if name == "action":
        return ["pause", "resume"]
    if name == "digest":
        return [w.logo_digest]
    if name == "ext":
        return ["png"]
    if name == "colour":
        return ["1a7f37", "ffff00"]
    if name == "campaign_id":
        return [str(w.campaign)]
    if name == "identifier":  # Delighted's people: nothing erased by an aimed request
        return ["nobody@example.com/survey_requests/pending", "email:nobody@example.com",
                "bob@example.com/survey_requests/pending.json"]
    if name == "delivery_id":  # those the API has scheduled (first), and sent ones
        return [str(row[0]) for row in w.db.execute("SELECT id FROM deliveries ORDER BY id DESC")]
    return ["1"]


def _tokens(w: World) -> list[str]:
    """Return tokens of every purpose, for deliveries that exist and one that does not."""
    return [w.links.token(purpose, d) for purpose in ("score", "unsubscribe", "beacon", "seen")
            for d in (*w.deliveries.values(), 10**6)]


def _segment(w: World, name: str, endpoint: str, data, aimed: bool) -> str:
    """Draw one path segment: a valid one when aimed, else tampered, odd or random too."""
    valid = st.sampled_from(_valid(w, name, endpoint))
    if aimed:
        return data.draw(valid)
    tokens = st.sampled_from(_tokens(w))
    return data.draw(st.one_of(
        tokens, st.builds(_tampered, tokens, st.integers(0, 200), st.sampled_from("A0._-~é")),
        valid, st.sampled_from(ODD_SCORES), numbers, any_text,
        st.binary(min_size=1, max_size=20),  # percent-encoded below: latin-1, UTF-16, any
    ))


def _path(rule, w: World, data, aimed: bool) -> tuple[str, dict[str, str]]:
    """Fill the rule's variables with drawn segments, percent-encoded; return both."""
    segments = {}

    def fill(match):
        segments[match.group(1)] = _segment(w, match.group(1), rule.endpoint, data, aimed)
        value = segments[match.group(1)]
        return quote(value, safe="", **({} if isinstance(value, bytes) else {
            "errors": "surrogatepass"}))

    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", fill, rule.rule), segments


def _errors(encoding: str) -> str:
    return "replace" if encoding == "latin-1" else "surrogatepass"


def _encode(text: str, encoding: str) -> bytes:
    return text.encode(encoding, _errors(encoding))


def _event(w: World):
    """Return a strategy of SES events: the shapes SES sends, with any value anywhere."""
    address = st.sampled_from([*w.deliveries, "nobody@example.com"]) | any_text
    recipients = st.lists(st.fixed_dictionaries({"emailAddress": address}) | json_values,
                          max_size=3) | json_values
    return st.fixed_dictionaries({}, optional={
        "notificationType": st.sampled_from(["Bounce", "Complaint", "Delivery"]) | json_values,
        "eventType": st.sampled_from(["Bounce", "Complaint"]) | json_values,
        "bounce": st.fixed_dictionaries({}, optional={
            "bounceType": st.sampled_from(["Permanent", "Transient"]) | json_values,
            "bounceSubType": json_values, "bouncedRecipients": recipients}) | json_values,
        "complaint": st.fixed_dictionaries({}, optional={
            "complaintFeedbackType": json_values, "complainedRecipients": recipients})
        | json_values,
        "mail": st.fixed_dictionaries({}, optional={"tags": st.fixed_dictionaries(
            {}, optional={"delivery": st.lists(numbers | json_values, max_size=2)
                          | json_values}) | json_values}) | json_values,
    }) | json_values


def _signed_sns(w: World, data) -> bytes:
    """Draw an SNS message signed by the topic's key; sometimes a field changed after."""
    text = st.text(max_size=20) | any_text
    message = data.draw(st.fixed_dictionaries({
        "Type": st.sampled_from(["Notification", "Notification", "SubscriptionConfirmation",
                                 "UnsubscribeConfirmation"]),
        "MessageId": text, "TopicArn": st.just(TOPIC),
        "Message": st.builds(json.dumps, _event(w), ensure_ascii=st.sampled_from([True, False]))
        | any_text,
        "Timestamp": st.just("2026-11-23T05:00:00.000Z") | text,
        "SignatureVersion": st.sampled_from(["1", "2"]),
        "SigningCertURL": st.just(CERT_URL), "Token": text,
        "SubscribeURL": st.just(SUBSCRIBE_URL),
    }, optional={"Subject": text}))
    fields = SIGNED_FIELDS[message["Type"]]
    canonical = "".join(f"{f}\n{message[f]}\n" for f in fields if f in message)
    algorithm = hashes.SHA1() if message["SignatureVersion"] == "1" else hashes.SHA256()
    message["Signature"] = base64.b64encode(w.signing_key.sign(
        canonical.encode("utf-8", "surrogatepass"), padding.PKCS1v15(), algorithm)).decode()
    # Hypothesis leans to the first of a list: most messages stay as signed.
    if data.draw(st.sampled_from(["as signed"] * 3 + ["tampered"])) == "tampered":
        message[data.draw(st.sampled_from(sorted(message)))] = data.draw(json_values)
    return json.dumps(message, ensure_ascii=data.draw(st.sampled_from([True, False]))).encode(
        "utf-8", "surrogatepass")


def _form(w: World, endpoint: str, segments: dict[str, str]):
    """Return a strategy of the fields a route's own form has, with any values."""
    value = st.sampled_from(VALUES) | any_text | numbers
    score = st.sampled_from([*map(str, range(11)), *ODD_SCORES])
    forms = {
        "survey.feedback": {"score": score, "comment": value, "contact_ok": value},
        "survey.comment": {"score": score, "comment": value},
        "survey.testimonial": {"score": score, "comment": value, "display_name": value,
                               "testimonial_consent": value},
        "survey.unsubscribe": {"List-Unsubscribe": st.just("One-Click") | value,
                               "confirm": value},
        "survey.beacon": {"event": st.sampled_from(["pointerdown", "keydown"]) | value},
        "staff.login": {"email": st.just(EMAIL) | value, "password": st.just(PASSWORD) | value},
        "staff.schedule_campaign": {
            "action": st.sampled_from(["now", "at", "every", "off"]) | value,
            "at": st.sampled_from(["2099-01-01T09:00", "2001-01-01 09:00"]) | value,
            "every": st.sampled_from(["month", "quarter", "year"]) | value},
        "staff.test_campaign": {"language": st.sampled_from(["en", "es", "xx"]) | value},
        "staff.case": {"status": st.sampled_from(["new", "contacted", "resolved"]) | value,
                       "assignee": st.sampled_from(["", "1"]) | value, "note": value},
    }
    if endpoint == "staff.moderate":  # a testimonial's fields are named after its id
        prefix = f"t{segments.get('response_id')}-"
        return st.fixed_dictionaries(
            {prefix + "action": st.sampled_from(["approve", "reject", "rename"]) | value},
            optional={prefix + "display_name": value})
    return st.fixed_dictionaries({}, optional=forms.get(endpoint, {}))


def _body(w: World, data, rule, segments: dict[str, str], csrf: str | None,
          method: str, aimed: bool) -> tuple[bytes | None, str | None]:
    """Draw a body and its content type: a form, JSON (deep, too), too big, or bytes.

    Aimed at the route, it is the route's own form (with its CSRF token) in UTF-8, or a
    signed SNS message; only the values are drawn.
    """
    kinds = ["none", "form", "json", "deep", "big", "bytes"]
    if aimed:
        kinds = ["sns" if rule.endpoint == "hooks.ses" else
                 "survey" if rule.endpoint == "api.v1.create_survey" else
                 "delighted" if rule.endpoint.startswith("delighted.") and method == "POST" else
                 "form" if method == "POST" else "none"]
    kind = data.draw(st.sampled_from(kinds))
    encoding = "utf-8" if aimed else data.draw(st.sampled_from(["utf-8", "latin-1", "utf-16"]))
    content_type = data.draw(st.sampled_from(CONTENT_TYPES) | header_text)
    if aimed:
        content_type = CONTENT_TYPES[0 if kind == "form" else
                                     2 if kind in ("survey", "delighted") else 3]
    if kind == "none":
        return None, data.draw(st.none() | st.just(content_type))
    if kind == "form":
        fields = data.draw(_form(w, rule.endpoint, segments))  # the route's own fields, and others
        fields.update(data.draw(st.dictionaries(st.sampled_from(FIELDS) | any_text,
                                                st.sampled_from(VALUES) | any_text | numbers,
                                                max_size=3)))
        if csrf and (aimed or data.draw(st.booleans())):
            fields["csrf_token"] = csrf
        if aimed or data.draw(st.booleans()):
            body = urlencode(fields, encoding=encoding, errors=_errors(encoding)).encode()
        else:  # not percent-encoded at all: the raw bytes of that encoding
            body = _encode("&".join(f"{k}={v}" for k, v in fields.items()), encoding)
        return body, content_type
    if kind == "json":
        text = json.dumps(data.draw(json_values),
                          ensure_ascii=data.draw(st.sampled_from([True, False])))
        return _encode(text, encoding), content_type
    if kind == "deep":
        depth = data.draw(st.sampled_from([100, 1000, 5000, 100_000]))
        opener, closer = data.draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        return (opener * depth + "1" + closer * depth).encode(), content_type
    if kind == "big":
        size = data.draw(st.sampled_from([MAX_BODY + 1, 10 * MAX_BODY]))
        return b"comment=" + b"x" * size, content_type
    if kind == "sns":
        return _signed_sns(w, data), content_type
    if kind == "survey":  # POST /api/v1/surveys: its own fields, any values
        value = st.sampled_from(VALUES) | any_text | numbers
        survey = data.draw(st.fixed_dictionaries(
            {"email": st.sampled_from(["new@example.com", EMAIL]) | any_text,
             "campaign": st.just(w.campaign) | numbers},
            optional={"name": value, "language": st.sampled_from(["es", "xx"]) | value,
                      "delay_seconds": numbers, "event": value, "properties": json_values}))
        return json.dumps(survey).encode(), content_type
    if kind == "delighted":  # Delighted's POST routes: their own fields, any values
        value = st.sampled_from(VALUES) | any_text | numbers
        email = (st.sampled_from(["new@example.com", "bob@example.com"]) | any_text
                 | st.builds("p{}@example.com".format, st.integers(0, 10**9)))
        required, optional = {
            "delighted.create_person": (
                {"email": email},
                {"name": value, "delay": numbers, "send": json_values,
                 "properties": json_values}),
            "delighted.create_response": (
                {"person_email": email, "score": st.integers(0, 10) | numbers},
                {"person": value, "comment": value, "created_at": numbers,
                 "person_properties": json_values}),
            "delighted.create_unsubscribe": ({"person_email": email}, {}),
        }[rule.endpoint.removesuffix("_json")]
        body = data.draw(st.fixed_dictionaries(required, optional=optional))
        return json.dumps(body).encode(), content_type
    return data.draw(st.binary(max_size=300)), content_type


def _headers(w: World, data) -> dict[str, str]:
    choices = {
        "Authorization": st.sampled_from([f"Bearer {w.api_key}", "Bearer nope", "Basic Og=="])
        | header_text,
        "Accept-Language": st.sampled_from(["es", "fr;q=0.5, sv", "*", "xx-yy"]) | header_text,
        "Accept": st.sampled_from(["application/json", "text/html", "*/*"]) | header_text,
        "User-Agent": header_text, "Referer": st.sampled_from(URLS) | header_text,
        "X-Forwarded-For": header_text,
        "Sec-Purpose": st.sampled_from(["prefetch", "prefetch;prerender"]) | header_text,
        "If-None-Match": header_text, "Origin": header_text,
    }
    names = data.draw(st.lists(st.sampled_from(sorted(choices)), unique=True, max_size=4))
    headers = {name: data.draw(choices[name]) for name in names}
    if "Authorization" not in headers and data.draw(st.booleans()):
        headers["Authorization"] = f"Bearer {w.api_key}"
    return headers


def check(w: World, endpoint: str, client, method: str, path: str, **request) -> None:
    """Send a request; check it is never a 5xx, and that a 4xx wrote nothing."""
    before = w.snapshot()
    response = client.open(path, method=method, **request)
    status = response.status_code
    w.statuses[endpoint].add(status)
    assert status < 500, f"{method} {path} answered {status}"
    assert b"Traceback" not in response.get_data()
    response.close()  # a static file's, too
    if status >= 400:
        after = w.snapshot()
        if endpoint == "staff.login":  # a failed login is counted, on purpose
            before, after = ({k: v for k, v in d.items() if k != "staff_login_failures"}
                             for d in (before, after))
        assert after == before, f"{method} {path} answered {status} and wrote"


def fuzz_once(w: World, rule, data) -> None:
    """Send one request drawn for a route to it, and check it.

    Half the requests are aimed: valid path segments, the route's own method, form and
    CSRF token, a login for /staff/; only the values are drawn, so every view is reached.
    The others draw everything: method, segments, body, encoding, session.
    """
    aimed = data.draw(st.sampled_from(["aimed", "anything"])) == "aimed"
    path, segments = _path(rule, w, data, aimed)
    methods = st.sampled_from(sorted(rule.methods - {"OPTIONS"}))
    method = data.draw(methods if aimed else methods | st.sampled_from(OTHER_METHODS))
    values = numbers | st.sampled_from([*VALUES, *URLS, str(w.campaign)])
    api = rule.endpoint.startswith("api.v1.")
    names = openapi.query_parameters(rule.rule, method) if aimed and api else \
        DELIGHTED_ARGS if aimed and rule.endpoint.startswith("delighted.") else ARGS
    query = data.draw(st.fixed_dictionaries({}, optional=dict.fromkeys(names, values))
                      if aimed else st.dictionaries(st.sampled_from(ARGS) | any_text,
                                                    values | any_text, max_size=6))
    staff_page = rule.rule.startswith("/staff/") and rule.endpoint != "staff.login"
    who = data.draw(st.just("staff") if aimed and staff_page else
                    st.sampled_from(["visitor", "staff"]) if aimed else
                    st.sampled_from(["visitor", "staff", "public"]))
    client = {"staff": lambda: w.staff, "visitor": lambda: w.visitor,
              "public": lambda: w.public}[who]()
    csrf = {"staff": w.csrf, "visitor": w.visitor_csrf}.get(who)
    body, content_type = _body(w, data, rule, segments, csrf, method, aimed)
    headers = _headers(w, data)
    if content_type is not None:
        headers["Content-Type"] = content_type
    if aimed and api:
        headers["Authorization"] = f"Bearer {w.api_key}"
    if aimed and rule.endpoint.startswith("delighted."):
        headers["Authorization"] = w.delighted_auth
    check(w, rule.endpoint, client, method, path, data=body, headers=headers,
          query_string=urlencode(query, errors="surrogatepass"))


def fuzzed(examples: int):
    """Hypothesis settings for a fuzz run inside a pytest test (one app for every example).

    Each example compares the database before and after its own request, so what earlier
    examples wrote does not matter; each run has a fixed seed, so CI runs the same ones.
    """
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def route_fuzzer(w: World, rule):
    """Return the hypothesis test of one route, with a seed of its own."""
    @fuzzed(EXAMPLES_PER_ROUTE)
    @seed(zlib.crc32(rule.rule.encode()))
    @given(st.data())
    def fuzz(data):
        fuzz_once(w, rule, data)

    return fuzz


@pytest.mark.slow
def test_fuzz_every_route(fuzz_world):
    rules = sorted(fuzz_world.app.url_map.iter_rules(), key=lambda r: r.rule)
    assert len(rules) >= 22  # iterated, so a new route is fuzzed without a change here
    _ = fuzz_world.staff  # logged in, with a CSRF token, before the first example
    for rule in rules:
        fuzz_world.answer()  # as they were: earlier routes' examples may have changed them
        route_fuzzer(fuzz_world, rule)()
    # Every route was reached past its checks at least once, not only refused.
    statuses = fuzz_world.statuses
    reached = {e for e, seen in statuses.items() if any(s < 400 for s in seen)}
    assert reached == {r.endpoint for r in rules}, {e: statuses[e] for e in statuses
                                                    if e not in reached}


@pytest.mark.slow
def test_fuzz_signed_sns_messages(fuzz_world):
    # Only a valid signature reaches the reading of SES events: sign what is drawn.
    @fuzzed(SNS_EXAMPLES)
    @seed(10)
    @given(st.data())
    def fuzz(data):
        check(fuzz_world, "hooks.ses", fuzz_world.public, "POST", "/hooks/ses",
              data=_signed_sns(fuzz_world, data),
              headers={"Content-Type": "text/plain; charset=UTF-8"})

    fuzz()
    assert {200, 400, 403} <= fuzz_world.statuses["hooks.ses"]
