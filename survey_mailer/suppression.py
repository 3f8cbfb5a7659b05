"""Suppression: contacts who bounced for good or complained are never mailed again.

SES reports bounces and complaints through SNS (landing/hooks.py verifies them); each
notification is recorded once by its SNS MessageId, and the addresses it names are
suppressed in the same transaction, so a redelivered notification changes nothing.
"""

from __future__ import annotations

import json

import sqlite_utils

from .clock import now
from .db import parse_id, write


def _object(value: object) -> dict:
    # A signed event is genuine but its shape is SES's to change: read what fits, skip the
    # rest, and keep the whole payload.
    return value if isinstance(value, dict) else {}


def _recipients(event: dict, key: str, field: str) -> list[str]:
    recipients = _object(event.get(key)).get(field)
    return [r["emailAddress"] for r in recipients if isinstance(r, dict)
            and isinstance(r.get("emailAddress"), str)] if isinstance(recipients, list) else []


def classify(event: dict) -> tuple[str, str, list[str], str | None]:
    """Return (event type, detail, addresses to suppress, suppression reason) of an SES event.

    Both shapes are read: identity notifications (`notificationType`) and configuration
    set event publishing (`eventType`). Only permanent bounces and complaints suppress.
    """
    kind = str(event.get("notificationType") or event.get("eventType") or "unknown")
    if kind == "Bounce":
        bounce = _object(event.get("bounce"))
        detail = f"{bounce.get('bounceType', '')}/{bounce.get('bounceSubType', '')}"
        addresses = _recipients(event, "bounce", "bouncedRecipients")
        if bounce.get("bounceType") == "Permanent":
            return kind, detail, addresses, f"bounce: {detail}"
        return kind, detail, addresses, None
    if kind == "Complaint":
        complaint = _object(event.get("complaint"))
        detail = str(complaint.get("complaintFeedbackType") or "")
        return kind, detail, _recipients(event, "complaint", "complainedRecipients"), (
            "complaint" + (f": {detail}" if detail else ""))
    return kind, "", [], None


def _delivery_id(event: dict) -> int | None:
    values = _object(_object(event.get("mail")).get("tags")).get("delivery")
    # A tag is text SES passes through: "²" is a digit to isdigit(), 10**30 is too big.
    return parse_id(str(values[0])) if isinstance(values, list) and values else None


def record_ses_event(db: sqlite_utils.Database, sns_message_id: str, topic_arn: str,
                     event: dict) -> tuple[bool, list[str]]:
    """Record one SES event and suppress its addresses; return (new, suppressed now).

    A MessageId seen before returns (False, []) and writes nothing.
    """
    kind, detail, addresses, reason = classify(event)
    with write(db) as conn:
        cursor = conn.execute(
            "INSERT INTO ses_events (sns_message_id, topic_arn, event_type, detail, "
            "recipients, delivery_id, payload, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (sns_message_id) DO NOTHING",
            [sns_message_id, topic_arn, kind, detail, json.dumps(addresses),
             _delivery_id(event), json.dumps(event), now()])
        if cursor.rowcount == 0:
            return False, []
        suppressed = []
        if reason:
            for address in addresses:
                changed = conn.execute(
                    "UPDATE contacts SET suppressed_at = ?, suppressed_reason = ?, "
                    "updated_at = ? WHERE email = ? AND suppressed_at IS NULL",
                    [now(), reason, now(), address]).rowcount
                if changed:
                    suppressed.append(address)
    return True, suppressed
