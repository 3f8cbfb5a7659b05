"""Public survey pages: the score link, the three segment pages, unsubscribe."""

from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, RadioField, SelectChoice, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, StopValidation, ValidationError

from survey_mailer import branding, contacts, humans, responses, samples, scores
from survey_mailer import db as db_
from survey_mailer.compose import strings as email_strings
from survey_mailer.errors import NotFound, SurveyError
from survey_mailer.scores import segment

from .background import dispatch_soon
from .db import get_db
from .errors import PageError
from .extensions import csrf, limiter

bp = Blueprint("survey", __name__)

PAGES = {"detractor": "survey.feedback", "passive": "survey.comment",
         "promoter": "survey.testimonial"}
SEGMENTS = {page: name for name, page in PAGES.items()}
PAGE_PATHS = {"detractor": "/feedback/", "passive": "/comment/", "promoter": "/testimonial/"}
SCORES = [SelectChoice(n, str(n)) for n in range(11)]  # tuples are deprecated in WTForms 3.3
PUBLIC_POST_LIMIT = "30 per minute"
BEACON_LIMIT = "60 per minute"  # one per page view; a whole office may share an address


class ScoreField(RadioField):
    """The 0-10 scale: only "0" to "10" in ASCII is a score (scores.parse), one message else."""

    message = _l("Choose a score from 0 to 10.")

    def process_formdata(self, valuelist):
        # int() would read "٥", "５" or "01" as scores; anything odd is no score at all.
        if valuelist:
            self.data = scores.parse(valuelist[0])

    def pre_validate(self, form):
        if self.data not in scores.SCORES:
            raise StopValidation(self.message)


class AnswerForm(FlaskForm):
    score = ScoreField(_l("Your score"), choices=SCORES, coerce=int,
                       validators=[InputRequired(ScoreField.message)])
    # default="": a form sent without the field reads as empty, not None.
    comment = TextAreaField(validators=[Length(max=5000)], default="")
    contact_ok = BooleanField(_l("You may contact me about my answer"))
    display_name = StringField(_l("Your name as it may appear"), validators=[Length(max=100)],
                               default="")
    testimonial_consent = BooleanField(_l("You may publish my words with this name"))

    def validate_display_name(self, field):
        # Consent is to publish under a name the promoter chose, never their full name.
        if self.testimonial_consent.data and not (field.data or "").strip():
            raise ValidationError(_l("Type the name we may show with your words, or leave "
                                     "the box below unticked."))


class UnsubscribeForm(FlaskForm):
    confirm = HiddenField(default="yes")


def _settings():
    return current_app.extensions["survey"]


def _delivery(purpose: str, token: str) -> dict:
    """Return the delivery a token names (or raise BadLink/LinkExpired); set its language."""
    delivery_id = current_app.extensions["links"].delivery_id(purpose, token)
    found = responses.delivery(get_db(), delivery_id)
    if found is None:
        raise PageError(_l("This link does not work"),
                        _l("This survey no longer exists."), 404)
    _look(found)
    return found


def _look(found: dict) -> None:
    """The delivery's language and its campaign's logo and accent, for the page's layout."""
    g.locale = found["language"]
    g.look = {"logo": branding.path(found["campaign_id"], found["logo_digest"],
                                    found["logo_type"]),
              "accent": found["accent"][1:] if found["accent"] else ""}


def _ip_hash() -> str:
    return responses.ip_hash(request.remote_addr, current_app.config["SECRET_KEY"])


@bp.get("/healthz")
def healthz():
    db_.ping(get_db())
    return {"status": "ok"}


@bp.get("/logo/<int:campaign_id>/<digest>.<any(png, jpg):ext>")
def logo(campaign_id: int, digest: str, ext: str):
    """A campaign's logo: for the email's header and the landing pages; its URL changes
    with the image, so it is cached for good."""
    try:
        content_type, data = branding.logo(get_db(), campaign_id, digest)
    except NotFound:
        raise PageError(_l("Page not found"), _l("There is nothing at this address."),
                        404) from None
    response = current_app.response_class(data, mimetype=content_type)
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


@bp.get("/accent/<colour>.css")
def accent_css(colour: str):
    """The landing pages' accent colour as a style sheet (the CSP allows no inline style)."""
    try:
        accent = branding.check_accent("#" + colour) if len(colour) == 6 else ""
    except SurveyError:
        accent = ""
    if not accent:
        raise PageError(_l("Page not found"), _l("There is nothing at this address."), 404)
    # Light pages only: a dark accent on the dark theme's background would be unreadable,
    # so dark mode keeps its own.
    response = current_app.response_class(
        f"@media (prefers-color-scheme: light) {{ :root {{ --accent: {accent};"
        f" --on-accent: #ffffff; }} }}\n", mimetype="text/css")
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


@bp.get("/favicon.ico")
def favicon():
    # Browsers ask for /favicon.ico whatever the page links; the icon is an SVG.
    return redirect(url_for("static", filename="favicon.svg"), 301)


@bp.route("/r/<token>/<score>", methods=["GET"])
def score_link(token: str, score: str):
    """Record a click on one of the email's buttons and open the segment's page."""
    delivery_id = current_app.extensions["links"].delivery_id("score", token)
    if delivery_id == samples.TEST_DELIVERY:  # a staff member trying a test email
        raise PageError(_l("This was a test email"),
                        _l("Its buttons work like the real ones, but nothing is recorded."),
                        200)
    if score == "hp":  # the hidden honeypot link: only a machine follows it
        found = responses.click_target(get_db(), delivery_id)
        if found is not None and request.method == "GET" and not _is_prefetch():
            _record(delivery_id, None, kind="honeypot")
        return "", 204
    value = scores.parse(score)
    if value is None:
        raise PageError(_l("That score is not on the scale"),
                        _l("Scores go from 0 to 10. Please click one of the buttons in the "
                           "email."), 404)
    # HEAD and prefetches are machines looking ahead: answer, record nothing. A click needs
    # no lookup first: recording it checks the delivery exists (its foreign key).
    try:
        if request.method == "HEAD" or _is_prefetch():
            if responses.click_target(get_db(), delivery_id) is None:
                raise NotFound("delivery", delivery_id)
        else:
            _record(delivery_id, value)
    except NotFound:
        raise PageError(_l("This link does not work"), _l("This survey no longer exists."),
                        404) from None
    # The redirect is built by hand (url_for and redirect() cost a third of this route,
    # which runs per click under load); a test checks it matches url_for.
    response = current_app.response_class(status=303)
    response.headers["Location"] = request.script_root + PAGE_PATHS[segment(value)] + token
    return response


@bp.get("/v/<token>")
def view(token: str):
    """The web version of the email, its first link: eleven score links, no vote recorded.

    Link previews and unfurls fetch a message's first URL; here that fetch records no
    score, only a click of kind "view" in the delivery's machine traffic.
    """
    found = _delivery("score", token)
    if request.method == "GET" and not _is_prefetch():
        humans.log_click(get_db(), found["id"], None, method=request.method, kind="view",
                         user_agent=request.user_agent.string, ip_hash=_ip_hash(),
                         reason="first-link")
    s = email_strings(found["language"])
    links = current_app.extensions["links"]
    return render_template("survey/view.html", delivery=found,
                           question=s["question"].format(brand=found["brand"]),
                           intro=s["intro"], score_urls=[
                               links.score_url(token, n).removeprefix(links.base_url)
                               for n in scores.SCORES])


@limiter.request_filter
def _clicks_unlimited() -> bool:
    # The score route has no rate limit (a whole office may click from one address), so
    # the limiter's per-request bookkeeping, a sixth of the route's time, is skipped there.
    return request.endpoint == "survey.score_link"


def _record(delivery_id: int, score: int | None, kind: str = "score") -> None:
    user_agent = request.user_agent.string
    # The raw address is only looked at here, against the scanner networks; it is stored
    # as a keyed hash.
    reason = humans.scanners_for(_settings()).reason(user_agent, request.remote_addr)
    humans.log_click(get_db(), delivery_id, score, method=request.method, kind=kind,
                     user_agent=user_agent, ip_hash=_ip_hash(), reason=reason)


@bp.post("/b/<token>")
@csrf.exempt  # no form: the signed beacon token is the proof, and the limit caps abuse
@limiter.limit(BEACON_LIMIT)
def beacon(token: str):
    """Confirm a response: the landing page saw a real pointer, touch or key event."""
    delivery_id = current_app.extensions["links"].delivery_id("beacon", token)
    event = request.form.get("event", "")[:20]
    humans.confirm(get_db(), delivery_id, by=f"beacon:{event}" if event else "beacon")
    return "", 204


@bp.post("/s/<token>")
@csrf.exempt  # like the beacon: the signed token is the proof, the limit caps abuse
@limiter.limit(BEACON_LIMIT)
def seen(token: str):
    """The landing page of a score was shown in a visible, focused tab no automation drives."""
    delivery_id = current_app.extensions["links"].delivery_id("seen", token)
    score = scores.parse(request.form.get("score", ""))
    # The page's own request is checked against the scanner lists like a click is.
    if score is not None and humans.scanners_for(_settings()).reason(
            request.user_agent.string, request.remote_addr) is None:
        humans.page_seen(get_db(), delivery_id, score)
    return "", 204


def _is_prefetch() -> bool:
    # From the WSGI environ rather than request.headers: about 3 us instead of 6-8.
    purpose = (request.environ.get("HTTP_SEC_PURPOSE") or request.environ.get("HTTP_PURPOSE")
               or "").lower()
    return "prefetch" in purpose or "prerender" in purpose


def _answer_page(token: str, page: str):
    found = _delivery("score", token)
    current = found["score"]
    if request.method == "GET" and current is not None and PAGES[segment(current)] != page:
        return redirect(url_for(PAGES[segment(current)], token=token), 303)
    form = AnswerForm(data={
        "score": current, "comment": found["comment"] or "",
        "contact_ok": bool(found["contact_ok"]), "display_name": found["display_name"] or "",
        "testimonial_consent": False,
    })
    if request.method == "POST":
        form = AnswerForm()
        if form.validate():
            score = form.score.data
            moved = PAGES[segment(score)] != page
            promoter_page = page == "survey.testimonial" and not moved
            response_id = responses.save_answer(
                get_db(), found, score=score, comment=form.comment.data.strip(),
                contact_ok=segment(score) == "detractor" and form.contact_ok.data,
                display_name=form.display_name.data.strip() if promoter_page else "",
                testimonial_consent=promoter_page and form.testimonial_consent.data)
            # A person sent this: alert support now rather than at the worker's next round
            # (this answer only: the backlog is the worker's).
            dispatch_soon(response_id)
            if moved and segment(score) != "passive":
                # Sent without JavaScript after choosing another segment's score: what was
                # typed is saved, and the new segment's page asks what this one did not
                # (may we contact you; a testimonial). A passive is asked nothing more.
                flash(_("Thank you: your answer is saved, with a score of %(score)s.",
                        score=score))
                return redirect(url_for(PAGES[segment(score)], token=token), 303)
            return render_template("survey/thanks.html", delivery=found, score=score,
                                   segment=segment(score), token=token,
                                   asked_testimonial=promoter_page)
    links = current_app.extensions["links"]
    return render_template("survey/answer.html", form=form, delivery=found, token=token,
                           segment=SEGMENTS[page], pages=PAGES, segment_of=segment,
                           settings=_settings(),
                           beacon_url=url_for("survey.beacon",
                                              token=links.token("beacon", found["id"])),
                           seen_url=url_for("survey.seen",
                                            token=links.token("seen", found["id"]))
                           ), 200 if not form.errors else 400


@bp.route("/feedback/<token>", methods=["GET", "POST"])
@limiter.limit(PUBLIC_POST_LIMIT, methods=["POST"])
def feedback(token: str):
    """Detractors: what could we do better, and may we contact you."""
    return _answer_page(token, "survey.feedback")


@bp.route("/comment/<token>", methods=["GET", "POST"])
@limiter.limit(PUBLIC_POST_LIMIT, methods=["POST"])
def comment(token: str):
    """Passives: what would make it a 9 or 10."""
    return _answer_page(token, "survey.comment")


@bp.route("/testimonial/<token>", methods=["GET", "POST"])
@limiter.limit(PUBLIC_POST_LIMIT, methods=["POST"])
def testimonial(token: str):
    """Promoters: a testimonial, published only with consent."""
    return _answer_page(token, "survey.testimonial")


@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
@csrf.exempt  # RFC 8058 one-click; the confirm form checks its own token
@limiter.limit(PUBLIC_POST_LIMIT, methods=["POST"])
def unsubscribe(token: str):
    """GET asks to confirm; POST unsubscribes (RFC 8058 one-click needs no CSRF token)."""
    delivery_id = current_app.extensions["links"].delivery_id("unsubscribe", token)
    found = responses.delivery(get_db(), delivery_id)
    if found is None:
        raise PageError(_l("This link does not work"), _l("This survey no longer exists."),
                        404)
    _look(found)
    if request.method == "POST" and request.form.get("List-Unsubscribe") == "One-Click":
        contacts.unsubscribe(get_db(), found["contact_id"], method="one-click",
                             delivery_id=delivery_id)
        return "Unsubscribed\n", 200, {"Content-Type": "text/plain; charset=utf-8"}
    form = UnsubscribeForm()
    if request.method == "POST":
        if not form.validate():
            raise PageError(_l("Please send the form again"),
                            _l("The page was open too long or cookies are blocked. Reload "
                               "the page and press the button again."), 400)
        contacts.unsubscribe(get_db(), found["contact_id"], method="form",
                             delivery_id=delivery_id)
        return render_template("survey/unsubscribed.html", delivery=found)
    return render_template("survey/unsubscribe.html", form=form, delivery=found)
