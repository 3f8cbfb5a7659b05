"""The staff workspace under /staff/: one blueprint, its views split by area.

auth (login, logout), dashboard, cases (follow-ups), testimonials, responses. Every view
needs a login; the library does the reading and the arithmetic, the views only ask.
"""

from __future__ import annotations

from datetime import timedelta

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    flash,
    redirect,
    request,
    session,
    url_for,
)
from flask_login import current_user, logout_user
from flask_wtf import FlaskForm

from survey_mailer import users
from survey_mailer.clock import utcnow

from ..extensions import login_manager

bp = Blueprint("staff", __name__, url_prefix="/staff")


class PostForm(FlaskForm):
    """A form with nothing but its CSRF token (logout, restore)."""


def init_app(app: Flask) -> None:
    """Register the workspace, its login manager and the session lifetime."""
    if app.config["PERMANENT_SESSION_LIFETIME"] == Flask.default_config[
            "PERMANENT_SESSION_LIFETIME"]:
        app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(
            hours=app.extensions["survey"]["SURVEY_STAFF_SESSION_HOURS"])
    app.config.setdefault("REMEMBER_COOKIE_SECURE", app.config["SESSION_COOKIE_SECURE"])
    app.config.setdefault("REMEMBER_COOKIE_HTTPONLY", True)
    login_manager.login_view = "staff.login"
    login_manager.login_message = "Please log in to see the staff workspace."
    login_manager.login_message_category = "info"
    login_manager.init_app(app)
    app.register_blueprint(bp)


def settings():
    """Return the survey settings of the running app."""
    return current_app.extensions["survey"]


def policy() -> str:
    return settings()["SURVEY_SCORE_POLICY"]


@bp.before_request
def session_expiry():
    # Idle expiry comes from the permanent session's lifetime; this adds an absolute one,
    # so a session refreshed all day still ends.
    started = session.get("login_at")
    if current_user.is_authenticated and started:
        limit = current_app.config["PERMANENT_SESSION_LIFETIME"]
        if utcnow().timestamp() - started > limit.total_seconds():
            logout_user()
            session.clear()
            flash("Your session has ended. Please log in again.", "info")
            return redirect(url_for("staff.login", next=request.full_path.rstrip("?")))
    return None


@bp.app_context_processor
def roles():
    """`allows("marketer")` in templates: whether the account may open what needs that role."""
    return {"allows": lambda needed: current_user.is_authenticated
            and users.allows(current_user.role, needed)}


@bp.after_request
def no_store(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-store")
    return response


from . import (  # noqa: E402,F401  (routes)
    accounts,
    auth,
    campaigns,
    cases,
    contacts,
    dashboard,
    responses,
    team,
    testimonials,
    themes,
)
