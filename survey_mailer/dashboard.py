"""What the staff dashboard shows: NPS overall, per campaign, per group and per quarter."""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import sqlite_utils

from . import campaigns as campaigns_
from . import cases, contacts, nps
from . import db as db_
from .humans import fold

BREAKDOWNS = {"company": "Company", "language": "Language", "campaign": "Campaign"}


def change(points: list[dict]) -> dict | None:
    """Compare the last two periods; significant when beyond the difference's margin of error.

    Two independent estimates differ by more than chance (95%) when the change exceeds
    sqrt(m1² + m2²), the margin of error of their difference.
    """
    known = [p for p in points if p["nps"] is not None]
    if len(known) < 2:
        return None
    before, last = known[-2], known[-1]
    delta = round(last["nps"] - before["nps"], 1)
    margin = round(math.hypot(last["margin_of_error"] or 0, before["margin_of_error"] or 0), 1)
    return {"from": before["key"], "to": last["key"], "delta": delta, "margin": margin,
            "significant": abs(delta) > margin}


_pool: tuple[int, ThreadPoolExecutor] | None = None


def in_parallel(db: sqlite_utils.Database, *jobs):
    """Run `job(db)` for each job at once, each on its own connection; return the results.

    SQLite reads in parallel and sqlite3 releases the GIL, so a page of several reports
    costs about its slowest one. The first job runs on `db`; a None job gives None.
    """
    global _pool
    if _pool is None or _pool[0] != os.getpid():  # a forked worker needs its own threads
        _pool = (os.getpid(), ThreadPoolExecutor(max_workers=2, thread_name_prefix="report"))

    def on_own_connection(job):
        own = db_.reconnect(db)
        try:
            return job(own)
        finally:
            own.close()

    fold(db)  # once, before the readers start on their own connections
    futures = [_pool[1].submit(on_own_connection, job) if job else None for job in jobs[1:]]
    first = jobs[0](db)
    return [first, *(f.result() if f else None for f in futures)]


def summary(db: sqlite_utils.Database, policy: str, *, campaign_id: int | None = None,
            by: str = "company") -> dict:
    """Return the dashboard's numbers; an unknown breakdown falls back to company."""
    attributes = contacts.attribute_names(db)
    if by not in BREAKDOWNS and not (by.startswith("attribute:")
                                     and by.split(":", 1)[1] in attributes):
        by = "company"
    campaign_list = campaigns_.names(db)
    names = {c["id"]: c["name"] for c in campaign_list}
    # One pass per question, each following an index (see nps.report): every campaign
    # with its response rate and the 0-10 scores; the breakdown and the quarters need
    # no delivery counts.
    breakdown = by != "campaign"
    all_campaigns, breakdown_report, quarter_report = in_parallel(
        db,
        lambda db: nps.report(db, by="campaign", policy=policy),
        (lambda db: nps.report(db, campaign_id=campaign_id, policy=policy, by=by,
                               include_sent=False)) if breakdown else None,
        lambda db: nps.report(db, campaign_id=campaign_id, by="quarter", policy=policy,
                              include_sent=False))
    per_campaign = all_campaigns["groups"]
    for group in per_campaign:
        group["name"] = names.get(group["key"], f"#{group['key']}")
    if campaign_id is None:
        overall, scores = all_campaigns, all_campaigns["scores"]
    else:
        overall = next((g for g in per_campaign if g["key"] == campaign_id), None) \
            or nps.report(db, campaign_id=campaign_id, policy=policy)
        scores = nps.distribution(db, campaign_id=campaign_id, policy=policy)
    if breakdown:
        groups = breakdown_report["groups"]
    else:
        groups = [dict(g, key=g["name"]) for g in per_campaign
                  if campaign_id is None or g["key"] == campaign_id]
    quarters = [q for q in quarter_report["groups"] if q["key"]]
    return {
        "overall": overall, "scores": scores, "per_campaign": per_campaign,
        "groups": groups, "quarters": quarters, "change": change(quarters), "by": by,
        "attributes": attributes, "campaigns": campaign_list, "campaign_id": campaign_id,
        "campaign_name": names.get(campaign_id),
        "case_counts": cases.case_counts(db, policy, all_campaigns["detractors"]),
    }
