"""Public JSON and widget: approved testimonials; the JSON API under /api/v1 with bearer keys."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g, render_template, request, url_for

from survey_mailer import api_keys, nps, testimonials
from survey_mailer import campaigns as campaigns_
from survey_mailer.db import parse_id

from .db import get_db
from .errors import ApiError, json_response

bp = Blueprint("api", __name__)

CACHE_SECONDS = 300


def _public(response: Response) -> Response:
    """Add CORS and caching headers; answer 304 when the client's copy is current."""
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = f"public, max-age={CACHE_SECONDS}"
    response.headers["Vary"] = "Accept-Encoding"
    response.add_etag()
    return response.make_conditional(request)


@bp.get("/testimonials.json")
def testimonials_json():
    """Approved testimonials, newest first."""
    items = [{"name": t["name"], "quote": t["quote"], "score": t["score"],
              "approved_at": t["approved_at"]}
             for t in testimonials.published(get_db())]
    return _public(json_response({"testimonials": items}))


@bp.get("/testimonials/widget")
def testimonials_widget():
    """An HTML page of approved testimonials, to embed with an <iframe>."""
    g.embeddable = True
    html = render_template("staff/widget.html",
                           items=testimonials.published(get_db(), limit=12),
                           css=url_for("static", filename="widget.css", _external=True))
    response = _public(Response(html, mimetype="text/html"))
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; frame-ancestors *; base-uri 'none'")
    return response


# /api/v1 ----------------------------------------------------------------------------------


@bp.before_request
def authorise():
    """Every /api/v1 route needs a valid bearer key."""
    if not request.path.startswith("/api/v1/"):
        return
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip() or \
            api_keys.check_api_key(get_db(), key.strip()) is None:
        raise ApiError(401, "send an API key as: Authorization: Bearer KEY",
                       headers={"WWW-Authenticate": 'Bearer realm="survey-mailer"'})


def _campaign_arg() -> int | None:
    """Return ?campaign= as an existing campaign's id, or raise ApiError naming it."""
    text = request.args.get("campaign", "")
    if not text:
        return None
    campaign_id = parse_id(text)
    if campaign_id is None:
        raise ApiError(400, f'campaign "{text[:40]}" is not a campaign id', "campaign")
    campaigns_.get(get_db(), campaign_id)  # NotFound: 404
    return campaign_id


@bp.get("/api/v1/stats")
def stats():
    """NPS report as JSON, same shape as `survey-mailer report --format json`."""
    settings = current_app.extensions["survey"]
    result = nps.report(get_db(), campaign_id=_campaign_arg(),
                        by=request.args.get("by") or None,
                        policy=settings["SURVEY_SCORE_POLICY"])
    return json_response(result, headers={"Cache-Control": "no-store"})
