"""Public JSON and widget: approved testimonials; the JSON API under /api/v1 (api_v1.py)."""

from __future__ import annotations

from flask import Blueprint, Response, g, render_template, request, url_for

from survey_mailer import testimonials

from . import api_v1
from .db import get_db
from .errors import json_response

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


# The JSON API, /api/v1/..., nested here so the app registers one API blueprint.
bp.register_blueprint(api_v1.bp)
bp.register_blueprint(api_v1.public)
