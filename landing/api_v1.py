"""The JSON API under /api/v1: transactional surveys, responses to sync, stats (SPEC 11).

Every route but /api/v1/openapi.json needs `Authorization: Bearer KEY`. Each key has its
own rate limit (SURVEY_API_RATE_LIMIT), whatever address it comes from; a key made for one
campaign reaches that campaign only. Errors are JSON, `{"error", "field"}` (errors.py);
the OpenAPI document (openapi.py) describes every route here, and a test keeps them in step.
"""

from __future__ import annotations

import json
import sqlite3

from flask import Blueprint, Response, current_app, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from survey_mailer import api_keys, idempotency, nps, responses, transactional
from survey_mailer import campaigns as campaigns_
from survey_mailer.clock import parse, stamp
from survey_mailer.errors import Invalid, NotFound, Refused, SurveyError

from . import api_limits, openapi
from .args import MAX_ID
from .db import get_db
from .errors import ApiError, json_response
from .extensions import csrf

bp = Blueprint("v1", __name__, url_prefix="/api/v1")
csrf.exempt(bp)  # a bearer key, never a cookie, authorises: no cross-site request can forge it
public = Blueprint("v1_public", __name__, url_prefix="/api/v1")  # no key, no rate limit

SURVEY_FIELDS = ("email", "campaign", "name", "company", "language", "properties",
                 "delay_seconds", "event")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
NO_STORE = {"Cache-Control": "no-store"}


def _settings():
    return current_app.extensions["survey"]


def _quoted(value: str, limit: int = 60) -> str:
    """Return a value sent to us, quoted for an error message: escaped, and cut if long."""
    return json.dumps(value if len(value) <= limit else value[:limit] + "...")


def _api_key() -> dict:
    """Return the request's API key (checked once per request), or raise ApiError 401."""
    if "api_key" in g:
        return g.api_key
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    challenge = 'Bearer realm="survey-mailer"'
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "send an API key as: Authorization: Bearer KEY",
                       headers={"WWW-Authenticate": challenge})
    found = api_keys.check_api_key(get_db(), key.strip())
    if found is None:
        raise ApiError(401, "this API key is not valid: it was revoked, or mistyped",
                       headers={"WWW-Authenticate": challenge + ', error="invalid_token"'})
    g.api_key = found
    return found


@bp.before_request
def authorise():
    """Every route needs a valid bearer key and takes only the parameters it documents."""
    api_limits.spend(_api_key()["id"])
    known = openapi.query_parameters(request.url_rule.rule, request.method)
    for name in request.args:
        if name not in known:  # a misspelt `campain` must not quietly mean every campaign
            raise ApiError(400, f"unknown parameter {_quoted(name)}: "
                                + (f"the parameters are {', '.join(known)}" if known
                                   else "this route takes none"), name[:100])


bp.after_request(api_limits.add_headers)


def _scoped(campaign_id: int | None, field: str | None = "campaign") -> int | None:
    """Return the campaign a request may see: a key made for one campaign sees only it."""
    own = g.api_key["campaign_id"]
    if own is None:
        return campaign_id
    if campaign_id is not None and campaign_id != own:
        raise ApiError(403, f"this API key is for campaign {own} only", field)
    return own


# POST /api/v1/surveys, DELETE /api/v1/surveys/<id> ---------------------------------------


def json_object() -> dict:
    """Return the body as a JSON object, or raise ApiError saying what is wrong with it."""
    data = request.get_data(cache=True)  # Werkzeug: 413 when Content-Length is too big
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    # A chunked body (no Content-Length) is cut at the limit without a word: a byte more
    # behind it means it was too big, not that it ended there.
    if limit is not None and len(data) >= limit and request.content_length is None \
            and request.input_stream.read(1):
        raise RequestEntityTooLarge()
    if not data.strip():
        raise ApiError(400, "the body is empty: send a JSON object "
                            "(Content-Type: application/json)")
    try:
        body = json.loads(data)
    except RecursionError:
        raise ApiError(400, "the body is not usable JSON: it is nested too deeply") from None
    except ValueError as e:  # bad syntax, not UTF-8, a number too long to read
        raise ApiError(400, f"the body is not JSON: {e}") from None
    if not isinstance(body, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
            type(body), "a number")
        raise ApiError(400, f"the body must be a JSON object, not {kind}")
    try:  # "\ud800" is valid JSON but no text: it could not be stored or shown
        json.dumps(body, ensure_ascii=False).encode()
    except RecursionError:
        raise ApiError(400, "the body is not usable JSON: it is nested too deeply") from None
    except UnicodeEncodeError:
        for name, value in body.items():
            try:
                json.dumps([name, value], ensure_ascii=False).encode()
            except UnicodeEncodeError:
                raise ApiError(400, f"{_quoted(name)} holds a lone surrogate "
                                    f"(\\ud800-\\udfff): not text",
                               name if name in SURVEY_FIELDS else None) from None
    return body


def _survey_request(body: dict) -> dict:
    """Return transactional.request's arguments from a body, or raise ApiError naming a field."""
    for name in body:
        if name not in SURVEY_FIELDS:
            raise ApiError(400, f"unknown field {_quoted(name)}: the fields are "
                                f"{', '.join(SURVEY_FIELDS)}", name[:100])
    campaign = body.get("campaign")
    if campaign is None:
        raise ApiError(400, "campaign is required: the id of the campaign to survey for",
                       "campaign")
    if not isinstance(campaign, int) or isinstance(campaign, bool) \
            or not 1 <= campaign <= MAX_ID:
        raise ApiError(400, "campaign must be a campaign's id: a whole number (see "
                            "survey-mailer campaign list)", "campaign")
    fields = transactional.check_contact(body.get("email"), body.get("name"),
                                         body.get("company"), body.get("language"),
                                         body.get("properties"))
    delay = body.get("delay_seconds")
    return {"campaign_id": campaign, **fields, "event": body.get("event"),
            "delay_seconds": 0 if delay is None else delay}


def _replayed(replay: idempotency.Replay) -> Response:
    return json_response(replay.body, replay.status, {"Idempotent-Replayed": "true"})


@bp.post("/surveys")
def create_survey():
    """Add or update a contact and schedule a campaign's survey for them."""
    body = json_object()
    key = None
    header = request.headers.get("Idempotency-Key")
    try:
        if header is not None:
            key = idempotency.Key(g.api_key["id"], idempotency.check(header),
                                  idempotency.fingerprint("POST", request.path, body))
            replay = idempotency.recall(get_db(), key)  # no write lock for a repeat
            if replay is not None:
                return _replayed(replay)
        arguments = _survey_request(body)
    except idempotency.KeyReused as e:
        raise ApiError(422, str(e), e.field) from e
    except Invalid as e:
        raise ApiError(400, str(e), e.field) from e
    campaign_id = _scoped(arguments.pop("campaign_id"))
    try:
        result = transactional.request(
            get_db(), campaign_id, **arguments, source="api", idempotency=key,
            resurvey_days=_settings()["SURVEY_RESURVEY_DAYS"])
    except idempotency.Replay as replay:  # the same key, a moment earlier
        return _replayed(replay)
    except idempotency.KeyReused as e:
        raise ApiError(422, str(e), e.field) from e
    except Invalid as e:
        raise ApiError(400, str(e), e.field) from e
    except Refused as e:
        return json_response(transactional.refusal_answer(e), 409)
    except NotFound as e:
        raise ApiError(404, str(e), "campaign") from e
    except sqlite3.IntegrityError:
        # The key's primary key failed the transaction: another request kept it first.
        replay = key and idempotency.recall(get_db(), key)
        if not replay:
            raise
        return _replayed(replay)
    return json_response(transactional.answer(result), 202)


@bp.delete("/surveys/<id:delivery_id>")
def cancel_survey(delivery_id: int):
    """Cancel a survey not yet sent."""
    try:
        transactional.cancel(get_db(), delivery_id, g.api_key["campaign_id"])
    except transactional.AlreadySent as e:
        error = ApiError(409, str(e))
        error.body["status"] = e.status  # (ApiError's own `status` is the HTTP one)
        raise error from e
    except NotFound as e:
        raise ApiError(404, str(e)) from e
    return Response(status=204)


# GET /api/v1/responses ---------------------------------------------------------------


def _campaign_arg() -> int | None:
    """Return ?campaign= as an existing campaign's id, or raise ApiError naming it."""
    text = request.args.get("campaign")
    if text is None:
        return None
    # The length first: int() refuses over 4,300 digits with a ValueError.
    if not (text.isascii() and text.isdigit() and len(text) <= 19
            and 0 < int(text) <= MAX_ID):
        raise ApiError(400, f"campaign {_quoted(text)} is not a campaign id",
                       "campaign")
    try:
        campaigns_.get(get_db(), int(text))
    except NotFound as e:
        raise ApiError(404, str(e), "campaign") from e
    return int(text)


# A parameter sent must be valid, even empty: `?cursor=` is no cursor anyone was given.


def _limit_arg() -> int:
    text = request.args.get("limit")
    if text is None:
        return DEFAULT_LIMIT
    if not (text.isascii() and text.isdigit() and len(text) <= 4
            and 1 <= int(text) <= MAX_LIMIT):
        raise ApiError(400, f"limit must be a whole number from 1 to {MAX_LIMIT}", "limit")
    return int(text)


def _cursor_arg() -> int:
    text = request.args.get("cursor")
    if text is None:
        return 0
    if not (text.isascii() and text.isdigit() and len(text) <= 19 and int(text) <= MAX_ID):
        raise ApiError(400, "cursor is not one this API gave: pass next_cursor as it came "
                            "(or no cursor, to start)", "cursor")
    return int(text)


def _since_arg() -> str | None:
    text = request.args.get("since")
    if text is None:
        return None
    try:
        return stamp(parse(text))
    except (ValueError, OverflowError):
        raise ApiError(400, f"since {_quoted(text)} is not an ISO 8601 time (like "
                            f"2026-12-03T09:00:00Z)", "since") from None


@bp.get("/responses")
def list_responses():
    """Responses in the order they changed, from a cursor: what a sync follows."""
    campaign_id = _scoped(_campaign_arg())
    limit, after, since = _limit_arg(), _cursor_arg(), _since_arg()
    page = responses.changes(get_db(), _settings()["SURVEY_SCORE_POLICY"], after=after,
                             campaign_id=campaign_id, since=since, limit=limit)
    return json_response({"data": page.items, "next_cursor": str(page.last_version),
                          "has_more": page.more}, headers=NO_STORE)


# Stats -------------------------------------------------------------------------------


def _report(campaign_id: int | None) -> Response:
    try:
        result = nps.report(get_db(), campaign_id=campaign_id,
                            by=request.args.get("by") or None,
                            policy=_settings()["SURVEY_SCORE_POLICY"])
    except SurveyError as e:  # only `by` can be wrong here
        raise ApiError(400, str(e), "by") from e
    return json_response(result, headers=NO_STORE)


@bp.get("/stats")
def stats():
    """NPS report as JSON, same shape as `survey-mailer report --format json`."""
    return _report(_scoped(_campaign_arg()))


@bp.get("/campaigns/<id:campaign_id>/stats")
def campaign_stats(campaign_id: int):
    """One campaign's NPS report as JSON."""
    _scoped(campaign_id, None)
    try:
        campaigns_.get(get_db(), campaign_id)
    except NotFound as e:
        raise ApiError(404, str(e)) from e
    return _report(campaign_id)


@public.get("/openapi.json")
def openapi_json():
    """The OpenAPI 3.1 document of this API (no key needed)."""
    return json_response(openapi.DOCUMENT, headers={"Access-Control-Allow-Origin": "*"})
