"""Errors that carry their HTTP status, and the one place that renders them as pages."""

from __future__ import annotations

from flask import Flask, render_template
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from survey_mailer.errors import BadLink, LinkExpired


class PageError(Exception):
    """An error a person sees as a page in plain words."""

    status = 400

    def __init__(self, title, message, status: int | None = None):
        super().__init__(str(message))
        self.title = title
        self.message = message
        if status is not None:
            self.status = status


def render_error(error: PageError):
    return render_template("errors/error.html", error=error), error.status


def init_app(app: Flask) -> None:
    """Render every error, ours and Werkzeug's, as a friendly page; never a stack trace."""

    @app.errorhandler(PageError)
    def page_error(e: PageError):
        return render_error(e)

    @app.errorhandler(LinkExpired)
    def link_expired(e):
        return render_error(PageError(
            _l("This link has expired"),
            _l("Survey links stay valid for a limited time. Thank you for wanting to answer; "
               "you will get a new survey next time."), 410))

    @app.errorhandler(BadLink)
    def bad_link(e):
        return render_error(PageError(
            _l("This link does not work"),
            _l("The link may have been cut short or changed. Please click the button in "
               "the email again, or copy the whole link into your browser."), 404))

    @app.errorhandler(CSRFError)
    def csrf_error(e):
        return render_error(PageError(
            _l("Please send the form again"),
            _l("The page was open too long or cookies are blocked. Go back, reload the page "
               "and send it again."), 400))

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        titles = {404: _l("Page not found"), 405: _l("This page cannot do that"),
                  413: _l("That is too much text"), 429: _l("Too many attempts")}
        messages = {
            404: _l("There is nothing at this address."),
            429: _l("Please wait a minute and try again."),
        }
        return render_error(PageError(
            titles.get(e.code, e.name), messages.get(e.code, e.description or ""), e.code))

    @app.errorhandler(Exception)
    def unexpected(e):
        app.logger.exception("unexpected error")
        return render_error(PageError(
            _l("Something went wrong on our side"),
            _l("Your answer may not have been saved. Please try again in a moment."), 500))
