"""Marketers' campaigns: list, create and edit, preview in every language, schedule (the
worker sends: a web request never sends a campaign itself), live progress, pause and resume."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import IntegerField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from survey_mailer import branding, contacts, nps, progress, samples, schedules
from survey_mailer import campaigns as campaigns_
from survey_mailer.compose import preview_html
from survey_mailer.errors import NotFound, SurveyError

from ..db import get_db
from ..errors import json_response
from ..extensions import csrf
from . import PostForm, bp, policy, settings
from .roles import role_required

PERIOD_CHOICES = [SelectChoice(p, f"Every {p}") for p in schedules.PERIODS]
# The email as a recipient sees it: inline styles, no script, framed only by our own page.
PREVIEW_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data: https:; "
               "frame-ancestors 'self'; base-uri 'none'")


class CampaignForm(FlaskForm):
    name = StringField("Name", validators=[InputRequired(), Length(max=200)])
    subject = StringField("Subject", validators=[InputRequired(), Length(max=200)],
                          description="In English, and for any language left empty below")
    subject_es = StringField("Subject in Spanish", validators=[Length(max=200)])
    subject_fr = StringField("Subject in French", validators=[Length(max=200)])
    subject_sv = StringField("Subject in Swedish", validators=[Length(max=200)])
    sender = StringField("Sender", validators=[InputRequired(), Length(max=254)],
                         description='A name and address, like "Acme <nps@acme.com>"')
    brand = StringField("Brand", validators=[Length(max=100)],
                        description="The name in the question; the sender's name if empty")
    postal_address = TextAreaField("Postal address", validators=[Length(max=500)],
                                   description="Shown in the footer; required before sending")
    segment = TextAreaField("Audience", validators=[Length(max=2000)],
                            description="One ATTRIBUTE=VALUE a line (company=Acme, plan=pro);"
                                        " everyone if empty")
    accent = StringField("Accent colour", validators=[Length(max=20)],
                         description="Like #1a7f37: a line above the email, the pages' buttons;"
                                     " the default blue if empty")
    remind_after_days = IntegerField("Remind after (days)", validators=[
        Optional(), NumberRange(0, 365)], description="Empty: no reminder")


class ScheduleForm(FlaskForm):
    at = StringField("At", validators=[Optional(), Length(max=40)])
    every = SelectField("Every", choices=PERIOD_CHOICES, validators=[Optional()])


def _zone() -> ZoneInfo:
    return ZoneInfo(settings()["SURVEY_TIMEZONE"])


def _campaign(campaign_id: int) -> dict:
    try:
        return campaigns_.get(get_db(), campaign_id)
    except NotFound:
        abort(404)


@bp.get("/campaigns")
@role_required("marketer")
def campaigns():
    db = get_db()
    rows = campaigns_.list_campaigns(db, policy())
    scores = {g["key"]: g["nps"] for g in nps.report(
        db, by="campaign", policy=policy(), include_sent=False).get("groups", [])}
    for row in rows:
        row["schedule"] = schedules.describe(row, _zone())
        row["nps"] = scores.get(row["id"])
    return render_template("staff/campaigns.html", rows=rows)


def _fields(form: CampaignForm) -> dict:
    lines = [line.strip() for line in (form.segment.data or "").splitlines() if line.strip()]
    return {"name": form.name.data, "subject": form.subject.data,
            **{name: form[name].data or "" for name in campaigns_.SUBJECTS},
            "sender": form.sender.data,
            "brand": form.brand.data or "", "postal_address": form.postal_address.data or "",
            "segment": campaigns_.parse_segment(lines),
            "remind_after_days": form.remind_after_days.data, "accent": form.accent.data or ""}


def _form_page(form: CampaignForm, campaign: dict | None, status: int = 200):
    return render_template("staff/campaign_form.html", form=form, campaign=campaign), status


@bp.get("/campaigns/audience.json")
@role_required("marketer")
def audience():
    """How many contacts an audience reaches now (the form's live count)."""
    lines = [line.strip() for line in request.args.get("segment", "").splitlines()
             if line.strip()]
    try:
        segment = campaigns_.parse_segment(lines)
        campaigns_.check_segment(get_db(), segment)
    except SurveyError as e:
        return json_response({"error": str(e)}, 400)
    count = campaigns_.count_eligible(get_db(), {"id": 0, "segment": segment},
                                      settings()["SURVEY_RESURVEY_DAYS"])
    return json_response({"count": count})


@bp.route("/campaigns/new", methods=["GET", "POST"])
@role_required("marketer")
def new_campaign():
    form = CampaignForm()
    if form.validate_on_submit():
        try:
            campaign_id = campaigns_.create(get_db(), **_fields(form))
        except SurveyError as e:
            form.form_errors.append(str(e))
        else:
            flash("Campaign created. Preview it, then send or schedule it.", "success")
            return redirect(url_for("staff.campaign", campaign_id=campaign_id), 303)
    return _form_page(form, None, 400 if request.method == "POST" else 200)


@bp.route("/campaigns/<id:campaign_id>/edit", methods=["GET", "POST"])
@role_required("marketer")
def edit_campaign(campaign_id: int):
    campaign = _campaign(campaign_id)
    if request.method == "GET":
        form = CampaignForm(data={**campaign, "segment": "\n".join(
            f"{k}={v}" for k, v in campaign["segment"].items())})
    else:
        form = CampaignForm()
        if form.validate():
            try:
                campaigns_.update(get_db(), campaign_id, **_fields(form))
            except SurveyError as e:
                form.form_errors.append(str(e))
            else:
                flash("Campaign saved.", "success")
                return redirect(url_for("staff.campaign", campaign_id=campaign_id), 303)
    return _form_page(form, campaign, 400 if request.method == "POST" else 200)


@bp.get("/campaigns/<id:campaign_id>")
@role_required("marketer")
def campaign(campaign_id: int):
    db = get_db()
    found = _campaign(campaign_id)
    return render_template(
        "staff/campaign.html", campaign=found, languages=contacts.LANGUAGES, logo=LogoForm(),
        schedule=schedules.describe(found, _zone()), zone=_zone().key,
        audience=campaigns_.count_eligible(db, found, settings()["SURVEY_RESURVEY_DAYS"]),
        progress=progress.progress(db, campaign_id), form=ScheduleForm(), post=PostForm())


@bp.get("/campaigns/<id:campaign_id>/progress.json")
@role_required("marketer")
def campaign_progress(campaign_id: int):
    _campaign(campaign_id)
    return json_response(progress.progress(get_db(), campaign_id))


@bp.post("/campaigns/<id:campaign_id>/schedule")
@role_required("marketer")
def schedule_campaign(campaign_id: int):
    form = ScheduleForm()
    if not form.validate_on_submit():
        abort(400)
    _campaign(campaign_id)
    db, action = get_db(), request.form.get("action")
    try:
        if action == "now":
            campaigns_.ready(db, settings(), campaign_id)
            schedules.schedule_now(db, campaign_id)
            message = "The worker starts sending it now."
        elif action == "at":
            moment = schedules.parse_local((form.at.data or "").replace("T", " "), _zone())
            campaigns_.ready(db, settings(), campaign_id)
            schedules.schedule_at(db, campaign_id, moment)
            message = f"Scheduled for {moment:%Y-%m-%d %H:%M} {_zone().key}."
        elif action == "every":
            campaigns_.ready(db, settings(), campaign_id)
            first = schedules.schedule_every(db, campaign_id, form.every.data, _zone())
            message = f"Every {form.every.data}; the first is {first.label}."
        elif action == "off":
            schedules.unschedule(db, campaign_id)
            message = "No schedule."
        else:
            abort(400)
    except SurveyError as e:
        flash(f"Not scheduled: {e}.", "error")
    else:
        flash(message, "success")
    return redirect(url_for("staff.campaign", campaign_id=campaign_id), 303)


class LogoForm(FlaskForm):
    logo = FileField("Logo", validators=[FileRequired("Choose a PNG or JPEG image.")])


@bp.post("/campaigns/<id:campaign_id>/logo")
@csrf.exempt  # checked below, once the upload's larger limit is set
@role_required("marketer")
def upload_logo(campaign_id: int):
    request.max_content_length = branding.MAX_LOGO + 16 * 1024
    csrf.protect()
    _campaign(campaign_id)
    form = LogoForm()
    if not form.validate():
        flash(form.logo.errors[0], "error")
    else:
        try:
            branding.set_logo(get_db(), campaign_id, form.logo.data.read())
        except SurveyError as e:
            flash(f"No logo: {e}.", "error")
        else:
            flash("Logo saved: it shows in the email's header and on the landing pages.",
                  "success")
    return redirect(url_for("staff.campaign", campaign_id=campaign_id), 303)


@bp.post("/campaigns/<id:campaign_id>/logo/remove")
@role_required("marketer")
def remove_logo(campaign_id: int):
    if not PostForm().validate_on_submit():
        abort(400)
    _campaign(campaign_id)
    branding.remove_logo(get_db(), campaign_id)
    flash("Logo removed.", "success")
    return redirect(url_for("staff.campaign", campaign_id=campaign_id), 303)


@bp.post("/campaigns/<id:campaign_id>/test")
@role_required("marketer")
def test_campaign(campaign_id: int):
    """Send the campaign's email to the staff member, marked as a test, never counted."""
    if not PostForm().validate_on_submit():
        abort(400)
    _campaign(campaign_id)
    language = request.form.get("language", "en")
    if language not in contacts.LANGUAGES:
        abort(400)
    try:
        samples.send_test(get_db(), settings(), campaign_id, current_user.email, language)
    except SurveyError as e:
        flash(f"No test sent: {e}.", "error")
    else:
        flash(f"A test in {language} went to {current_user.email}. Its links record nothing.",
              "success")
    return redirect(url_for("staff.campaign", campaign_id=campaign_id), 303)


@bp.post("/campaigns/<id:campaign_id>/<any(pause, resume):action>")
@role_required("marketer")
def pause_campaign(campaign_id: int, action: str):
    if not PostForm().validate_on_submit():
        abort(400)
    _campaign(campaign_id)
    (progress.pause if action == "pause" else progress.resume)(get_db(), campaign_id)
    flash("Paused: nothing more goes out until you resume." if action == "pause" else
          "Resumed: the worker goes on sending.", "success")
    return redirect(url_for("staff.campaign", campaign_id=campaign_id), 303)


def _language() -> str:
    language = request.args.get("language", "en")
    if language not in contacts.LANGUAGES:
        abort(404)
    return language


@bp.get("/campaigns/<id:campaign_id>/preview")
@role_required("marketer")
def preview_campaign(campaign_id: int):
    return render_template("staff/campaign_preview.html", campaign=_campaign(campaign_id),
                           language=_language(), languages=contacts.LANGUAGES)


@bp.get("/campaigns/<id:campaign_id>/email.html")
@role_required("marketer")
def campaign_email(campaign_id: int):
    found = _campaign(campaign_id)
    found["postal_address"] = (found["postal_address"]
                               or settings()["SURVEY_POSTAL_ADDRESS"] or "")
    html = preview_html(found, _language(), current_app.extensions["links"])
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = PREVIEW_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response
