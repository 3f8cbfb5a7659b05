"""Testimonials: approve promoters' words for the website, name them, or reject them."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.validators import Length

from survey_mailer import testimonials as testimonials_
from survey_mailer.errors import NotFound, SurveyError

from ..db import get_db
from . import bp
from .roles import role_required

ACTIONS = {"approve": "Approve", "reject": "Reject", "rename": "Save name"}
DONE = {"approve": "Approved and published", "reject": "Rejected", "rename": "Name saved"}


class TestimonialForm(FlaskForm):
    display_name = StringField("Name shown", validators=[Length(max=100)])
    action = SelectField(choices=ACTIONS)


def _status(value: str | None) -> str:
    return value if value in (*testimonials_.STATUSES, "all") else "pending"


@bp.get("/testimonials")
@role_required("support")
def testimonials():
    status = _status(request.args.get("status"))
    db = get_db()
    rows = testimonials_.list_testimonials(db, None if status == "all" else status)
    forms = {row["id"]: TestimonialForm(prefix=f"t{row['id']}",
                                        data={"display_name": row["display_name"]})
             for row in rows}
    return render_template("staff/testimonials.html", rows=rows, forms=forms, status=status,
                           counts=testimonials_.counts(db))


@bp.post("/testimonials/<id:response_id>")
@role_required("support")
def moderate(response_id: int):
    form = TestimonialForm(prefix=f"t{response_id}")
    if not form.validate_on_submit():
        abort(400)
    try:
        testimonials_.moderate(get_db(), response_id, by=current_user.id,
                               action=form.action.data,
                               display_name=form.display_name.data or "")
    except NotFound:
        abort(404)
    except SurveyError as e:
        flash(f"Not published: {e}.", "error")
    else:
        flash(f"{DONE[form.action.data]}.", "success")
    return redirect(url_for("staff.testimonials", status=_status(request.args.get("status"))),
                    303)
