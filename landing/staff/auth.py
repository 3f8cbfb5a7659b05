"""Logging in and out of the staff workspace."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, session, url_for
from flask_login import UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import InputRequired, Length

from survey_mailer import users
from survey_mailer.clock import utcnow

from ..db import get_db
from ..extensions import limiter, login_manager
from . import PostForm, bp

LOGIN_LIMIT = "10 per minute;50 per hour"


class User(UserMixin):
    def __init__(self, row: dict):
        self.id = row["id"]
        self.email = row["email"]
        self.role = row["role"]
        self.session_id = users.session_id(row)

    def get_id(self) -> str:
        # Flask-Login's alternative token: the session (and any remember cookie) names the
        # account's session token too, so a new token ends every earlier session.
        return self.session_id


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    row = users.from_session(get_db(), session_id)
    return User(row) if row else None


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[InputRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[InputRequired(), Length(max=200)])


def _safe_next(target: str | None) -> str:
    """Return a local /staff/ path to go to after login; anything else goes to the dashboard."""
    target = target or ""
    try:
        parts = urlsplit(target)
    except ValueError:  # "//[" and the like: not an address at all
        parts = None
    if (parts and not parts.scheme and not parts.netloc and target.startswith("/staff/")
            and "\\" not in target):
        return target
    return url_for("staff.dashboard")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(LOGIN_LIMIT, methods=["POST"])
def login():
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")))
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        try:
            row = users.authenticate(get_db(), form.email.data, form.password.data)
        except users.AccountLocked as locked:
            # The same words for every email, known or not: only what was typed is locked.
            minutes = locked.minutes_left()
            error = (f"Too many failed logins with this email. Please try again in "
                     f"{minutes} minute{'' if minutes == 1 else 's'}.")
            return render_template("staff/login.html", form=form, error=error), 429, \
                {"Retry-After": str(locked.seconds_left())}
        if row:
            session.clear()  # a fresh session: nothing carried over from before login
            login_user(User(row))
            session.permanent = True
            session["login_at"] = utcnow().timestamp()
            return redirect(_safe_next(request.args.get("next")))
        error = "That email and password do not match an account."
    status = 401 if error else 200
    return render_template("staff/login.html", form=form, error=error), status


@bp.post("/logout")
def logout():
    form = PostForm()
    if form.validate_on_submit():
        if current_user.is_authenticated:  # on every device, not just this one
            users.end_sessions(get_db(), current_user.id)
        logout_user()
        session.clear()
        flash("You have logged out.", "info")
    return redirect(url_for("staff.login"))
