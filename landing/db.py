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
    path = current_app.extensions["survey"]["SURVEY_DATABASE"]
    key = (os.getpid(), path)
    if getattr(_local, "key", None) != key:
        old = getattr(_local, "db", None)
        if old is not None and _local.key[0] == os.getpid():
            old.close()
        _local.db = db_.connect(path)
        db_.migrate(_local.db)
        _local.key = key
    return _local.db
