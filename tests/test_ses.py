"""The SES backend with a real boto3 client against moto's server, with and without faults."""

from __future__ import annotations

import email
import email.policy
import os

import boto3
import pytest
from botocore.stub import Stubber
from sesfixtures import (  # noqa: F401 - fixtures used by name
    FaultProxy,
    moto_sent,
    moto_server,
    sent_recipients,
    ses_env,
)

from survey_mailer import config as config_
from survey_mailer.backends import Envelope
from survey_mailer.backends.ses import SESBackend
from survey_mailer.errors import DeliveryError, SendingStopped


def create_campaign(runner) -> int:
    result = runner("campaign", "create", "--name", "Q4", "--subject", "A quick question",
                    "--sender", "Acme <nps@acme.test>")
    return int(result.output.splitlines()[-1])


def statuses(db) -> dict[str, int]:
    return dict(db.execute("SELECT status, count(*) FROM deliveries GROUP BY status"))


@pytest.mark.usefixtures("ses_env")
def test_send_through_moto_with_tags_configuration_set_and_our_own_mime(
        runner, db, contacts_csv, monkeypatch):
    monkeypatch.setenv("SURVEY_SEND_RATE", "50")
    monkeypatch.setenv("SURVEY_SES_CONFIGURATION_SET", "nps-events")
    assert runner("contacts", "import", str(contacts_csv)).exit_code == 0
    campaign_id = create_campaign(runner)
    with FaultProxy(os.environ["AWS_ENDPOINT_URL_SESV2"]) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SESV2", proxy.url)
        result = runner("campaign", "send", str(campaign_id))
    assert result.output == "4 sent, 0 failed, 0 skipped, 0 left to send\n"
    assert sent_recipients() == ["ana@example.com", "bob@example.com", "chloe@example.com",
                                 "sven@example.com"]
    message = email.message_from_string(moto_sent()[0].raw_data, policy=email.policy.default)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Subject"] == "A quick question"
    request = proxy.forwarded[0]
    assert request["ConfigurationSetName"] == "nps-events"
    delivery_id = db.execute("SELECT d.id FROM deliveries d JOIN contacts c ON "
                             "c.id = d.contact_id WHERE c.email = ?",
                             [request["Destination"]["ToAddresses"][0]]).fetchone()[0]
    assert request["EmailTags"] == [
        {"Name": "campaign", "Value": str(campaign_id)},
        {"Name": "delivery", "Value": str(delivery_id)},
        {"Name": "message", "Value": f"c{campaign_id}-d{delivery_id}"},
    ]
    message_ids = {r[0] for r in db.execute("SELECT message_id FROM deliveries")}
    assert message_ids == {m.id for m in moto_sent()}  # SES's ids are kept


@pytest.mark.usefixtures("ses_env")
def test_rate_comes_from_the_account_quota():
    # moto has no sesv2 get_account, so this also covers the fall-back to get_send_quota.
    backend = SESBackend.from_config(config_.load())
    assert backend.rate_limit() == 1.0  # moto's MaxSendRate
    backend.close()


class Stubbed:
    """A backend on a real sesv2 client whose answers are stubbed (no HTTP)."""

    def __init__(self, monkeypatch):
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        self.client = boto3.client("sesv2", region_name="us-east-1")
        self.stubber = Stubber(self.client)
        self.backend = SESBackend(self.client, rounds=2, sleep=lambda s: None)

    def error(self, code, message, status=400, times=1):
        for _ in range(times):
            self.stubber.add_client_error("send_email", service_error_code=code,
                                          service_message=message, http_status_code=status)

    def send(self):
        envelope = Envelope("nps@acme.test", "bob@example.com", "c1-d2", 1, 2)
        with self.stubber:
            return self.backend.send(envelope, b"Subject: x\r\n\r\nbody\r\n")


@pytest.mark.parametrize("code, message, expected", [
    ("AccountSuspendedException", "Account suspended", "the SES account is suspended"),
    ("SendingPausedException", "Sending paused",
     "sending is paused for this account or configuration set"),
    ("LimitExceededException", "Daily message quota exceeded.",
     "the SES daily sending quota is exhausted (Daily message quota exceeded.); "
     "run the send again tomorrow"),
    ("TooManyRequestsException", "Daily message quota exceeded.",
     "the SES daily sending quota is exhausted (Daily message quota exceeded.); "
     "run the send again tomorrow"),
])
def test_stopping_errors(monkeypatch, code, message, expected):
    stubbed = Stubbed(monkeypatch)
    stubbed.error(code, message)
    with pytest.raises(SendingStopped) as raised:
        stubbed.send()
    assert str(raised.value).startswith(expected)


def test_message_rejected_is_permanent_for_that_delivery(monkeypatch):
    stubbed = Stubbed(monkeypatch)
    stubbed.error("MessageRejected", "Email address is not verified.")
    with pytest.raises(DeliveryError) as raised:
        stubbed.send()
    assert raised.value.permanent
    assert str(raised.value) == "MessageRejected: Email address is not verified."


def test_throttling_that_never_clears_is_deferred_not_failed(monkeypatch):
    stubbed = Stubbed(monkeypatch)
    stubbed.error("TooManyRequestsException", "Maximum sending rate exceeded.", times=3)
    with pytest.raises(DeliveryError) as raised:
        stubbed.send()
    assert not raised.value.permanent
    assert str(raised.value) == ("temporary failure, will retry on the next run: "
                                 "TooManyRequestsException: Maximum sending rate exceeded.")


def test_throttling_then_success(monkeypatch):
    stubbed = Stubbed(monkeypatch)
    stubbed.error("TooManyRequestsException", "Maximum sending rate exceeded.", times=2)
    stubbed.stubber.add_response("send_email", {"MessageId": "0100-abc"})
    assert stubbed.send() == "0100-abc"


@pytest.mark.usefixtures("ses_env")
def test_daily_quota_stops_the_campaign_and_a_later_run_resumes(
        runner, db, contacts_csv, monkeypatch):
    monkeypatch.setenv("SURVEY_SEND_RATE", "50")
    assert runner("contacts", "import", str(contacts_csv)).exit_code == 0
    campaign_id = create_campaign(runner)

    exhausted = True

    def fault(n):
        if exhausted and n >= 2:
            return 400, "LimitExceededException", "Daily message quota exceeded."
        return None

    with FaultProxy(os.environ["AWS_ENDPOINT_URL_SESV2"], fault) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SESV2", proxy.url)
        first = runner("campaign", "send", str(campaign_id))
        assert first.exit_code == 1
        assert first.output.splitlines()[-1] == (
            "Error: sending stopped: the SES daily sending quota is exhausted (Daily message "
            "quota exceeded.); run the send again tomorrow")
        assert statuses(db).get("sending", 0) == 0
        exhausted = False
        second = runner("campaign", "send", str(campaign_id))
    assert second.exit_code == 0
    recipients = sent_recipients()
    assert len(recipients) == 4 and len(set(recipients)) == 4
    assert statuses(db) == {"sent": 4}


@pytest.mark.usefixtures("ses_env")
def test_a_lost_answer_is_not_retried_and_left_unknown(runner, db, contacts_csv, monkeypatch):
    monkeypatch.setenv("SURVEY_SEND_RATE", "50")
    assert runner("contacts", "import", str(contacts_csv)).exit_code == 0
    campaign_id = create_campaign(runner)
    with FaultProxy(os.environ["AWS_ENDPOINT_URL_SESV2"],
                    lambda n: "drop" if n == 0 else None) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SESV2", proxy.url)
        result = runner("campaign", "send", str(campaign_id))
    lines = result.output.splitlines()
    assert lines[:2] == [
        "3 sent, 0 failed, 0 skipped, 0 left to send",
        "1 with unknown fate (interrupted mid-send; not resent, use --retry-unknown to "
        "resend):"]
    assert len(proxy.arrivals) == 4  # the dropped request was not sent again
    assert statuses(db) == {"sent": 3, "sending": 1}
