"""Amazon SNS messages: verify their signatures before trusting a word of them.

Nothing in a notification is trusted before its signature is: the topic must be one
allowed by SURVEY_SNS_TOPIC_ARNS, the signing certificate must come from an SNS host over
HTTPS, and the signature (SignatureVersion 1: SHA1, 2: SHA256, RSA PKCS#1 v1.5) must match
the canonical string SNS signed.
"""

from __future__ import annotations

import base64
import binascii
import re
import urllib.request
from collections.abc import Callable
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .errors import SurveyError

SNS_HOST_RE = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
# The fields SNS signs, in this order, per message type.
SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                 "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                "TopicArn", "Type"),
}
MAX_BODY = 512 * 1024  # an SNS message is at most 256 KB, plus its envelope


class Rejected(SurveyError):
    """A refused SNS message, with the HTTP status to answer."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def fetch(url: str) -> bytes:
    """Fetch a certificate or confirm a subscription (only SNS hosts reach here)."""
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - host checked
        return response.read(MAX_BODY)


def sns_url(url: object, what: str) -> str:
    """Return the URL when it is HTTPS on an SNS host, else refuse it."""
    parts = urlsplit(url) if isinstance(url, str) else None
    try:
        port = parts.port if parts else None
    except ValueError:  # a port that is not a number
        parts = None
    if (parts is None or parts.scheme != "https" or port is not None
            or parts.username is not None or not SNS_HOST_RE.match(parts.hostname or "")):
        raise Rejected(400, f"{what} {url!r} is not an https://sns.<region>.amazonaws.com "
                            f"address")
    return url


def allowed_topics(setting: str | None) -> set[str]:
    """Return the topic ARNs of SURVEY_SNS_TOPIC_ARNS."""
    return {arn.strip() for arn in (setting or "").split(",") if arn.strip()}


class Verifier:
    """Check SNS signatures, caching the few signing certificates SNS uses."""

    def __init__(self, topics: set[str], fetch: Callable[[str], bytes] = fetch):
        self.topics = topics
        self.fetch = fetch
        self._certificates: dict[str, x509.Certificate] = {}

    def _certificate(self, url: str) -> x509.Certificate:
        if url not in self._certificates:
            try:
                certificate = x509.load_pem_x509_certificate(self.fetch(url))
            except (OSError, ValueError) as e:
                raise Rejected(400, f"cannot load the signing certificate {url}: {e}") from e
            if len(self._certificates) > 16:  # SNS rotates certificates rarely; keep a few
                self._certificates.clear()
            self._certificates[url] = certificate
        return self._certificates[url]

    def verify(self, message: dict) -> None:
        """Raise Rejected unless the message is signed by SNS for an allowed topic."""
        kind = message.get("Type")
        if not isinstance(kind, str) or kind not in SIGNED_FIELDS:
            raise Rejected(400, f"unknown SNS message type {kind!r}")
        if not self.topics:
            raise Rejected(403, "no SNS topic is allowed: set SURVEY_SNS_TOPIC_ARNS to the "
                                "ARNs of the SES notification topics")
        topic = message.get("TopicArn")
        if not isinstance(topic, str) or topic not in self.topics:
            raise Rejected(403, f"topic {topic!r} is not in SURVEY_SNS_TOPIC_ARNS")
        algorithm = HASHES.get(str(message.get("SignatureVersion")))
        if algorithm is None:
            raise Rejected(400, f"unsupported SignatureVersion "
                                f"{message.get('SignatureVersion')!r}")
        url = sns_url(message.get("SigningCertURL") or message.get("SigningCertUrl"),
                      "certificate URL")
        for field in SIGNED_FIELDS[kind]:
            if field in message and not isinstance(message[field], str) or (
                    field != "Subject" and field not in message):
                raise Rejected(400, f"the SNS message has no {field} (or not as text)")
        canonical = "".join(
            f"{field}\n{message[field]}\n" for field in SIGNED_FIELDS[kind] if field in message)
        signature = message.get("Signature")
        try:
            signature = base64.b64decode(signature if isinstance(signature, str) else "",
                                         validate=True)
        except (binascii.Error, ValueError) as e:
            raise Rejected(400, "the signature is not base64") from e
        key = self._certificate(url).public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise Rejected(400, "the signing certificate does not hold an RSA key")
        try:
            key.verify(signature, canonical.encode("utf-8"), padding.PKCS1v15(), algorithm())
        except InvalidSignature as e:
            raise Rejected(403, "the signature does not match the message") from e

    def confirm_subscription(self, message: dict) -> None:
        """Visit a verified SubscriptionConfirmation's SubscribeURL (an SNS host only)."""
        url = sns_url(message.get("SubscribeURL"), "SubscribeURL")
        try:
            self.fetch(url)
        except OSError as e:
            raise Rejected(502, f"confirming the subscription failed: {e}") from e
