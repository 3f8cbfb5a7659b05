"""Marketers' contacts: upload a CSV (the rules of `contacts import`), search, a contact's
whole history, unsubscribe and erase."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField
from wtforms.validators import DataRequired

from survey_mailer import contacts as contacts_
from survey_mailer import history
from survey_mailer.errors import ImportFailed, NotFound

from ..args import MAX_ID, int_arg
from ..db import get_db
from ..extensions import csrf
from . import PostForm, bp, policy
from .roles import role_required

PAGE_SIZE = 50
MAX_UPLOAD = 20 * 1024 * 1024  # about 200,000 contacts; the rest of the app takes 64 KB


class UploadForm(FlaskForm):
    file = FileField("CSV file", validators=[FileRequired("Choose a CSV file to upload.")])


class EraseForm(FlaskForm):
    sure = BooleanField("I understand: their name, address, attributes and comments are "
                        "deleted for good", validators=[DataRequired(
                            "Tick the box to confirm: erasing cannot be undone.")])


def _list_page(form: UploadForm, problems: list[str] | None = None, status: int = 200):
    db = get_db()
    page = min(max(1, int_arg("page") or 1), MAX_ID // PAGE_SIZE)
    args = {name: request.args.get(name, "") for name in ("q", "attribute", "value", "status")}
    rows, total = contacts_.search(db, **args, page=page, per_page=PAGE_SIZE)
    return render_template(
        "staff/contacts.html", rows=rows, total=total, page=page,
        more=page * PAGE_SIZE < total, args={k: v for k, v in args.items() if v},
        attributes=contacts_.attribute_names(db), statuses=contacts_.STATUSES, form=form,
        problems=problems or [], **args), status


@bp.get("/contacts")
@role_required("marketer")
def contacts():
    return _list_page(UploadForm())


@bp.post("/contacts")
@csrf.exempt  # checked below, once the larger upload limit is set
@role_required("marketer")
def upload_contacts():
    request.max_content_length = MAX_UPLOAD
    csrf.protect()
    form = UploadForm()
    if not form.validate():
        return _list_page(form, status=400)
    try:
        imported = contacts_.import_csv(get_db(), form.file.data.read())
    except ImportFailed as e:
        return _list_page(form, e.problems, 400)
    flash(f"Imported {form.file.data.filename or 'the file'}: {imported}.", "success")
    return redirect(url_for("staff.contacts"), 303)


@bp.get("/contacts/<id:contact_id>")
@role_required("marketer")
def contact(contact_id: int):
    try:
        found = history.of_contact(get_db(), contact_id, policy())
    except NotFound:
        abort(404)
    return render_template("staff/contact.html", contact=found, post=PostForm(),
                           erase=EraseForm())


@bp.post("/contacts/<id:contact_id>/unsubscribe")
@role_required("marketer")
def unsubscribe_contact(contact_id: int):
    if not PostForm().validate_on_submit():
        abort(400)
    try:
        contacts_.get(get_db(), contact_id)
    except NotFound:
        abort(404)
    done = contacts_.unsubscribe(get_db(), contact_id, method="staff")
    flash("Unsubscribed: no survey goes to them again." if done else
          "They were unsubscribed already.", "success" if done else "info")
    return redirect(url_for("staff.contact", contact_id=contact_id), 303)


@bp.post("/contacts/<id:contact_id>/erase")
@role_required("marketer")
def erase_contact(contact_id: int):
    form = EraseForm()
    if not form.validate_on_submit():
        if form.csrf_token.errors or not form.sure.errors:
            abort(400)
        flash(form.sure.errors[0], "error")
        return redirect(url_for("staff.contact", contact_id=contact_id), 303)
    try:
        row = contacts_.get(get_db(), contact_id)
    except NotFound:
        abort(404)
    if row["erased_at"] is None:
        erased = contacts_.erase(get_db(), row["email"])
        flash(f"Erased. {erased.responses} responses stay counted without personal data; "
              f"{erased.cancelled} unsent surveys were cancelled.", "success")
    return redirect(url_for("staff.contact", contact_id=contact_id), 303)
