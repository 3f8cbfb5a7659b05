"""Follow-up cases: every counted detractor, with status, assignee and notes."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import SelectField, TextAreaField
from wtforms.validators import Length

from survey_mailer import campaigns as campaigns_
from survey_mailer import cases, notify, users
from survey_mailer.errors import NotFound

from ..args import int_arg
from ..background import dispatch_soon
from ..db import get_db
from . import bp, policy, settings
from .roles import role_required


class CaseForm(FlaskForm):
    status = SelectField("Status", choices={s: s.capitalize() for s in cases.STATUSES})
    assignee = SelectField("Assignee", choices={})
    note = TextAreaField("Add a note", validators=[Length(max=5000)])


@bp.get("/followups")
@role_required("support")
def followups():
    db = get_db()
    status = request.args.get("status", "")
    status = status if status in cases.STATUSES else ""
    assignee = request.args.get("assignee", "")
    campaign_id = int_arg("campaign")
    rows = cases.list_cases(
        db, policy(), status=status or None, campaign_id=campaign_id,
        unassigned=assignee == "none", assignee_id=int_arg("assignee"))
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
    return render_template("staff/case.html", case=found, form=form,
                           problems=notify.problems(db, response_id=response_id)), \
        400 if form.errors else 200
