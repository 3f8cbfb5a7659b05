"""Work a request starts once its answer has left: sending due alerts and webhooks."""

from __future__ import annotations

from flask import Response, after_this_request, current_app

from survey_mailer import notify

from .db import get_db


def dispatch_after(response: Response) -> Response:
    """Send due alerts and webhooks once this response is on its way to the client.

    The queue is durable: whatever this misses (a crash, a slow receiver), the worker's
    next round sends.
    """
    app = current_app._get_current_object()
    db, config = get_db(), app.extensions["survey"]

    def run():
        try:
            # A small batch with short timeouts: this holds a gunicorn worker; the
            # background worker does the long tail.
            notify.dispatch(db, config, limit=5, timeout=3)
        except Exception:  # logged; the work stays queued for the next dispatch
            app.logger.exception("notification dispatch failed")

    response.call_on_close(run)
    return response


def dispatch_soon() -> None:
    """Dispatch due notifications after this request's answer."""
    after_this_request(dispatch_after)
