"""Admins' pages: the team's accounts and roles, and the API keys."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import InputRequired, Length

from survey_mailer import api_keys, campaigns, users
from survey_mailer.errors import NotFound, SurveyError

from ..db import get_db
from . import PostForm, bp
from .roles import role_required

ROLE_CHOICES = [SelectChoice(role, role.capitalize()) for role in users.ROLES]


class AddForm(FlaskForm):
    email = EmailField("Email", validators=[InputRequired(), Length(max=254)])
    role = SelectField("Role", choices=ROLE_CHOICES, default="support")
    password = PasswordField("First password", validators=[
        InputRequired(), Length(min=users.MIN_PASSWORD, max=200)])


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=ROLE_CHOICES)


class KeyForm(FlaskForm):
    name = StringField("Name", validators=[InputRequired(), Length(max=100)])
    campaign = SelectField("Campaign", choices=[], validate_choice=True)


def _team_page(form: AddForm, status: int = 200):
    rows = users.list_users(get_db())
    roles = {row["id"]: RoleForm(prefix=f"u{row['id']}", data={"role": row["role"]})
             for row in rows}
    return render_template("staff/team.html", rows=rows, form=form, roles=roles,
                           post=PostForm()), status


@bp.get("/team")
@role_required("admin")
def team():
    return _team_page(AddForm())


@bp.post("/team")
@role_required("admin")
def add_member():
    form = AddForm()
    if not form.validate_on_submit():
        return _team_page(form, 400)
    try:
        _, created = users.add_user(get_db(), form.email.data, form.password.data,
                                    form.role.data)
    except SurveyError as e:
        form.email.errors.append(str(e))
        return _team_page(form, 400)
    flash(f"{form.email.data} {'added' if created else 'has a new password'}; give them "
          f"the password yourself, by a channel you trust.", "success")
    return redirect(url_for("staff.team"), 303)


@bp.post("/team/<id:user_id>/role")
@role_required("admin")
def change_role(user_id: int):
    form = RoleForm(prefix=f"u{user_id}")
    if not form.validate_on_submit():
        abort(400)
    try:
        users.set_role(get_db(), user_id, form.role.data)
    except NotFound:
        abort(404)
    except SurveyError as e:
        flash(f"Not changed: {e}.", "error")
    else:
        flash(f"Role changed to {form.role.data}; that account logs in again.", "success")
    return redirect(url_for("staff.team"), 303)


@bp.post("/team/<id:user_id>/remove")
@role_required("admin")
def remove_member(user_id: int):
    if not PostForm().validate_on_submit():
        abort(400)
    if user_id == current_user.id:
        flash("Not removed: you cannot remove your own account.", "error")
        return redirect(url_for("staff.team"), 303)
    try:
        email = users.remove_user(get_db(), user_id)
    except NotFound:
        abort(404)
    except SurveyError as e:
        flash(f"Not removed: {e}.", "error")
    else:
        flash(f"{email} removed; their cases are unassigned.", "success")
    return redirect(url_for("staff.team"), 303)


# API keys ----------------------------------------------------------------------------------


def _key_form() -> KeyForm:
    form = KeyForm()
    form.campaign.choices = [SelectChoice("", "Every campaign (/api/v1 only)")] + [
        SelectChoice(str(c["id"]), c["name"]) for c in campaigns.names(get_db())]
    return form


def _keys_page(form: KeyForm, new_key: str | None = None, status: int = 200):
    return render_template("staff/api_keys.html", rows=api_keys.list_api_keys(get_db()),
                           form=form, new_key=new_key, post=PostForm(),
                           campaign_names={c.value: c.label for c in form.campaign.choices}
                           ), status


@bp.get("/api-keys")
@role_required("admin")
def keys():
    return _keys_page(_key_form())


@bp.post("/api-keys")
@role_required("admin")
def create_key():
    form = _key_form()
    if not form.validate_on_submit():
        return _keys_page(form, status=400)
    campaign_id = int(form.campaign.data) if form.campaign.data else None
    key = api_keys.create_api_key(get_db(), form.name.data.strip(), campaign_id)
    return _keys_page(_key_form(), new_key=key, status=201)


@bp.post("/api-keys/<id:key_id>/revoke")
@role_required("admin")
def revoke_key(key_id: int):
    if not PostForm().validate_on_submit():
        abort(400)
    try:
        revoked = api_keys.revoke_api_key(get_db(), key_id)
    except NotFound:
        abort(404)
    flash("Key revoked: requests with it are refused from now on." if revoked else
          "That key was revoked already.", "success" if revoked else "info")
    return redirect(url_for("staff.keys"), 303)
