"""The Flask app: public survey pages, staff workspace, JSON API."""

from __future__ import annotations

from flask import Flask, g
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

from survey_mailer import clock, nps
from survey_mailer import config as config_
from survey_mailer import links as links_

from .api_limits import API_PREFIXES
from .args import IdConverter
from .extensions import babel, csrf, limiter, select_locale


class Sessions(SecureCookieSessionInterface):
    """Cookie sessions for pages; none for the APIs, which a key authorises: no cookie is
    read or set there (a tenth of an API request's time)."""

    def open_session(self, app, request):
        if request.path.startswith(API_PREFIXES):
            return self.null_session_class()
        return super().open_session(app, request)


def create_app(test_config: dict | None = None) -> Flask:
    """Create the app from the environment; `test_config` overrides settings by name."""
    test_config = test_config or {}
    app = Flask(__name__)
    survey = config_.load(**{k: v for k, v in test_config.items() if k.startswith("SURVEY_")})
    keys = survey.secret_keys  # refuses to start without a key outside development
    app.config.update(
        SECRET_KEY=keys[-1],
        SECRET_KEY_FALLBACKS=keys[:-1],
        SESSION_COOKIE_SECURE=survey["SURVEY_BASE_URL"].startswith("https://"),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,  # the session ends the token; pages stay open a while
        RATELIMIT_STORAGE_URI="memory://",
        RATELIMIT_HEADERS_ENABLED=True,
        BABEL_TRANSLATION_DIRECTORIES="translations",
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    app.config.update({k: v for k, v in test_config.items() if not k.startswith("SURVEY_")})
    app.session_interface = Sessions()
    app.extensions["survey"] = survey
    app.extensions["links"] = links_.from_config(survey)
    app.url_map.converters["id"] = IdConverter
    if hops := survey["SURVEY_PROXY_HOPS"]:
        # Only as many forwarded entries as there are proxies: a client can add its own.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)
    app.jinja_env.filters["iso"] = clock.iso  # one way to show a time, everywhere
    app.jinja_env.filters["nps"] = nps.formatted  # one way to show an NPS, everywhere

    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    limiter.init_app(app)

    from . import api, delighted_api, errors, hooks, staff, survey

    errors.init_app(app)
    app.register_blueprint(survey.bp)  # the score link, the landing pages, unsubscribe
    staff.init_app(app)  # /staff/: login, dashboard, follow-ups, testimonials, responses
    app.register_blueprint(api.bp)  # /testimonials.json, /testimonials/widget, /api/v1
    app.register_blueprint(hooks.bp)  # /hooks/ses: SNS bounces and complaints
    app.register_blueprint(delighted_api.bp)  # /delighted/v1: Delighted's API, for its users

    @app.after_request
    def security_headers(response):
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
        if not g.get("embeddable"):  # the testimonials widget is made for <iframe>s
            response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        # Links carry tokens: never leak them to another site through Referer.
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    return app
