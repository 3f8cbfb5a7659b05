"""`POST /hooks/ses`: SNS notifications of SES bounces and complaints, signatures verified.

The verification is survey_mailer.sns; the certificate fetch is `app.extensions["sns_fetch"]`
(url -> bytes) when set, so tests can serve a certificate they made.
"""

from __future__ import annotations

import json

from flask import Blueprint, current_app, jsonify, request

from survey_mailer import sns, suppression

from .db import get_db
from .extensions import csrf

bp = Blueprint("hooks", __name__, url_prefix="/hooks")
csrf.exempt(bp)  # not a browser form: SNS signs each message instead


@bp.before_request
def larger_bodies():
    request.max_content_length = sns.MAX_BODY


def _verifier() -> sns.Verifier:
    app = current_app
    if "sns" not in app.extensions:
        app.extensions["sns"] = sns.Verifier(
            sns.allowed_topics(app.extensions["survey"]["SURVEY_SNS_TOPIC_ARNS"]),
            fetch=lambda url: app.extensions.get("sns_fetch", sns.fetch)(url))
    return app.extensions["sns"]


def _json_object(text: str, what: str) -> dict:
    try:
        value = json.loads(text)
        # "\ud800" alone is JSON but no character: it can be neither signed nor stored.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:
        raise sns.Rejected(400, f"{what} holds a lone surrogate (\\uD800-\\uDFFF)") from e
    except (ValueError, RecursionError) as e:  # RecursionError: absurdly deep nesting
        raise sns.Rejected(400, f"{what} is not JSON") from e
    if not isinstance(value, dict):
        raise sns.Rejected(400, f"{what} is not a JSON object")
    return value


@bp.post("/ses")
def ses():
    """Receive one SNS message: confirm a subscription or record a bounce or complaint."""
    message = _json_object(request.get_data(as_text=True), "the body")
    verifier = _verifier()
    verifier.verify(message)
    kind = message["Type"]
    if kind == "SubscriptionConfirmation":
        verifier.confirm_subscription(message)
        current_app.logger.info("confirmed SNS subscription to %s", message["TopicArn"])
        return jsonify(status="subscribed", topic=message["TopicArn"])
    if kind == "UnsubscribeConfirmation":
        return jsonify(status="ignored")
    event = _json_object(message["Message"], "the notification's Message")
    new, suppressed = suppression.record_ses_event(
        get_db(), message["MessageId"], message["TopicArn"], event)
    return jsonify(status="recorded" if new else "duplicate", suppressed=suppressed)
