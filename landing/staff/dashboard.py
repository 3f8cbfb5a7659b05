"""The NPS dashboard."""

from __future__ import annotations

from flask import render_template, request
from markupsafe import Markup

from survey_mailer import charts, notify, themes
from survey_mailer import dashboard as dashboard_
from survey_mailer.clock import ago

from ..args import int_arg
from ..db import get_db
from . import bp, policy
from .roles import role_required

PROBLEM_DAYS = 7  # how long a failed alert or webhook stays on the dashboard
THEME_PERIODS = {"30": "Last 30 days", "90": "Last 90 days", "365": "Last year",
                 "all": "All time"}


@bp.get("/")
@role_required("support")
def dashboard():
    db = get_db()
    data = dashboard_.summary(db, policy(), campaign_id=int_arg("campaign"),
                              by=request.args.get("by", "company"))
    period = request.args.get("themes", "90")
    period = period if period in THEME_PERIODS else "90"
    theme_counts = themes.counts(db, policy(), since=None if period == "all"
                                 else ago(int(period) * 86400))
    return render_template(
        "staff/dashboard.html", **data, breakdowns=dashboard_.BREAKDOWNS,
        theme_counts=theme_counts, theme_period=period, theme_periods=THEME_PERIODS,
        problems=notify.problems(db, since=ago(PROBLEM_DAYS * 86400), limit=10),
        breakdown_rates=data["by"] == "campaign",
        distribution_svg=Markup(charts.distribution(data["scores"])),
        trend_svg=Markup(charts.trend([(q["key"], q["nps"], q["margin_of_error"])
                                       for q in data["quarters"]])),
        nps_bar=lambda g: Markup(charts.nps_bar(g["nps"], g["margin_of_error"])))
