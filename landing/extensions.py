"""The Flask extensions, made once and bound to the app in create_app().

Blueprints import them from here, never from the package, so nothing imports back.
"""

from __future__ import annotations

from flask import g, request
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

from survey_mailer.contacts import LANGUAGES

csrf = CSRFProtect()
limiter = Limiter(get_remote_address, default_limits=[])
login_manager = LoginManager()


def select_locale() -> str:
    """Return the page's language: the contact's on survey pages, else the browser's."""
    return g.get("locale") or request.accept_languages.best_match(LANGUAGES) or "en"


babel = Babel()
