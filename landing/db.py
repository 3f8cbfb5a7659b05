"""One SQLite connection per worker thread, kept open across requests.

Opening a connection per request costs more than the whole score route (SPEC 9), so each
thread of each worker keeps its own; a fork (gunicorn's workers) gets new ones.
"""

from __future__ import annotations

import os
import threading

import sqlite_utils
from flask import current_app

from survey_mailer import db as db_

_local = threading.local()


def get_db() -> sqlite_utils.Database:
    """Return this thread's connection to the app's database, migrated."""
    settings = current_app.extensions["survey"]
    key = (os.getpid(), settings["SURVEY_DATABASE"])
    if getattr(_local, "key", None) != key:
        old = getattr(_local, "db", None)
        if old is not None and _local.key[0] == os.getpid():
            old.close()
        _local.db = db_.open_configured(settings)
        _local.key = key
    return _local.db
