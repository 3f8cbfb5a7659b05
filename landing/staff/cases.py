"""Follow-up cases: every counted detractor, with status, assignee and notes."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length

from survey_mailer import campaigns as campaigns_
from survey_mailer import cases, history, loop, notify, themes, users
from survey_mailer.errors import NotFound, SurveyError

from ..args import int_arg
from ..background import dispatch_soon
from ..db import get_db
from . import PostForm, bp, policy, settings
from .roles import role_required


class CaseForm(FlaskForm):
    status = SelectField("Status", choices={s: s.capitalize() for s in cases.STATUSES})
    assignee = SelectField("Assignee", choices={})
    note = TextAreaField("Add a note", validators=[Length(max=5000)])


class ReplyForm(FlaskForm):
    subject = StringField("Subject", validators=[DataRequired(), Length(max=200)])
    message = TextAreaField("Message", validators=[DataRequired(), Length(max=20000)])
    send = SubmitField("Send")
    resolve = SubmitField("Send and resolve")


@bp.get("/followups")
@role_required("support")
def followups():
    db = get_db()
    status = request.args.get("status", "")
    status = status if status in (*cases.STATUSES, "overdue") else ""
    assignee = request.args.get("assignee", "")
    campaign_id = int_arg("campaign")
    rows = cases.list_cases(
        db, policy(), status=status or None, campaign_id=campaign_id,
        unassigned=assignee == "none", assignee_id=int_arg("assignee"),
        sla_hours=settings()["SURVEY_CASE_SLA_HOURS"])
    return render_template(
        "staff/followups.html", cases=rows, status=status, assignee=assignee,
        campaign_id=campaign_id, users=users.list_users(db),
        campaigns=campaigns_.names(db), counts=cases.case_counts(db, policy()))


@bp.route("/followups/<id:response_id>", methods=["GET", "POST"])
@role_required("support")
def case(response_id: int):
    db = get_db()
    try:
        found = cases.get_case(db, response_id, policy())
    except NotFound:
        abort(404)
    form = CaseForm(data={"status": found["status"],
                          "assignee": str(found["assignee_id"] or "")})
    form.assignee.choices = {"": "Nobody",
                             **{str(u["id"]): u["email"] for u in users.list_users(db)}}
    if form.validate_on_submit():
        assignee = int(form.assignee.data) if form.assignee.data else None
        note = (form.note.data or "").strip()
        changes = cases.update_case(db, response_id, by=current_user.id,
                                    status=form.status.data, assignee_id=assignee, note=note)
        if changes:
            notify.queue_case_update(
                db, settings(), found, changes,
                {"status": form.status.data, "assignee_id": assignee, "note": note or None},
                by=current_user.email)
            dispatch_soon()
            flash("Case updated: " + ", ".join(changes) + ".", "success")
        else:
            flash("Nothing changed.", "info")
        return redirect(url_for("staff.case", response_id=response_id), 303)
    return _case_page(found, form, ReplyForm(subject=_reply_subject(found)))


def _reply_subject(case: dict) -> str:
    return f"About your feedback: {case['campaign_name']}"


def _case_page(found: dict, form: CaseForm, reply: ReplyForm):
    db = get_db()
    return render_template(
        "staff/case.html", case=found, form=form, reply=reply,
        support=settings()["SURVEY_SUPPORT_EMAIL"],
        themes=themes.of_responses(db, [found["id"]]).get(found["id"], []),
        all_themes=themes.list_themes(db), tag_form=PostForm(),
        history=history.of_contact(db, found["contact_id"], policy()),
        problems=notify.problems(db, response_id=found["id"])), \
        400 if form.errors or reply.errors else 200


@bp.post("/followups/<id:response_id>/reply")
@role_required("support")
def reply(response_id: int):
    """Queue a reply to the customer (sent right after this answer, or by the worker)."""
    db = get_db()
    try:
        found = cases.get_case(db, response_id, policy())
    except NotFound:
        abort(404)
    form = ReplyForm()
    if not form.validate_on_submit():
        case_form = CaseForm(data={"status": found["status"],
                                   "assignee": str(found["assignee_id"] or "")})
        case_form.assignee.choices = {"": "Nobody", **{
            str(u["id"]): u["email"] for u in users.list_users(db)}}
        return _case_page(found, case_form, form)
    resolve = bool(form.resolve.data)
    try:
        loop.queue_reply(db, settings(), response_id, by=current_user.id,
                         subject=form.subject.data, body=form.message.data, resolve=resolve)
    except SurveyError as e:
        flash(f"Not sent: {e}.", "error")
        return redirect(url_for("staff.case", response_id=response_id), 303)
    dispatch_soon()
    flash(f"Reply to {found['email']} queued" + (" and the case resolved." if resolve
                                                 else "."), "success")
    return redirect(url_for("staff.case", response_id=response_id), 303)
