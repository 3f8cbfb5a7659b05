"""The NPS dashboard."""

from __future__ import annotations

from flask import render_template, request
from flask_login import login_required
from markupsafe import Markup

from survey_mailer import charts
from survey_mailer import dashboard as dashboard_

from ..args import int_arg
from ..db import get_db
from . import bp, policy


@bp.get("/")
@login_required
def dashboard():
    data = dashboard_.summary(get_db(), policy(), campaign_id=int_arg("campaign"),
                              by=request.args.get("by", "company"))
    return render_template(
        "staff/dashboard.html", **data, breakdowns=dashboard_.BREAKDOWNS,
        breakdown_rates=data["by"] == "campaign",
        distribution_svg=Markup(charts.distribution(data["scores"])),
        trend_svg=Markup(charts.trend([(q["key"], q["nps"], q["margin_of_error"])
                                       for q in data["quarters"]])),
        nps_bar=lambda g: Markup(charts.nps_bar(g["nps"], g["margin_of_error"])))
