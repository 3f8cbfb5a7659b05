"""The Flask app: public survey pages, staff workspace, JSON API."""

from __future__ import annotations

from flask import Flask, g, request
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect

from survey_mailer import config as config_
from survey_mailer import links as links_
from survey_mailer.contacts import LANGUAGES

csrf = CSRFProtect()
babel = Babel()
limiter = Limiter(get_remote_address, default_limits=[])


def select_locale() -> str:
    return g.get("locale") or request.accept_languages.best_match(LANGUAGES) or "en"


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
    app.extensions["survey"] = survey
    app.extensions["links"] = links_.from_config(survey)

    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    limiter.init_app(app)

    from . import errors
    from . import survey as survey_pages

    errors.init_app(app)
    app.register_blueprint(survey_pages.bp)
    csrf.exempt(survey_pages.unsubscribe)  # RFC 8058 one-click; the form checks its own token

    from . import api, staff

    staff.init_app(app)  # /staff/: login, dashboard, follow-ups, testimonials, responses
    api.init_app(app)  # /testimonials.json, /testimonials/widget, /api/v1

    from . import hooks

    app.register_blueprint(hooks.bp)  # /hooks/ses: SNS bounces and complaints
    csrf.exempt(hooks.bp)  # not a browser form: SNS signs each message instead

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
