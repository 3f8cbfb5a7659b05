"""`POST /hooks/ses`: SNS notifications of SES bounces and complaints, signatures verified.

Nothing in a notification is trusted before its signature is: the topic must be one
allowed by SURVEY_SNS_TOPIC_ARNS, the signing certificate must come from an SNS host over
HTTPS, and the signature (SignatureVersion 1: SHA1, 2: SHA256, RSA PKCS#1 v1.5) must match
the canonical string SNS signed. The certificate fetch is `app.extensions["sns_fetch"]`
(url -> bytes) so tests can serve a certificate they made.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import urllib.request
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import Blueprint, current_app, jsonify, request

from survey_mailer import suppression

from .db import get_db

bp = Blueprint("hooks", __name__, url_prefix="/hooks")

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


class HookError(Exception):
    """A refused notification: answered as JSON with its status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@bp.errorhandler(HookError)
def hook_error(e: HookError):
    return jsonify(error=e.message), e.status


@bp.before_request
def larger_bodies():
    request.max_content_length = MAX_BODY


def fetch(url: str) -> bytes:
    """Fetch a certificate or confirm a subscription (only SNS hosts reach here)."""
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - host checked
        return response.read(MAX_BODY)


def sns_url(url: object, what: str) -> str:
    """Return the URL when it is HTTPS on an SNS host, else refuse it."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if (parts is None or parts.scheme != "https" or parts.port is not None
            or parts.username is not None or not SNS_HOST_RE.match(parts.hostname or "")):
        raise HookError(400, f"{what} {url!r} is not an https://sns.<region>.amazonaws.com "
                             f"address")
    return url


def _allowed_topics() -> set[str]:
    raw = current_app.extensions["survey"]["SURVEY_SNS_TOPIC_ARNS"] or ""
    return {arn.strip() for arn in raw.split(",") if arn.strip()}


def _certificate(url: str) -> x509.Certificate:
    cache = current_app.extensions.setdefault("sns_certificates", {})
    if url not in cache:
        fetcher = current_app.extensions.get("sns_fetch", fetch)
        try:
            pem = fetcher(url)
            certificate = x509.load_pem_x509_certificate(pem)
        except (OSError, ValueError) as e:
            raise HookError(400, f"cannot load the signing certificate {url}: {e}") from e
        if len(cache) > 16:  # SNS rotates certificates rarely; keep a few
            cache.clear()
        cache[url] = certificate
    return cache[url]


def verify(message: dict) -> None:
    """Raise HookError unless the message is signed by SNS for an allowed topic."""
    kind = message.get("Type")
    if kind not in SIGNED_FIELDS:
        raise HookError(400, f"unknown SNS message type {kind!r}")
    allowed = _allowed_topics()
    if not allowed:
        raise HookError(403, "no SNS topic is allowed: set SURVEY_SNS_TOPIC_ARNS to the "
                             "ARNs of the SES notification topics")
    if message.get("TopicArn") not in allowed:
        raise HookError(403, f"topic {message.get('TopicArn')!r} is not in "
                             f"SURVEY_SNS_TOPIC_ARNS")
    algorithm = HASHES.get(str(message.get("SignatureVersion")))
    if algorithm is None:
        raise HookError(400, f"unsupported SignatureVersion "
                             f"{message.get('SignatureVersion')!r}")
    url = sns_url(message.get("SigningCertURL") or message.get("SigningCertUrl"),
                  "certificate URL")
    for field in SIGNED_FIELDS[kind]:
        if field in message and not isinstance(message[field], str) or (
                field != "Subject" and field not in message):
            raise HookError(400, f"the SNS message has no {field} (or not as text)")
    canonical = "".join(
        f"{field}\n{message[field]}\n" for field in SIGNED_FIELDS[kind] if field in message)
    try:
        signature = base64.b64decode(message.get("Signature") or "", validate=True)
    except (binascii.Error, ValueError) as e:
        raise HookError(400, "the signature is not base64") from e
    key = _certificate(url).public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise HookError(400, "the signing certificate does not hold an RSA key")
    try:
        key.verify(signature, canonical.encode("utf-8"), padding.PKCS1v15(), algorithm())
    except InvalidSignature as e:
        raise HookError(403, "the signature does not match the message") from e


@bp.post("/ses")
def ses():
    """Receive one SNS message: confirm a subscription or record a bounce or complaint."""
    try:
        message = json.loads(request.get_data(as_text=True))
    except ValueError as e:
        raise HookError(400, "the body is not JSON") from e
    if not isinstance(message, dict):
        raise HookError(400, "the body is not a JSON object")
    verify(message)
    kind = message["Type"]
    if kind == "SubscriptionConfirmation":
        url = sns_url(message.get("SubscribeURL"), "SubscribeURL")
        fetcher = current_app.extensions.get("sns_fetch", fetch)
        try:
            fetcher(url)
        except OSError as e:
            raise HookError(502, f"confirming the subscription failed: {e}") from e
        current_app.logger.info("confirmed SNS subscription to %s", message["TopicArn"])
        return jsonify(status="subscribed", topic=message["TopicArn"])
    if kind == "UnsubscribeConfirmation":
        return jsonify(status="ignored")
    try:
        event = json.loads(message["Message"])
    except ValueError as e:
        raise HookError(400, "the notification's Message is not JSON") from e
    if not isinstance(event, dict):
        raise HookError(400, "the notification's Message is not a JSON object")
    new, suppressed = suppression.record_ses_event(
        get_db(), message["MessageId"], message["TopicArn"], event)
    return jsonify(status="recorded" if new else "duplicate", suppressed=suppressed)
