"""Every response, searchable and filterable; the same filters in its CSV download."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from survey_mailer import campaigns as campaigns_
from survey_mailer import csvfiles, humans, notify, responses, scores
from survey_mailer.errors import NotFound, SurveyError

from ..args import MAX_ID, int_arg
from ..background import dispatch_soon
from ..db import get_db
from . import PostForm, bp, policy, settings
from .roles import role_required

PAGE_SIZE = 100


def _filter() -> responses.Filter:
    """Return the filter the query string asks for; a bad date is dropped, with a message."""
    args = request.args
    segment = args.get("segment", "")
    where = responses.Filter(
        query=args.get("q", "").strip()[:200], campaign_id=int_arg("campaign"),
        company=args.get("company", "").strip()[:200],
        segment=segment if segment in scores.SEGMENTS else "",
        score=scores.parse(args.get("score", "")), since=args.get("since", "")[:10],
        until=args.get("until", "")[:10], filtered=args.get("filtered") == "1")
    for name in ("since", "until"):
        try:
            responses.Filter(**{name: getattr(where, name)}).sql()
        except SurveyError as e:
            flash(f"{e}; that date was left out.", "error")
            where = responses.Filter(**{**where.__dict__, name: ""})
    return where


def _args(where: responses.Filter) -> dict:
    """Return the query-string arguments that give this filter (links, the CSV download)."""
    return {k: v for k, v in {
        "q": where.query, "campaign": where.campaign_id, "company": where.company,
        "segment": where.segment, "score": where.score, "since": where.since,
        "until": where.until, "filtered": 1 if where.filtered else None,
    }.items() if v not in ("", None)}


@bp.get("/responses")
@role_required("support")
def responses_page():
    db = get_db()
    where = _filter()
    # Beyond the last page is an empty page, never an offset SQLite cannot hold.
    page = min(max(1, int_arg("page") or 1), MAX_ID // PAGE_SIZE)
    rows = responses.search(db, policy(), where, limit=PAGE_SIZE + 1,
                            offset=(page - 1) * PAGE_SIZE)
    return render_template(
        "staff/responses.html", rows=rows[:PAGE_SIZE], more=len(rows) > PAGE_SIZE, page=page,
        where=where, args=_args(where), q=where.query, campaign_id=where.campaign_id,
        automated=where.filtered, campaigns=campaigns_.names(db), restore_form=PostForm(),
        filtered_count=responses.count_filtered(db), segments=scores.SEGMENTS)


@bp.post("/responses/<id:response_id>/restore")
@role_required("support")
def restore(response_id: int):
    if not PostForm().validate_on_submit():
        abort(400)
    db = get_db()
    try:
        humans.restore(db, response_id, staff=current_user.email)
    except NotFound:
        abort(404)
    notify.queue_response(db, settings(), response_id)
    dispatch_soon()
    flash("Restored as a person's answer: it now counts.", "success")
    return redirect(request.referrer if _same_site(request.referrer)
                    else url_for("staff.responses_page", filtered=1), 303)


def _same_site(url: str | None) -> bool:
    try:
        parts = urlsplit(url or "")
    except ValueError:  # a Referer such as "http://[": not an address at all
        return False
    return parts.netloc == request.host and parts.path.startswith("/staff/")


@bp.get("/responses.csv")
@role_required("support")
def responses_csv():
    where = _filter()
    rows = responses.export_rows(get_db(), policy(), where)
    name = (f"responses-campaign-{where.campaign_id}.csv" if where.campaign_id
            else "responses.csv")
    # Streamed in chunks of rows, formulas defused: a million rows never sit in memory.
    return Response(csvfiles.chunks(rows, responses.EXPORT_COLUMNS), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
