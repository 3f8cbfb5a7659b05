"""Query-string values read safely: anything odd is as if absent, never a 500."""

from __future__ import annotations

from flask import request
from werkzeug.routing import IntegerConverter

from survey_mailer.db import MAX_ID, parse_id


def int_arg(name: str) -> int | None:
    """Return a query-string id, or None unless it is ASCII digits that fit SQLite."""
    return parse_id(request.args.get(name, ""))


class IdConverter(IntegerConverter):
    """`<id:name>` in a route: ASCII digits that fit SQLite, else 404."""

    def __init__(self, url_map):
        super().__init__(url_map, max=MAX_ID)
