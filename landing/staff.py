"""The staff workspace: login, NPS dashboard, follow-up cases, testimonials, responses."""

from __future__ import annotations

import csv
import io
import math
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    after_this_request,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import (
    LoginManager,
    UserMixin,
    current_user,
    login_required,
    login_user,
    logout_user,
)
from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms import EmailField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length

from survey_mailer import charts, humans, notify, nps, responses, staff
from survey_mailer import db as db_
from survey_mailer.errors import NotFound, SurveyError

from . import limiter
from .db import get_db

bp = Blueprint("staff", __name__, url_prefix="/staff")
login_manager = LoginManager()
login_manager.login_view = "staff.login"
login_manager.login_message = "Please log in to see the staff workspace."
login_manager.login_message_category = "info"

LOGIN_LIMIT = "10 per minute;50 per hour"
BREAKDOWNS = {"company": "Company", "language": "Language", "campaign": "Campaign"}
PAGE_SIZE = 100


class User(UserMixin):
    def __init__(self, row: dict):
        self.id = row["id"]
        self.email = row["email"]


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    row = staff.get_user(get_db(), int(user_id)) if user_id.isdigit() else None
    return User(row) if row else None


def init_app(app: Flask) -> None:
    """Register the workspace, its login manager and the session lifetime."""
    if app.config["PERMANENT_SESSION_LIFETIME"] == Flask.default_config[
            "PERMANENT_SESSION_LIFETIME"]:
        app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(
            hours=app.extensions["survey"]["SURVEY_STAFF_SESSION_HOURS"])
    app.config.setdefault("REMEMBER_COOKIE_SECURE", app.config["SESSION_COOKIE_SECURE"])
    app.config.setdefault("REMEMBER_COOKIE_HTTPONLY", True)
    login_manager.init_app(app)
    app.register_blueprint(bp)


def _settings():
    return current_app.extensions["survey"]


def _policy() -> str:
    return _settings()["SURVEY_SCORE_POLICY"]


@bp.before_request
def session_expiry():
    # Idle expiry comes from the permanent session's lifetime; this adds an absolute one,
    # so a session refreshed all day still ends.
    started = session.get("login_at")
    if current_user.is_authenticated and started:
        limit = current_app.config["PERMANENT_SESSION_LIFETIME"]
        if datetime.now(UTC).timestamp() - started > limit.total_seconds():
            logout_user()
            session.clear()
            flash("Your session has ended. Please log in again.", "info")
            return redirect(url_for("staff.login", next=request.full_path.rstrip("?")))
    if current_user.is_authenticated:  # every staff page reads responses
        humans.fold(get_db(), _settings()["SURVEY_BURST_SECONDS"])
    return None


@bp.after_request
def no_store(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-store")
    return response


# Forms ------------------------------------------------------------------------------------


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[InputRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[InputRequired(), Length(max=200)])


class PostForm(FlaskForm):
    """A form with nothing but its CSRF token (logout, restore)."""


class CaseForm(FlaskForm):
    status = SelectField("Status", choices={s: s.capitalize() for s in staff.STATUSES})
    assignee = SelectField("Assignee", choices={})
    note = TextAreaField("Add a note", validators=[Length(max=5000)])


class TestimonialForm(FlaskForm):
    display_name = StringField("Name shown", validators=[Length(max=100)])
    action = SelectField(choices={"approve": "Approve", "reject": "Reject",
                                  "rename": "Save name"})


# Login ------------------------------------------------------------------------------------


def _safe_next(target: str | None) -> str:
    """Return a local /staff/ path to go to after login; anything else goes to the dashboard."""
    if target:
        parts = urlsplit(target)
        if (not parts.scheme and not parts.netloc and target.startswith("/staff/")
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
        row = staff.authenticate(get_db(), form.email.data, form.password.data)
        if row:
            session.clear()  # a fresh session: nothing carried over from before login
            login_user(User(row))
            session.permanent = True
            session["login_at"] = datetime.now(UTC).timestamp()
            return redirect(_safe_next(request.args.get("next")))
        error = "That email and password do not match an account."
    status = 401 if error else 200
    return render_template("staff/login.html", form=form, error=error), status


@bp.post("/logout")
def logout():
    form = PostForm()
    if form.validate_on_submit():
        logout_user()
        session.clear()
        flash("You have logged out.", "info")
    return redirect(url_for("staff.login"))


# Dashboard --------------------------------------------------------------------------------


def _int_arg(name: str) -> int | None:
    value = request.args.get(name, "")
    return int(value) if value.isdigit() else None


def attribute_names(db) -> list[str]:
    """Return contact attribute names, from a sample (enough to fill a menu, fast on millions)."""
    rows = db.execute(
        "SELECT DISTINCT j.key FROM (SELECT attributes FROM contacts ORDER BY id DESC "
        "LIMIT 2000) AS c, json_each(c.attributes) AS j ORDER BY j.key")
    return [r[0] for r in rows if nps.ATTRIBUTE_RE.match(r[0])]


def change(points: list[dict]) -> dict | None:
    """Compare the last two periods; significant when beyond the difference's margin of error.

    Two independent estimates differ by more than chance (95%) when the change exceeds
    sqrt(m1² + m2²), the margin of error of their difference.
    """
    known = [p for p in points if p["nps"] is not None]
    if len(known) < 2:
        return None
    before, last = known[-2], known[-1]
    delta = round(last["nps"] - before["nps"], 1)
    margin = round(math.hypot(last["margin_of_error"] or 0, before["margin_of_error"] or 0), 1)
    return {"from": before["key"], "to": last["key"], "delta": delta, "margin": margin,
            "significant": abs(delta) > margin}


_pool: tuple[int, ThreadPoolExecutor] | None = None


def _in_parallel(*jobs):
    """Run `job(db)` for each job at once, each on its own connection; return the results.

    The first job runs on this thread's connection; a None job gives None.
    """
    global _pool
    if _pool is None or _pool[0] != os.getpid():  # a forked worker needs its own threads
        _pool = (os.getpid(), ThreadPoolExecutor(max_workers=2, thread_name_prefix="report"))
    path = _settings()["SURVEY_DATABASE"]

    def on_own_connection(job):
        own = db_.connect(path)
        try:
            return job(own)
        finally:
            own.close()

    futures = [_pool[1].submit(on_own_connection, job) if job else None for job in jobs[1:]]
    first = jobs[0](get_db())
    return [first, *(f.result() if f else None for f in futures)]


@bp.get("/")
@login_required
def dashboard():
    db = get_db()
    policy = _policy()
    campaign_id = _int_arg("campaign")
    by = request.args.get("by", "company")
    attributes = attribute_names(db)
    if by not in BREAKDOWNS and not (by.startswith("attribute:")
                                     and by.split(":", 1)[1] in attributes):
        by = "company"
    campaign_list = staff.campaign_names(db)
    names = {c["id"]: c["name"] for c in campaign_list}
    # One pass per question, each following an index (see nps.report): every campaign
    # with its response rate and the 0-10 scores; the breakdown and the quarters need
    # no delivery counts. The three run at once on their own connections (SQLite reads
    # in parallel; sqlite3 releases the GIL), so the page costs about the slowest one.
    breakdown = by != "campaign"
    all_campaigns, breakdown_report, quarter_report = _in_parallel(
        lambda db: nps.report(db, by="campaign", policy=policy),
        (lambda db: nps.report(db, campaign_id=campaign_id, policy=policy, by=by,
                               include_sent=False)) if breakdown else None,
        lambda db: nps.report(db, campaign_id=campaign_id, by="quarter", policy=policy,
                              include_sent=False))
    per_campaign = all_campaigns["groups"]
    for group in per_campaign:
        group["name"] = names.get(group["key"], f"#{group['key']}")
    if campaign_id is None:
        overall, counts = all_campaigns, all_campaigns["scores"]
    else:
        overall = next((g for g in per_campaign if g["key"] == campaign_id), None) \
            or nps.report(db, campaign_id=campaign_id, policy=policy)
        counts = nps.distribution(db, campaign_id=campaign_id, policy=policy)
    if breakdown:
        groups = breakdown_report["groups"]
    else:
        groups = [dict(g, key=g["name"]) for g in per_campaign
                  if campaign_id is None or g["key"] == campaign_id]
    quarters = quarter_report["groups"]
    quarters = [q for q in quarters if q["key"]]
    return render_template(
        "staff/dashboard.html", overall=overall, per_campaign=per_campaign, groups=groups,
        quarters=quarters, change=change(quarters), by=by, breakdowns=BREAKDOWNS,
        attributes=attributes, campaigns=campaign_list, campaign_id=campaign_id,
        campaign_name=names.get(campaign_id),
        case_counts=staff.case_counts(db, policy, all_campaigns["detractors"]),
        breakdown_rates=by == "campaign",
        distribution_svg=Markup(charts.distribution(counts)),
        trend_svg=Markup(charts.trend([(q["key"], q["nps"], q["margin_of_error"])
                                       for q in quarters])),
        nps_bar=lambda g: Markup(charts.nps_bar(g["nps"], g["margin_of_error"])))


# Follow-up cases --------------------------------------------------------------------------


def dispatch_after(response: Response) -> Response:
    """Send due alerts and webhooks once this response is on its way to the client.

    The queue is durable: whatever this misses (a crash, a slow receiver), the next dispatch
    or `survey-mailer notify --watch` sends.
    """
    app = current_app._get_current_object()
    db, config = get_db(), _settings()

    def run():
        try:
            # A small batch with short timeouts: this holds a worker; `notify --watch`
            # does the long tail.
            notify.dispatch(db, config, limit=5, timeout=3)
        except Exception:  # logged; the work stays queued for the next dispatch
            app.logger.exception("notification dispatch failed")

    response.call_on_close(run)
    return response


def _dispatch_soon() -> None:
    after_this_request(dispatch_after)


@bp.get("/followups")
@login_required
def followups():
    db = get_db()
    status = request.args.get("status", "")
    status = status if status in staff.STATUSES else ""
    assignee = request.args.get("assignee", "")
    campaign_id = _int_arg("campaign")
    cases = staff.list_cases(
        db, _policy(), status=status or None, campaign_id=campaign_id,
        unassigned=assignee == "none",
        assignee_id=int(assignee) if assignee.isdigit() else None)
    return render_template(
        "staff/followups.html", cases=cases, status=status, assignee=assignee,
        campaign_id=campaign_id, users=staff.list_users(db),
        campaigns=staff.campaign_names(db), counts=staff.case_counts(db, _policy()))


@bp.route("/followups/<int:response_id>", methods=["GET", "POST"])
@login_required
def case(response_id: int):
    db = get_db()
    try:
        found = staff.get_case(db, response_id, _policy())
    except NotFound:
        abort(404)
    users = staff.list_users(db)
    form = CaseForm(data={"status": found["status"],
                          "assignee": str(found["assignee_id"] or "")})
    form.assignee.choices = {"": "Nobody", **{str(u["id"]): u["email"] for u in users}}
    if form.validate_on_submit():
        assignee = int(form.assignee.data) if form.assignee.data else None
        changes = staff.update_case(db, response_id, by=current_user.id,
                                    status=form.status.data, assignee_id=assignee,
                                    note=form.note.data or "")
        if changes:
            who = found["name"] or found["email"]
            notify.queue_case_update(
                db, _settings(), response_id,
                {"status": form.status.data, "assignee_id": assignee,
                 "note": (form.note.data or "").strip() or None, "by": current_user.email},
                f"Case of {notify.slack_escape(who)} (score {found['score']}) updated by "
                f"{current_user.email}: {', '.join(changes)}")
            _dispatch_soon()
            flash("Case updated: " + ", ".join(changes) + ".", "success")
        else:
            flash("Nothing changed.", "info")
        return redirect(url_for("staff.case", response_id=response_id), 303)
    return render_template("staff/case.html", case=found, form=form), \
        400 if form.errors else 200


# Testimonials -----------------------------------------------------------------------------


@bp.get("/testimonials")
@login_required
def testimonials():
    status = request.args.get("status", "pending")
    status = status if status in ("pending", "approved", "rejected", "all") else "pending"
    db = get_db()
    rows = staff.list_testimonials(db, None if status == "all" else status)
    forms = {row["id"]: TestimonialForm(prefix=f"t{row['id']}",
                                        data={"display_name": row["display_name"]})
             for row in rows}
    counts = {s: len(staff.list_testimonials(db, s))
              for s in ("pending", "approved", "rejected")}
    return render_template("staff/testimonials.html", rows=rows, forms=forms, status=status,
                           counts=counts)


@bp.post("/testimonials/<int:response_id>")
@login_required
def moderate(response_id: int):
    form = TestimonialForm(prefix=f"t{response_id}")
    if not form.validate_on_submit():
        abort(400)
    try:
        staff.moderate(get_db(), response_id, by=current_user.id, action=form.action.data,
                       display_name=form.display_name.data or "")
    except NotFound:
        abort(404)
    words = {"approve": "Approved and published", "reject": "Rejected",
             "rename": "Name saved"}[form.action.data]
    flash(f"{words}.", "success")
    return redirect(url_for("staff.testimonials", status=request.args.get("status", "pending")),
                    303)


# Responses --------------------------------------------------------------------------------


@bp.get("/responses")
@login_required
def responses_page():
    db = get_db()
    query = request.args.get("q", "").strip()[:200]
    campaign_id = _int_arg("campaign")
    automated = request.args.get("filtered") == "1"
    page = max(1, _int_arg("page") or 1)
    rows = staff.search_responses(db, _policy(), query=query, campaign_id=campaign_id,
                                  automated=automated, limit=PAGE_SIZE + 1,
                                  offset=(page - 1) * PAGE_SIZE)
    filtered_count = db.execute("SELECT count(*) FROM responses WHERE automated = 1 "
                                "AND confirmed = 0").fetchone()[0]
    return render_template(
        "staff/responses.html", rows=rows[:PAGE_SIZE], more=len(rows) > PAGE_SIZE, page=page,
        q=query, campaign_id=campaign_id, automated=automated,
        campaigns=staff.campaign_names(db), restore_form=PostForm(),
        filtered_count=filtered_count)


@bp.post("/responses/<int:response_id>/restore")
@login_required
def restore(response_id: int):
    if not PostForm().validate_on_submit():
        abort(400)
    db = get_db()
    try:
        staff.restore_as_human(db, response_id, current_user.email)
    except NotFound:
        abort(404)
    notify.queue_response(db, _settings(), response_id)
    _dispatch_soon()
    flash("Restored as a person's answer: it now counts.", "success")
    return redirect(request.referrer if _same_site(request.referrer)
                    else url_for("staff.responses_page", filtered=1), 303)


def _same_site(url: str | None) -> bool:
    return bool(url) and urlsplit(url).netloc == request.host \
        and urlsplit(url).path.startswith("/staff/")


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _defuse(value):
    """Keep a spreadsheet from running a cell as a formula (OWASP CSV injection)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


@bp.get("/responses.csv")
@login_required
def responses_csv():
    campaign_id = _int_arg("campaign")
    rows = responses.export_rows(get_db(), campaign_id, _policy())
    safe = ({k: _defuse(v) for k, v in row.items()} for row in rows)

    def generate():
        # Streamed in chunks so a million rows never sit in memory at once.
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, responses.EXPORT_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for number, row in enumerate(safe, 1):
            writer.writerow(row)
            if number % 1000 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    name = f"responses-campaign-{campaign_id}.csv" if campaign_id else "responses.csv"
    return Response(generate(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.errorhandler(SurveyError)
def survey_error(e: SurveyError):
    flash(str(e), "error")
    return redirect(url_for("staff.dashboard"))
