"""The OpenAPI 3.1 document of /api/v1, written as data (served at /api/v1/openapi.json).

tests/test_api.py checks that every /api/v1 route of the app is here, and runs
schemathesis against it: each answer must match what this document says.
"""

from __future__ import annotations

import functools
import re

from survey_mailer.contacts import LANGUAGES
from survey_mailer.transactional import MAX_DELAY, MAX_EVENT

from .args import MAX_ID

REASONS = ["unsubscribed", "suppressed", "erased", "recently_surveyed", "already_surveyed"]
# Control characters (C0, C1, line separators) cannot go into an email header.
NO_CONTROL = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]*$"
LANGUAGE = "^(" + "|".join("".join(f"[{c.lower()}{c.upper()}]" for c in language)
                           for language in LANGUAGES) + ")$"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str, headers: dict | None = None) -> dict:
    answer = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        answer["headers"] = headers
    return answer


def _error(description: str) -> dict:
    return {"$ref": f"#/components/responses/{description}"}


def _secured(answers: dict) -> dict:
    """Add the answers every route with a key can give: 401 and 429."""
    return {**answers, "401": _error("Unauthorized"), "429": _error("TooManyRequests")}


NULLABLE_TEXT = {"type": ["string", "null"], "pattern": NO_CONTROL, "maxLength": 200}

SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string", "description": "what went wrong, in plain words"},
            "field": {"type": "string",
                      "description": "the field, parameter or header to blame, if one is"},
        },
    },
    "Refusal": {
        "type": "object",
        "required": ["error", "reason"],
        "properties": {
            "error": {"type": "string"},
            "reason": {"type": "string", "enum": REASONS},
        },
    },
    "SurveyRequest": {
        "type": "object",
        "required": ["email", "campaign"],
        "additionalProperties": False,
        "properties": {
            "email": {"type": "string", "format": "email", "maxLength": 254,
                      "description": "the address to survey (ASCII; the contact is added "
                                     "or updated)"},
            "campaign": {"type": "integer", "minimum": 1, "maximum": MAX_ID,
                         "description": "the campaign's id (survey-mailer campaign list)"},
            "name": {**NULLABLE_TEXT, "description": "the contact's name"},
            "company": {**NULLABLE_TEXT, "description": "the contact's company"},
            "language": {"type": ["string", "null"], "pattern": LANGUAGE,
                         "description": f"one of {', '.join(LANGUAGES)}"},
            "properties": {
                "type": ["object", "null"],
                "description": "contact attributes, merged into the stored ones (names "
                               "are stored in lower case)",
                "propertyNames": {"pattern": "^[A-Za-z0-9_][A-Za-z0-9_ .-]{0,99}$"},
                "additionalProperties": {"type": "string", "maxLength": 1000},
            },
            "delay_seconds": {"type": ["integer", "null"], "minimum": 0,
                              "maximum": MAX_DELAY, "default": 0,
                              "description": "send this many seconds from now"},
            "event": {"type": ["string", "null"], "maxLength": MAX_EVENT,
                      "description": "what happened (a deal closed, a ticket solved)"},
        },
    },
    "Scheduled": {
        "type": "object",
        "required": ["delivery_id", "contact_id", "campaign", "status", "scheduled_at"],
        "additionalProperties": False,
        "properties": {
            "delivery_id": {"type": "integer"},
            "contact_id": {"type": "integer"},
            "campaign": {"type": "integer"},
            "status": {"const": "scheduled"},
            "scheduled_at": {"type": "string", "format": "date-time"},
        },
    },
    "Response": {
        "type": "object",
        "required": ["id", "delivery_id", "contact_id", "campaign", "email", "name",
                     "company", "language", "score", "segment", "comment",
                     "testimonial_consent", "counted", "confirmed", "responded_at",
                     "updated_at", "event", "properties"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "integer"},
            "delivery_id": {"type": "integer", "description": "as POST /surveys gave it"},
            "contact_id": {"type": "integer"},
            "campaign": {"type": "integer"},
            "email": {"type": "string"},
            "name": {"type": "string"},
            "company": {"type": "string"},
            "language": {"type": "string"},
            "score": {"type": "integer", "minimum": 0, "maximum": 10},
            "segment": {"enum": ["detractor", "passive", "promoter"]},
            "comment": {"type": "string"},
            "testimonial_consent": {"type": "boolean"},
            "counted": {"type": "boolean",
                        "description": "whether it counts in the NPS (SURVEY_SCORE_POLICY)"},
            "confirmed": {"type": "boolean", "description": "a person confirmed it"},
            "responded_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "event": {"type": ["string", "null"]},
            "properties": {"type": "object", "additionalProperties": {"type": "string"},
                           "description": "the contact's attributes"},
        },
    },
    "ResponsePage": {
        "type": "object",
        "required": ["data", "next_cursor", "has_more"],
        "additionalProperties": False,
        "properties": {
            "data": {"type": "array", "items": _ref("Response")},
            "next_cursor": {"type": "string",
                            "description": "pass as cursor for the next page or sync"},
            "has_more": {"type": "boolean",
                         "description": "more changes wait now: ask again at once"},
        },
    },
    "Counts": {
        "type": "object",
        "required": ["nps", "margin_of_error", "responses", "promoters", "passives",
                     "detractors", "sent", "response_rate", "filtered_automated"],
        "properties": {
            "nps": {"type": ["number", "null"], "minimum": -100, "maximum": 100},
            "margin_of_error": {"type": ["number", "null"], "minimum": 0},
            "responses": {"type": "integer", "minimum": 0},
            "promoters": {"type": "integer", "minimum": 0},
            "passives": {"type": "integer", "minimum": 0},
            "detractors": {"type": "integer", "minimum": 0},
            "sent": {"type": "integer", "minimum": 0},
            "response_rate": {"type": "number", "minimum": 0},
            "filtered_automated": {"type": "integer", "minimum": 0},
        },
    },
    "Report": {
        "allOf": [_ref("Counts")],
        "type": "object",
        "properties": {
            "campaign": {"type": "integer"},
            "campaign_name": {"type": ["string", "null"]},
            "scores": {"type": "array", "items": {"type": "integer", "minimum": 0},
                       "minItems": 11, "maxItems": 11,
                       "description": "counted responses per score, 0 to 10"},
            "by": {"type": "string"},
            "groups": {"type": "array", "items": {
                "allOf": [_ref("Counts")],
                "type": "object",
                "required": ["key"],
                "properties": {"key": {"type": ["string", "integer"]},
                               "name": {"type": "string"}},
            }},
        },
    },
}

RATE_HEADERS = {
    "X-RateLimit-Limit": {"schema": {"type": "integer"},
                          "description": "requests this key may make in the window"},
    "X-RateLimit-Remaining": {"schema": {"type": "integer"}},
    "X-RateLimit-Reset": {"schema": {"type": "integer"},
                          "description": "when the window ends (unix seconds)"},
}

RESPONSES = {
    "BadRequest": _json(_ref("Error"), "A bad body, field, parameter or header; `field` "
                                       "names it"),
    "Unauthorized": _json(_ref("Error"), "No key, or a wrong or revoked one", {
        "WWW-Authenticate": {"schema": {"type": "string"}, "required": True}}),
    "Forbidden": _json(_ref("Error"), "The key is for another campaign"),
    "NotFound": _json(_ref("Error"), "No such campaign, delivery or route"),
    "TooManyRequests": _json(_ref("Error"), "The key's rate limit (SURVEY_API_RATE_LIMIT) "
                                            "is used up", {
        "Retry-After": {"schema": {"type": "integer", "minimum": 0}, "required": True,
                        "description": "seconds to wait"}}),
}

CAMPAIGN_QUERY = {
    "name": "campaign", "in": "query", "required": False,
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    "description": "only this campaign (a key made for one campaign: that one)",
}
BY_QUERY = {
    "name": "by", "in": "query", "required": False,
    "schema": {"type": "string"},
    "description": "a breakdown: company, language, quarter, campaign or attribute:NAME",
}


def _report_operation(summary: str, parameters: list) -> dict:
    return {
        "summary": summary,
        "parameters": parameters,
        "responses": _secured({
            "200": _json(_ref("Report"), "The report, as `survey-mailer report --format "
                                         "json` prints it", RATE_HEADERS),
            "400": _error("BadRequest"),
            "403": _error("Forbidden"),
            "404": _error("NotFound"),
        }),
    }


PATHS = {
    "/api/v1/surveys": {
        "post": {
            "summary": "Survey one person after an event",
            "description": (
                "Adds or updates the contact and schedules the campaign's survey for them, "
                "due after `delay_seconds`; the worker sends it when due. Unknown fields "
                "are refused (a misspelt `delay_seconds` must not send at once). A person "
                "is never surveyed twice by one campaign, nor within SURVEY_RESURVEY_DAYS "
                "of another survey, nor once unsubscribed, suppressed or erased: 409 with "
                "the reason, and nothing is written. With an `Idempotency-Key`, the same "
                "request again (same key and body, same API key, within 24 hours) gets the "
                "first answer (202 or 409) again, with `Idempotent-Replayed: true`, and "
                "creates nothing."),
            "parameters": [{
                "name": "Idempotency-Key", "in": "header", "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 255,
                           "pattern": "^[!-~]([ -~]*[!-~])?$"},
                "description": "any unique text per request, such as a UUID",
            }],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": _ref("SurveyRequest")}}},
            "responses": _secured({
                "202": _json(_ref("Scheduled"), "Scheduled", {
                    **RATE_HEADERS,
                    "Idempotent-Replayed": {"schema": {"const": "true"},
                                            "description": "a repeat: the first answer"}}),
                "400": _error("BadRequest"),
                "403": _error("Forbidden"),
                "404": _error("NotFound"),
                "409": _json(_ref("Refusal"), "This person must not be surveyed now; "
                                              "nothing was written"),
                "413": _json(_ref("Error"), "The body is over 64 KB"),
                "422": _json(_ref("Error"), "The Idempotency-Key came with a different "
                                            "request before"),
            }),
        },
    },
    "/api/v1/surveys/{delivery_id}": {
        "delete": {
            "summary": "Cancel a survey not yet sent",
            "description": "204 also when it was cancelled already.",
            "parameters": [{"name": "delivery_id", "in": "path", "required": True,
                            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ID},
                            "description": "as POST /api/v1/surveys gave it"}],
            "responses": _secured({
                "204": {"description": "Cancelled"},
                "404": _error("NotFound"),
                "409": _json({"allOf": [_ref("Error")], "type": "object",
                              "required": ["status"],
                              "properties": {"status": {"enum": ["sending", "sent",
                                                                 "failed", "skipped"]}}},
                             "Too late: it is sent, being sent, failed or skipped"),
            }),
        },
    },
    "/api/v1/responses": {
        "get": {
            "summary": "Responses in the order they changed, for a sync",
            "description": (
                "Ordered by each response's version, which grows with every change: a "
                "response changed after it was read comes again later, so a sync that "
                "keeps `next_cursor` never misses an update. Times are ISO 8601 in UTC."),
            "parameters": [
                CAMPAIGN_QUERY,
                {"name": "since", "in": "query", "required": False,
                 "schema": {"type": "string", "format": "date-time"},
                 "description": "only responses updated at or after this time (ISO 8601)"},
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": 1000,
                            "default": 100}},
                {"name": "cursor", "in": "query", "required": False,
                 "schema": {"type": "string", "pattern": "^[0-9]{1,19}$"},
                 "description": "next_cursor from the previous page (opaque)"},
            ],
            "responses": _secured({
                "200": _json(_ref("ResponsePage"), "A page of responses", RATE_HEADERS),
                "400": _error("BadRequest"),
                "403": _error("Forbidden"),
                "404": _error("NotFound"),
            }),
        },
    },
    "/api/v1/stats": {"get": _report_operation("The NPS report", [CAMPAIGN_QUERY, BY_QUERY])},
    "/api/v1/campaigns/{campaign_id}/stats": {
        "get": _report_operation("One campaign's NPS report", [
            {"name": "campaign_id", "in": "path", "required": True,
             "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ID}},
            BY_QUERY]),
    },
    "/api/v1/openapi.json": {
        "get": {
            "summary": "This document",
            "security": [],
            "responses": {"200": _json({"type": "object"}, "The OpenAPI 3.1 document")},
        },
    },
}

DOCUMENT = {
    "openapi": "3.1.0",
    "info": {
        "title": "survey-mailer API",
        "version": "1",
        "description": (
            "Transactional NPS surveys, responses and stats. Send an API key (survey-mailer "
            "api-key create) as `Authorization: Bearer KEY`. Each key may make "
            "SURVEY_API_RATE_LIMIT requests (default 600 per minute), then gets 429 with "
            "Retry-After. Bodies over 64 KB get 413. Errors are JSON: "
            "`{\"error\": \"...\", \"field\": \"...\"}` (field when one is to blame)."),
    },
    "servers": [{"url": "/"}],
    "security": [{"bearerAuth": []}],
    "paths": PATHS,
    "components": {
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        "schemas": SCHEMAS,
        "responses": RESPONSES,
    },
}


@functools.lru_cache(maxsize=64)  # a few routes, asked on every request
def query_parameters(rule: str, method: str) -> tuple[str, ...]:
    """Return the query parameters the document gives a route (a Flask rule) and method."""
    path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)
    operation = PATHS.get(path, {}).get(method.lower(), {})
    return tuple(p["name"] for p in operation.get("parameters", []) if p["in"] == "query")
