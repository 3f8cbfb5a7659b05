"""Public JSON and widget: approved testimonials; the JSON API under /api/v1 with bearer keys."""

from __future__ import annotations

import json

from flask import Blueprint, Flask, Response, current_app, g, render_template, request, url_for

from survey_mailer import campaigns as campaigns_
from survey_mailer import humans, nps, staff
from survey_mailer.errors import SurveyError

from .db import get_db

bp = Blueprint("api", __name__)

CACHE_SECONDS = 300


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def _json(data, status: int = 200) -> Response:
    # <, > and & as \u escapes: the same JSON, but inert if anyone pastes it into a page.
    body = (json.dumps(data, ensure_ascii=False, indent=1).replace("<", "\\u003c")
            .replace(">", "\\u003e").replace("&", "\\u0026"))
    return Response(body + "\n", status, mimetype="application/json")


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
             for t in staff.published(get_db())]
    return _public(_json({"testimonials": items}))


@bp.get("/testimonials/widget")
def testimonials_widget():
    """An HTML page of approved testimonials, to embed with an <iframe>."""
    g.embeddable = True
    html = render_template("staff/widget.html", items=staff.published(get_db(), limit=12),
                           css=url_for("static", filename="widget.css", _external=True))
    response = _public(Response(html, mimetype="text/html"))
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; frame-ancestors *; base-uri 'none'")
    return response


# /api/v1 ----------------------------------------------------------------------------------


def _api_error(status: int, message: str) -> Response:
    response = _json({"error": message}, status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="survey-mailer"'
    return response


def _authorised() -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    return scheme.lower() == "bearer" and bool(key) and \
        staff.check_api_key(get_db(), key.strip()) is not None


@bp.get("/api/v1/stats")
def stats():
    """NPS report as JSON, same shape as `survey-mailer report --format json`."""
    if not _authorised():
        return _api_error(401, "send an API key as: Authorization: Bearer KEY")
    campaign = request.args.get("campaign")
    by = request.args.get("by") or None
    settings = current_app.extensions["survey"]
    humans.fold(get_db(), settings["SURVEY_BURST_SECONDS"])
    try:
        campaign_id = int(campaign) if campaign else None
        if campaign_id is not None:
            campaigns_.get(get_db(), campaign_id)
        result = nps.report(get_db(), campaign_id=campaign_id, by=by,
                            policy=settings["SURVEY_SCORE_POLICY"])
    except ValueError:
        return _api_error(400, f'campaign "{campaign}" is not a number')
    except SurveyError as e:
        return _api_error(404 if "does not exist" in str(e) else 400, str(e))
    response = _json(result)
    response.headers["Cache-Control"] = "no-store"
    return response
