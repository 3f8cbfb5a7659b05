"""One request budget per API key, across /api/v1 and /delighted/v1 (SURVEY_API_RATE_LIMIT).

Checked with `limits`, the library Flask-Limiter is built on, against Flask-Limiter's own
strategy and storage, once the key is known (a refused key spends no one's budget). Doing
it here rather than through a Flask-Limiter decorator takes a fifth off each API request:
Flask-Limiter resolves, filters and records every limit of every request, where the APIs
need one counter per key. The APIs' routes are left out of Flask-Limiter's own check.
"""

from __future__ import annotations

import math
from functools import lru_cache

from flask import Response, current_app, g, request
from limits import RateLimitItem, parse_many

from survey_mailer.clock import system_seconds

from .errors import ApiError
from .extensions import limiter

API_PREFIXES = ("/api/v1/", "/delighted/v1/")


@limiter.request_filter
def _apis_count_per_key() -> bool:
    return request.path.startswith(API_PREFIXES)


@lru_cache(maxsize=8)
def _items(setting: str) -> list[RateLimitItem]:
    return parse_many(setting)


def spend(key_id: int) -> None:
    """Count one request against a key's budget, or raise ApiError 429 with Retry-After."""
    if not limiter.enabled:
        return
    strategy = limiter.limiter
    items = _items(current_app.extensions["survey"]["SURVEY_API_RATE_LIMIT"])
    for item in items:
        if not strategy.hit(item, "api-key", str(key_id)):
            reset, _ = strategy.get_window_stats(item, "api-key", str(key_id))
            wait = max(1, math.ceil(reset - system_seconds()))
            raise ApiError(429, f"this API key's rate limit ({item}) is used up: try again "
                                f"in Retry-After seconds", headers={"Retry-After": str(wait)})
    reset, remaining = strategy.get_window_stats(items[0], "api-key", str(key_id))
    g.rate_headers = {"X-RateLimit-Limit": str(items[0].amount),
                      "X-RateLimit-Remaining": str(remaining),
                      "X-RateLimit-Reset": str(math.ceil(reset))}


def add_headers(response: Response) -> Response:
    """The budget left, on every answer to a request that spent some (an after_request)."""
    response.headers.update(g.get("rate_headers") or {})
    return response
