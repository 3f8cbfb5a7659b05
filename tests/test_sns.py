"""POST /hooks/ses: SNS notifications signed with a certificate made here, verified by the app."""

from __future__ import annotations

import base64
import json

import pytest
from certs import pem, self_signed
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from landing import create_app
from survey_mailer.sns import SIGNED_FIELDS

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-events"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem"
SUBSCRIBE_URL = ("https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription"
                 "&TopicArn=" + TOPIC + "&Token=tok")


@pytest.fixture(scope="module")
def signing():
    return self_signed("sns.amazonaws.com")


@pytest.fixture
def fetched():
    return []


@pytest.fixture
def hook_app(settings, db, signing, fetched, monkeypatch):
    monkeypatch.setenv("SURVEY_SNS_TOPIC_ARNS", f"{TOPIC}, arn:aws:sns:eu-west-1:1:other")
    app = create_app({"TESTING": True, "RATELIMIT_ENABLED": False})

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return pem(signing[1]) if url == CERT_URL else b"<ConfirmSubscriptionResponse/>"

    app.extensions["sns_fetch"] = fetch
    return app


@pytest.fixture
def hook(hook_app):
    client = hook_app.test_client()

    def post(message: dict | str):
        body = message if isinstance(message, str) else json.dumps(message)
        return client.post("/hooks/ses", data=body,
                           headers={"Content-Type": "text/plain; charset=UTF-8"})

    return post


def sign(message: dict, key, version: str = "1") -> dict:
    message = {"SignatureVersion": version, "SigningCertURL": CERT_URL, **message}
    canonical = "".join(f"{f}\n{message[f]}\n" for f in SIGNED_FIELDS[message["Type"]]
                        if f in message)
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = key.sign(canonical.encode(), padding.PKCS1v15(), algorithm)
    message["Signature"] = base64.b64encode(signature).decode()
    return message


def notification(event: dict, message_id: str = "m-1", topic: str = TOPIC) -> dict:
    return {"Type": "Notification", "MessageId": message_id, "TopicArn": topic,
            "Message": json.dumps(event), "Timestamp": "2026-11-23T05:00:00.000Z"}


def bounce(address: str, bounce_type: str = "Permanent") -> dict:
    return {"notificationType": "Bounce",
            "bounce": {"bounceType": bounce_type, "bounceSubType": "General",
                       "bouncedRecipients": [{"emailAddress": address}]},
            "mail": {"messageId": "ses-1", "tags": {"delivery": ["1"]}}}


def complaint(address: str) -> dict:
    return {"eventType": "Complaint",
            "complaint": {"complainedRecipients": [{"emailAddress": address}],
                          "complaintFeedbackType": "abuse"},
            "mail": {"messageId": "ses-2"}}


def suppressed(db) -> dict[str, str]:
    return dict(db.execute("SELECT email, suppressed_reason FROM contacts "
                           "WHERE suppressed_at IS NOT NULL").fetchall())


@pytest.fixture
def contacts(runner, contacts_csv):
    assert runner("contacts", "import", str(contacts_csv)).exit_code == 0


@pytest.mark.parametrize("version", ["1", "2"])
def test_permanent_bounce_suppresses_once(hook, db, signing, contacts, version):
    message = sign(notification(bounce("Bob@Example.com")), signing[0], version)
    response = hook(message)
    assert response.status_code == 200
    assert response.json == {"status": "recorded", "suppressed": ["Bob@Example.com"]}
    assert suppressed(db) == {"bob@example.com": "bounce: Permanent/General"}
    again = hook(message)  # SNS redelivers: recorded once
    assert again.json == {"status": "duplicate", "suppressed": []}
    rows = db.execute("SELECT sns_message_id, event_type, delivery_id FROM ses_events")
    assert [tuple(r) for r in rows] == [("m-1", "Bounce", 1)]


def test_transient_bounce_is_recorded_but_suppresses_nobody(hook, db, signing, contacts):
    response = hook(sign(notification(bounce("bob@example.com", "Transient")), signing[0]))
    assert response.json == {"status": "recorded", "suppressed": []}
    assert suppressed(db) == {}


def test_complaint_suppresses_and_the_sender_skips_them(hook, db, signing, contacts, runner,
                                                        settings):
    response = hook(sign(notification(complaint("ana@example.com"), "m-2"), signing[0], "2"))
    assert response.json == {"status": "recorded", "suppressed": ["ana@example.com"]}
    assert suppressed(db) == {"ana@example.com": "complaint: abuse"}
    result = runner("campaign", "create", "--name", "Q", "--subject", "S",
                    "--sender", "nps@acme.test")
    result = runner("campaign", "send", result.output.splitlines()[-1])
    assert result.output == "3 sent, 0 failed, 0 skipped, 0 left to send\n"


def test_subscription_confirmation_fetches_the_subscribe_url(hook, signing, fetched):
    message = sign({"Type": "SubscriptionConfirmation", "MessageId": "m-3", "Token": "tok",
                    "TopicArn": TOPIC, "Message": "You have chosen to subscribe...",
                    "SubscribeURL": SUBSCRIBE_URL,
                    "Timestamp": "2026-11-23T05:00:00.000Z"}, signing[0])
    response = hook(message)
    assert response.status_code == 200
    assert response.json == {"status": "subscribed", "topic": TOPIC}
    assert fetched == [CERT_URL, SUBSCRIBE_URL]


def test_bad_signature_is_refused_and_changes_nothing(hook, db, signing, contacts):
    message = sign(notification(bounce("bob@example.com")), signing[0])
    message["Message"] = json.dumps(bounce("ana@example.com"))  # tampered after signing
    response = hook(message)
    assert response.status_code == 403
    assert response.json == {"error": "the signature does not match the message"}
    assert suppressed(db) == {}
    assert db.execute("SELECT count(*) FROM ses_events").fetchone()[0] == 0


def test_signed_by_another_key_is_refused(hook, db, contacts):
    other_key, _ = self_signed("attacker.example")
    response = hook(sign(notification(bounce("bob@example.com")), other_key))
    assert response.status_code == 403
    assert suppressed(db) == {}


@pytest.mark.parametrize("url", [
    "https://attacker.example/cert.pem",
    "http://sns.eu-west-1.amazonaws.com/cert.pem",
    "https://sns.eu-west-1.amazonaws.com.attacker.example/cert.pem",
    "https://sns.eu-west-1.amazonaws.com:8443/cert.pem",
])
def test_certificate_url_off_sns_is_refused_before_any_fetch(hook, db, signing, fetched,
                                                             contacts, url):
    message = sign(notification(bounce("bob@example.com")), signing[0])
    message["SigningCertURL"] = url
    response = hook(message)
    assert response.status_code == 400
    assert response.json == {"error": f"certificate URL {url!r} is not an "
                                      f"https://sns.<region>.amazonaws.com address"}
    assert fetched == []
    assert suppressed(db) == {}


def test_unknown_topic_is_forbidden(hook, db, signing, contacts):
    other = "arn:aws:sns:eu-west-1:999999999999:someone-else"
    response = hook(sign(notification(bounce("bob@example.com"), topic=other), signing[0]))
    assert response.status_code == 403
    assert response.json == {"error": f"topic {other!r} is not in SURVEY_SNS_TOPIC_ARNS"}
    assert suppressed(db) == {}


def test_no_topic_configured_refuses_everything(settings, db, signing, monkeypatch):
    app = create_app({"TESTING": True})
    app.extensions["sns_fetch"] = lambda url: pem(signing[1])
    response = app.test_client().post(
        "/hooks/ses", data=json.dumps(sign(notification(bounce("b@example.com")), signing[0])))
    assert response.status_code == 403
    assert response.json == {"error": "no SNS topic is allowed: set SURVEY_SNS_TOPIC_ARNS to "
                                      "the ARNs of the SES notification topics"}


@pytest.mark.parametrize("body, status, error", [
    ("not json", 400, "the body is not JSON"),
    ("[1, 2]", 400, "the body is not a JSON object"),
    ('{"Type": "Party"}', 400, "unknown SNS message type 'Party'"),
    (json.dumps({"Type": "Notification", "TopicArn": TOPIC, "SignatureVersion": "3"}), 400,
     "unsupported SignatureVersion '3'"),
    (json.dumps({"Type": "Notification", "TopicArn": TOPIC, "SignatureVersion": "1",
                 "SigningCertURL": CERT_URL, "MessageId": "x", "Timestamp": "t",
                 "Type2": 1}), 400, "the SNS message has no Message (or not as text)"),
    (json.dumps({"Type": "Notification", "TopicArn": TOPIC, "SignatureVersion": "1",
                 "SigningCertURL": CERT_URL, "MessageId": "x", "Timestamp": "t",
                 "Message": "{}", "Signature": "%%%"}), 400, "the signature is not base64"),
])
def test_bad_input_is_a_4xx_json_answer_never_a_500(hook, body, status, error):
    response = hook(body)
    assert response.status_code == status
    assert response.json == {"error": error}


def test_the_hook_needs_no_csrf_token(settings, db, signing, monkeypatch, contacts):
    monkeypatch.setenv("SURVEY_SNS_TOPIC_ARNS", TOPIC)
    app = create_app({"RATELIMIT_ENABLED": False})  # CSRF on, as in production
    app.extensions["sns_fetch"] = lambda url: pem(signing[1])
    response = app.test_client().post(
        "/hooks/ses", data=json.dumps(sign(notification(bounce("bob@example.com")),
                                           signing[0])))
    assert response.status_code == 200


def test_subscribe_url_off_sns_is_never_fetched(hook, signing, fetched):
    url = "https://attacker.example/?Action=ConfirmSubscription"
    message = sign({"Type": "SubscriptionConfirmation", "MessageId": "m-4", "Token": "tok",
                    "TopicArn": TOPIC, "Message": "You have chosen to subscribe...",
                    "SubscribeURL": url, "Timestamp": "2026-11-23T05:00:00.000Z"}, signing[0])
    response = hook(message)
    assert response.status_code == 400
    assert response.json == {"error": f"SubscribeURL {url!r} is not an "
                                      f"https://sns.<region>.amazonaws.com address"}
    assert fetched == [CERT_URL]  # the certificate, to check the signature; nothing else
