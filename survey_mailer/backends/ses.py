"""The Amazon SES backend: boto3 `sesv2.send_email` with our own raw MIME message.

Endpoint, region and credentials come from boto3's own configuration (AWS_REGION,
AWS_ENDPOINT_URL_SESV2, the credential chain); nothing here invents a variant.

Errors, after botocore's own retries (standard mode: throttling and 5xx, exponential
backoff with full jitter):
- throttling ("Maximum sending rate exceeded") and 5xx get a few more rounds of backoff
  with jitter here, then the delivery is deferred (pending again for the next run);
- daily quota exhausted, AccountSuspended, SendingPaused, bad credentials or sender
  identity: `SendingStopped`, the campaign stops cleanly and the message stays pending;
- MessageRejected (and other per-message faults): a permanent `DeliveryError`;
- a connection lost after the request went out: `FateUnknown` (it may have been sent).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
)

from ..errors import ConfigError, DeliveryError, FateUnknown, SendingStopped
from . import Envelope

THROTTLING = {"TooManyRequestsException", "Throttling", "ThrottlingException"}
STOPPING = {
    "AccountSuspendedException": "the SES account is suspended",
    "SendingPausedException": "sending is paused for this account or configuration set",
    "MailFromDomainNotVerifiedException": "the MAIL FROM domain is not verified",
    "NotFoundException": "a resource named in the request does not exist "
                         "(check SURVEY_SES_CONFIGURATION_SET)",
    "AccessDeniedException": "access denied: check the AWS credentials and their policy",
    "UnrecognizedClientException": "the AWS credentials are not valid",
    "InvalidClientTokenId": "the AWS credentials are not valid",
    "SignatureDoesNotMatch": "the AWS secret key is wrong",
    "ExpiredTokenException": "the AWS session token has expired",
}
PERMANENT = {"MessageRejected", "BadRequestException", "InvalidParameterValue"}


def _boto_config(concurrency: int) -> BotoConfig:
    return BotoConfig(
        retries={"mode": "standard", "max_attempts": 5},
        max_pool_connections=max(10, concurrency),
        connect_timeout=10,
        read_timeout=30,
    )


class SESBackend:
    """Send raw messages through SES v2, a few at once, at the account's rate."""

    # SES answers in tens of milliseconds from AWS: a few calls in flight reach hundreds
    # of messages per second. It also bounds a crash's unknown deliveries to 8.
    concurrency = 8
    # The sender takes a rate slot for each message's first attempt and hands us its
    # limiter (`pace`), which runs before every further HTTP attempt (botocore's retries
    # and ours), so not even a retry burst exceeds the rate.
    paced = True

    def __init__(self, client, *, configuration_set: str | None = None,
                 quota_client: Callable[[], object] | None = None, rounds: int = 3,
                 backoff: float = 1.0, sleep: Callable[[float], None] = time.sleep):
        self.client = client
        self.configuration_set = configuration_set
        self._quota_client = quota_client or (lambda: boto3.client(
            "ses", config=_boto_config(1)))
        self.rounds = rounds
        self.backoff = backoff
        self._sleep = sleep
        self.pace: Callable[[], None] = lambda: None
        self._attempt = threading.local()
        client.meta.events.register("before-send.sesv2.SendEmail", self._before_send)
        client.meta.events.register_first("needs-retry.sesv2.SendEmail", self._no_futile_retry)

    @classmethod
    def from_config(cls, config) -> SESBackend:
        """Build the backend on boto3's own configuration and SURVEY_SES_CONFIGURATION_SET."""
        # botocore reads AWS_DEFAULT_REGION and profiles; AWS_REGION, which the AWS CLI v2
        # and the other SDKs read first, is honoured the same way.
        region = os.environ.get("AWS_REGION") or None
        try:
            client = boto3.client("sesv2", region_name=region,
                                  config=_boto_config(cls.concurrency))
        except NoRegionError as e:
            raise ConfigError("no AWS region for SES: set AWS_REGION (for example "
                              "AWS_REGION=eu-west-1)") from e
        return cls(client, configuration_set=config["SURVEY_SES_CONFIGURATION_SET"],
                   quota_client=lambda: boto3.client("ses", region_name=region,
                                                     config=_boto_config(1)))

    def _before_send(self, **kwargs) -> None:
        if getattr(self._attempt, "first", False):
            self._attempt.first = False  # its slot was taken by the sender
        else:
            self.pace()  # returns None: botocore goes on and sends the request

    def _no_futile_retry(self, response=None, operation=None, caught_exception=None,
                         **kwargs) -> None:
        # A request sent whose answer was lost (read timeout, connection closed) may have
        # been accepted: retrying it could send the message twice, so it leaves as is and
        # becomes FateUnknown. A connection never made is safe to retry, and retried.
        if isinstance(caught_exception, HTTPClientError):
            raise caught_exception
        # botocore retries LimitExceededException as throttling; a daily quota or a
        # suspension will not clear in seconds, so end its retries now (the exception
        # leaves send_email and is classified below).
        if response is None:
            return
        info = response[1].get("Error") or {}
        if _stopping(info.get("Code", ""), info.get("Message", "") or ""):
            raise ClientError(response[1], operation.name if operation else "SendEmail")

    def rate_limit(self) -> float | None:
        """Return the account's MaxSendRate (SES v2 get_account, else v1 get_send_quota)."""
        try:
            account = self.client.get_account()
        except NoCredentialsError as e:
            raise SendingStopped("no AWS credentials found: configure them as for any "
                                 "boto3 program (AWS_PROFILE, AWS_ACCESS_KEY_ID, ...)") from e
        except (ClientError, BotoCoreError):
            account = None
        if account is not None:
            if account.get("SendingEnabled") is False:
                raise SendingStopped("sending is disabled for this SES account")
            quota = account.get("SendQuota") or {}
            if quota.get("MaxSendRate"):
                return float(quota["MaxSendRate"])
        try:
            quota = self._quota_client().get_send_quota()
        except (ClientError, BotoCoreError) as e:
            raise SendingStopped(f"cannot read the SES sending quota ({e}): set "
                                 f"SURVEY_SEND_RATE") from e
        return float(quota["MaxSendRate"]) if quota.get("MaxSendRate") else None

    def send(self, envelope: Envelope, message: bytes) -> str:
        """Send one raw message; return the SES MessageId."""
        request = {
            "FromEmailAddress": envelope.sender,
            "Destination": {"ToAddresses": [envelope.recipient]},
            "Content": {"Raw": {"Data": message}},
            "EmailTags": [
                {"Name": "campaign", "Value": str(envelope.campaign_id)},
                {"Name": "delivery", "Value": str(envelope.delivery_id)},
                {"Name": "message", "Value": envelope.key},
            ],
        }
        if self.configuration_set:
            request["ConfigurationSetName"] = self.configuration_set
        self._attempt.first = True
        for round_ in range(self.rounds + 1):
            try:
                return self.client.send_email(**request)["MessageId"]
            except ClientError as e:
                _classify(e)  # raises unless throttling or a server error
                if round_ == self.rounds:
                    raise DeliveryError(f"temporary failure, will retry on the next run: "
                                        f"{_describe(e)}") from e
            except (EndpointConnectionError, ConnectTimeoutError) as e:
                # Never connected: nothing was sent, and the endpoint is unreachable.
                raise SendingStopped(f"cannot reach SES: {e}") from e
            except NoCredentialsError as e:
                raise SendingStopped("no AWS credentials found") from e
            except BotoCoreError as e:
                # The request went out and the answer was lost: it may have been sent.
                raise FateUnknown(f"no answer from SES: {e}") from e
            # botocore has already backed off; these rounds wait longer, with full jitter.
            self._sleep(random.uniform(0, self.backoff * 2 ** round_))
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.client.close()


def _describe(error: ClientError) -> str:
    info = error.response.get("Error", {})
    return f"{info.get('Code', 'error')}: {info.get('Message', '')}".rstrip(": ")


def _stopping(code: str, message: str) -> bool:
    lowered = message.lower()
    return code in STOPPING or ("daily" in lowered and "quota" in lowered)


def _classify(error: ClientError) -> None:
    """Raise the error for a code that must not be retried; return for a retryable one."""
    info = error.response.get("Error", {})
    code, message = info.get("Code", ""), info.get("Message", "") or ""
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    lowered = message.lower()
    if "daily" in lowered and "quota" in lowered:
        raise SendingStopped(f"the SES daily sending quota is exhausted ({message}); "
                             f"run the send again tomorrow") from error
    if code in STOPPING:
        raise SendingStopped(f"{STOPPING[code]} ({_describe(error)})") from error
    if code in THROTTLING or "maximum sending rate" in lowered or status >= 500:
        return
    if code in PERMANENT:
        raise DeliveryError(_describe(error), permanent=True) from error
    if code == "LimitExceededException":
        raise SendingStopped(f"an SES limit is exceeded ({_describe(error)})") from error
    # An error we do not know: stop rather than fail every remaining delivery with it.
    raise SendingStopped(f"SES refused the message ({_describe(error)})") from error
