"""A campaign's sending progress and its pause: what the campaign page shows live."""

from __future__ import annotations

import sqlite_utils

from . import campaigns
from .clock import ago, now
from .db import write

RATE_WINDOW = 60  # seconds of sends the rate is measured over


def progress(db: sqlite_utils.Database, campaign_id: int) -> dict:
    """Return sent, failed, skipped, remaining, the rate (emails/s over the last minute),
    the seconds left at that rate (None when not sending) and whether it is paused."""
    campaign = campaigns.get(db, campaign_id)
    counts = dict.fromkeys(("sent", "failed", "skipped", "pending", "sending"), 0)
    counts.update({row[0]: row[1] for row in db.execute(
        "SELECT status, count(*) FROM deliveries WHERE campaign_id = ? GROUP BY status",
        [campaign_id])})
    recent = db.execute("SELECT count(*) FROM deliveries WHERE campaign_id = ?"
                        " AND status = 'sent' AND sent_at >= ?",
                        [campaign_id, ago(RATE_WINDOW)]).fetchone()[0]
    remaining = counts["pending"] + counts["sending"]
    rate = recent / RATE_WINDOW
    return {"sent": counts["sent"], "failed": counts["failed"], "skipped": counts["skipped"],
            "remaining": remaining, "total": sum(counts.values()),
            "rate": round(rate, 2),
            "seconds_left": round(remaining / rate) if rate and remaining else None,
            "paused": bool(campaign["paused_at"]),
            "status": campaigns.status({**campaign, "sent": counts["sent"],
                                        "unsent": remaining})}


def pause(db: sqlite_utils.Database, campaign_id: int) -> None:
    """Stop the worker sending this campaign (and its reminders) until it is resumed."""
    campaigns.get(db, campaign_id)
    with write(db) as conn:
        conn.execute("UPDATE campaigns SET paused_at = coalesce(paused_at, ?) WHERE id = ?",
                     [now(), campaign_id])


def resume(db: sqlite_utils.Database, campaign_id: int) -> None:
    campaigns.get(db, campaign_id)
    with write(db) as conn:
        conn.execute("UPDATE campaigns SET paused_at = NULL WHERE id = ?", [campaign_id])
