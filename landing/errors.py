"""Errors that carry their HTTP status, and the one handler that answers them.

A person gets a page in plain words, in their language; a program (the JSON API, the SNS
hook) gets JSON: `{"error": "...", "field": "..."}`. Which one is decided by the route, in
`wants_json`, and nowhere else. No stack trace ever reaches anyone.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, json, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from survey_mailer.errors import BadLink, LinkExpired, NotFound, ReadOnlyDatabase, SurveyError
from survey_mailer.sns import Rejected

JSON_PREFIXES = ("/api/", "/hooks/", "/delighted/")


class PageError(Exception):
    """An error a person sees as a page in plain words."""

    status = 400

    def __init__(self, title, message, status: int | None = None):
        super().__init__(str(message))
        self.title = title
        self.message = message
        if status is not None:
            self.status = status


class ApiError(Exception):
    """An error a program gets as JSON: a message, the field to blame, and more keys."""

    def __init__(self, status: int, message: str, field: str | None = None,
                 headers: dict | None = None, **extra):
        super().__init__(message)
        self.status = status
        self.body = {"error": message, **({"field": field} if field else {}), **extra}
        self.headers = headers or {}


def wants_json() -> bool:
    """Return whether this request's route answers JSON rather than pages."""
    return request.path.startswith(JSON_PREFIXES)


def _error_json(body: dict, status: int, headers: dict | None = None) -> Response:
    """An error as JSON. /delighted/v1 answers as Delighted did: `{"status", "message"}`,
    and for 422 `"errors"` naming the field; everything else `{"error", "field"}`."""
    if request.path.startswith("/delighted/"):
        shaped = {"status": status, "message": body["error"]}
        if status == 422:
            shaped["errors"] = [{"field": body.get("field"), "code": "invalid",
                                 "message": body["error"]}]
        body = shaped
    return json_response(body, status, headers)


def json_response(body, status: int = 200, headers: dict | None = None) -> Response:
    """Answer JSON; <, > and & escaped, so it is inert if anyone pastes it into a page."""
    text = (json.dumps(body, ensure_ascii=False, indent=1).replace("<", "\\u003c")
            .replace(">", "\\u003e").replace("&", "\\u0026"))
    response = Response(text + "\n", status, mimetype="application/json")
    response.headers.update(headers or {})
    return response


def _page(title, message, status: int, headers: dict | None = None):
    return render_template("errors/error.html", error=PageError(title, message, status)), \
        status, headers or {}


TITLES = {400: _l("That request did not work"), 401: _l("Please log in"),
          403: _l("You cannot do that"), 404: _l("Page not found"),
          405: _l("This page cannot do that"), 413: _l("That is too much text"),
          429: _l("Too many attempts")}
UNSAVED = (_l("Something went wrong on our side"),
           _l("Your answer may not have been saved. Please try again in a moment."))
MESSAGES = {404: _l("There is nothing at this address."),
            429: _l("Please wait a minute and try again.")}


def handle(error: Exception):
    """Answer any error: JSON for programs, a friendly page for people."""
    if isinstance(error, ApiError):
        return _error_json(error.body, error.status, error.headers)
    if isinstance(error, PageError):
        if wants_json():
            return _error_json({"error": str(error.message)}, error.status)
        return _page(error.title, error.message, error.status)
    if isinstance(error, LinkExpired):
        status, title, message = 410, _l("This link has expired"), _l(
            "Survey links stay valid for a limited time. Thank you for wanting to answer; "
            "you will get a new survey next time.")
    elif isinstance(error, BadLink):
        status, title, message = 404, _l("This link does not work"), _l(
            "The link may have been cut short or changed. Please click the button in the "
            "email again, or copy the whole link into your browser.")
    elif isinstance(error, CSRFError):
        status, title, message = 400, _l("Please send the form again"), _l(
            "The page was open too long or cookies are blocked. Go back, reload the page "
            "and send it again.")
    elif isinstance(error, Rejected):
        status, title, message = error.status, TITLES.get(error.status, ""), str(error)
    elif isinstance(error, NotFound):
        status, title, message = 404, TITLES[404], str(error)
    elif isinstance(error, ReadOnlyDatabase):
        # The server's fault, and passing once someone fixes it: a person is asked to try
        # again; the operator reads the reason in the log, in one line.
        current_app.logger.error("%s", error)
        status, title, message = 503, *UNSAVED
    elif isinstance(error, SurveyError):
        status, title, message = 400, TITLES[400], str(error)
    elif isinstance(error, HTTPException):
        status = error.code or 500
        title = TITLES.get(status, error.name)
        message = MESSAGES.get(status, error.description or "")
        headers = dict(error.get_response().headers) if status in (405, 429) else {}
        headers.pop("Content-Type", None)
        headers.pop("Content-Length", None)
        if wants_json():
            return _error_json({"error": str(message)}, status, headers)
        return _page(title, message, status, headers)
    else:
        current_app.logger.exception("unexpected error")
        status, title, message = 500, *UNSAVED
    if wants_json():
        return _error_json({"error": str(message)}, status)
    return _page(title, message, status)


def init_app(app: Flask) -> None:
    """Send every error, ours and Werkzeug's, to the one handler."""
    app.register_error_handler(Exception, handle)
