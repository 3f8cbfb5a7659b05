"""Accounts (SPEC 13): every company's NPS, at-risk first, and one account's page."""

from __future__ import annotations

from flask import abort, render_template

from survey_mailer import account_page, reports
from survey_mailer.errors import NotFound

from ..db import get_db
from . import bp, settings
from .roles import role_required

SHOWN = 500  # accounts listed on the page, at risk first; the report has them all


@bp.get("/accounts")
@role_required("support")
def accounts():
    report = reports.build(get_db(), settings(), by="account")
    return render_template("staff/accounts.html", report=report, shown=SHOWN,
                           renewal_days=settings()["SURVEY_RENEWAL_WINDOW_DAYS"])


@bp.get("/accounts/<path:company>")
@role_required("support")
def account(company: str):
    try:
        found = account_page.detail(get_db(), settings(), company)
    except NotFound:
        abort(404)
    return render_template("staff/account.html", account=found)
