"""Themes (SPEC 13): keyword rules that tag comments, and tags set by hand on a case."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from survey_mailer import cases, themes
from survey_mailer.errors import NotFound, SurveyError

from ..db import get_db
from . import PostForm, bp, policy
from .roles import role_required


class ThemeForm(FlaskForm):
    name = StringField("Theme", validators=[DataRequired(), Length(max=60)])
    words = TextAreaField("Words", validators=[Length(max=5000)])


@bp.route("/themes", methods=["GET", "POST"])
@role_required("support")
def themes_page():
    db = get_db()
    form = ThemeForm()
    if form.validate_on_submit():
        try:
            themes.save(db, form.name.data, form.words.data or "")
        except SurveyError as e:
            form.name.errors = [*form.name.errors, str(e)]
        else:
            flash(f'Theme "{form.name.data.strip()}" saved: comments, old ones included, are '
                  "tagged by the worker's next round.", "success")
            return redirect(url_for("staff.themes_page"), 303)
    counts = {c["id"]: c for c in themes.counts(db, policy())}
    return render_template("staff/themes.html", form=form, themes=themes.list_themes(db),
                           counts=counts, stale=themes.stale(db), delete_form=PostForm()), \
        400 if form.errors else 200


@bp.post("/themes/<id:theme_id>")
@role_required("support")
def theme_save(theme_id: int):
    form = ThemeForm()
    if form.validate_on_submit():
        try:
            themes.save(get_db(), form.name.data, form.words.data or "", theme_id)
        except NotFound:
            abort(404)
        except SurveyError as e:
            flash(f"Not saved: {e}.", "error")
        else:
            flash("Theme saved: the worker's next round tags comments again.", "success")
    else:
        flash("Not saved: a theme needs a name of 1 to 60 characters.", "error")
    return redirect(url_for("staff.themes_page"), 303)


@bp.post("/themes/<id:theme_id>/delete")
@role_required("support")
def theme_delete(theme_id: int):
    if PostForm().validate_on_submit():
        try:
            themes.delete(get_db(), theme_id)
        except NotFound:  # e.g. the button clicked twice: the theme is gone either way
            flash("That theme was deleted already.", "info")
        else:
            flash("Theme deleted with its tags.", "success")
    return redirect(url_for("staff.themes_page"), 303)


@bp.post("/followups/<id:response_id>/themes")
@role_required("support")
def case_themes(response_id: int):
    """Tag (or untag) a case's response with a theme by hand."""
    db = get_db()
    try:
        cases.get_case(db, response_id, policy())
    except NotFound:
        abort(404)
    theme_id = request.form.get("theme", "")
    known = {str(t["id"]) for t in themes.list_themes(db)}
    if PostForm().validate_on_submit() and theme_id in known:
        themes.tag(db, response_id, int(theme_id), on=request.form.get("on") != "0")
        flash("Themes updated.", "success")
    else:
        flash("Choose a theme to tag.", "error")
    return redirect(url_for("staff.case", response_id=response_id), 303)
