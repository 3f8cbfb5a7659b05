"""Work a request starts once its answer has left: sending due alerts and webhooks."""

from __future__ import annotations

from flask import Response, after_this_request, current_app

from survey_mailer import notify

from .db import get_db


def dispatch_after(response: Response, response_id: int | None = None) -> Response:
    """Send due alerts and webhooks once this response is on its way to the client.

    With `response_id` (a person's form), only that survey response's: the backlog is the
    worker's, so a form's request never pays for other people's alerts. The queue is
    durable: whatever this misses (a crash, a slow receiver), the worker's next round sends.
    """
    app = current_app._get_current_object()
    db, config = get_db(), app.extensions["survey"]

    def run():
        try:
            # A small batch with short timeouts: this holds a gunicorn worker; the
            # background worker does the long tail.
            notify.dispatch(db, config, limit=5, timeout=3, response_id=response_id)
        except Exception:  # logged; the work stays queued for the next dispatch
            app.logger.exception("notification dispatch failed")

    response.call_on_close(run)
    return response


def dispatch_soon(response_id: int | None = None) -> None:
    """Dispatch due notifications (only one survey response's, when given) after this
    request's answer."""
    after_this_request(lambda response: dispatch_after(response, response_id))
