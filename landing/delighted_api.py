"""Delighted's API at /delighted/v1 (SPEC 11): a team changes its client's base URL and
keeps its integrations.

Delighted's clients send the key as HTTP Basic's user name (`Basic base64(KEY)`, with or
without a colon). A key made with `--campaign ID` stands for Delighted's project; other keys
get 403. Every path works with and without `.json`. The per-key rate limit is the one of
/api/v1 (the same budget per key). Errors as Delighted gave them (errors.py). The objects
are shaped in survey_mailer/delighted.py.
"""

from __future__ import annotations

from flask import Blueprint, current_app, g, request, url_for
from werkzeug.datastructures import MultiDict

from survey_mailer import api_keys, delighted, transactional
from survey_mailer.errors import Invalid, NotFound

from . import api_limits
from .api_v1 import json_object
from .db import get_db
from .errors import ApiError, json_response
from .extensions import csrf

bp = Blueprint("delighted", __name__, url_prefix="/delighted/v1")
csrf.exempt(bp)  # a key, never a cookie, authorises
MAX_PER_PAGE = 100
CHALLENGE = {"WWW-Authenticate": 'Basic realm="survey-mailer"'}


def _settings():
    return current_app.extensions["survey"]


def route(path: str, **options):
    """Register a view at `path` and at `path.json`, as Delighted's API answered both."""
    def decorator(view):
        bp.add_url_rule(path, view_func=view, **options)
        bp.add_url_rule(path + ".json", endpoint=view.__name__ + "_json", view_func=view,
                        **options)
        return view
    return decorator


def _key() -> dict:
    """Return the request's key (checked once per request), or raise 401 / 403."""
    if "api_key" in g:
        return g.api_key
    auth = request.authorization
    if auth is None or auth.type != "basic" or not (auth.username or "").strip():
        raise ApiError(401, "send your API key as the HTTP Basic user name", headers=CHALLENGE)
    found = api_keys.check_api_key(get_db(), auth.username.strip())
    if found is None:
        raise ApiError(401, "this API key is not valid: it was revoked, or mistyped",
                       headers=CHALLENGE)
    if found["campaign_id"] is None:
        raise ApiError(403, "this API key is not for a campaign: make one for Delighted's "
                            "API with survey-mailer api-key create --name NAME --campaign ID")
    g.api_key = found
    return found


@bp.before_request
def authorise():
    api_limits.spend(_key()["id"])


bp.after_request(api_limits.add_headers)


def _campaign() -> int:
    return g.api_key["campaign_id"]


def _body() -> dict | MultiDict:
    """The request's fields: a JSON object, or a form (Delighted took both)."""
    if request.mimetype == "application/x-www-form-urlencoded":
        return request.form
    return json_object()


def _invalid(error: Invalid) -> ApiError:
    return ApiError(422, str(error), error.field)


def _whole(name: str, default: int, low: int, high: int) -> int:
    text = request.args.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= 9 and low <= int(text) <= high):
        raise ApiError(422, f"{name} must be a whole number from {low} to {high}", name)
    return int(text)


def _time(name: str) -> str | None:
    text = request.args.get(name)
    if text is None:
        return None
    try:
        return delighted.from_unix(text, name)
    except Invalid as e:
        raise _invalid(e) from None


# People --------------------------------------------------------------------------------


@route("/people", methods=["POST"])
def create_person():
    """Add or update a person and, unless `send` is false, schedule their survey."""
    body = _body()
    try:
        person = delighted.add_person(get_db(), _campaign(), dict(body.items()),
                                      resurvey_days=_settings()["SURVEY_RESURVEY_DAYS"])
    except Invalid as e:
        raise _invalid(e) from None
    return json_response(person)


@route("/people", methods=["GET"])
def list_people():
    """People in the order they were added; the next page in a Link header."""
    per_page = _whole("per_page", 20, 1, MAX_PER_PAGE)
    after = _whole("page_info", 0, 0, 10**18)
    page = delighted.people(get_db(), after=after, per_page=per_page, since=_time("since"),
                            until=_time("until"))
    headers = {}
    if page.next_after is not None:
        args = {**request.args.to_dict(), "page_info": page.next_after}
        headers["Link"] = f'<{url_for(request.endpoint, _external=True, **args)}>; rel="next"'
    return json_response(page.items, headers=headers)


@bp.delete("/people/<path:identifier>")
def delete_person(identifier: str):
    """Erase a person (`email:ADDRESS` or an id), or cancel their pending surveys."""
    email, sep, rest = identifier.partition("/survey_requests/pending")
    if sep and not rest.strip("/").removesuffix(".json"):
        transactional.cancel_pending(get_db(), email, _campaign())
        return json_response({"ok": True})
    identifier = identifier.removesuffix(".json")
    try:
        delighted.erase_person(get_db(), identifier)
    except NotFound as e:
        raise ApiError(404, str(e)) from None
    return json_response({"ok": True}, 202)


# Survey responses -----------------------------------------------------------------------


@route("/survey_responses", methods=["GET"])
def list_responses():
    """The campaign's counted responses, a page at a time."""
    order = request.args.get("order", "asc")
    if order not in delighted.RESPONSE_ORDERS:
        raise ApiError(422, f"order must be one of {', '.join(delighted.RESPONSE_ORDERS)}",
                       "order")
    where = delighted.ResponseFilter(
        since=_time("since"), until=_time("until"), updated_since=_time("updated_since"),
        updated_until=_time("updated_until"), person_email=request.args.get("person_email"))
    expand = request.args.getlist("expand[]") + request.args.getlist("expand")
    items = delighted.survey_responses(
        get_db(), _campaign(), _settings()["SURVEY_SCORE_POLICY"], where=where, order=order,
        page=_whole("page", 1, 1, 10**6), per_page=_whole("per_page", 20, 1, MAX_PER_PAGE),
        expand_person="person" in expand, base_url=_settings()["SURVEY_BASE_URL"])
    return json_response(items)


@route("/survey_responses", methods=["POST"])
def create_response():
    """Import one past response into the campaign: counted, never an alert or a case."""
    try:
        item = delighted.add_response(get_db(), _campaign(), dict(_body().items()),
                                      _settings()["SURVEY_BASE_URL"])
    except Invalid as e:
        raise _invalid(e) from None
    return json_response(item, 201)


@route("/metrics", methods=["GET"])
def metrics():
    """The campaign's NPS and segment counts over a time range."""
    return json_response(delighted.metrics(
        get_db(), _campaign(), _settings()["SURVEY_SCORE_POLICY"], since=_time("since"),
        until=_time("until")))


# Unsubscribes and bounces -------------------------------------------------------------


@route("/unsubscribes", methods=["GET"])
def list_unsubscribes():
    return json_response(delighted.unsubscribes(
        get_db(), page=_whole("page", 1, 1, 10**6),
        per_page=_whole("per_page", 20, 1, MAX_PER_PAGE)))


@route("/unsubscribes", methods=["POST"])
def create_unsubscribe():
    """Never survey this person again."""
    try:
        delighted.unsubscribe(get_db(), _body().get("person_email"))
    except Invalid as e:
        raise ApiError(422, str(e), "person_email") from None
    return json_response({"ok": True})


@route("/bounces", methods=["GET"])
def list_bounces():
    return json_response(delighted.bounces(
        get_db(), page=_whole("page", 1, 1, 10**6),
        per_page=_whole("per_page", 20, 1, MAX_PER_PAGE)))
