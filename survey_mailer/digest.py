"""The digest: one email per week or month to the people who want the numbers (SPEC 13).

The worker's first round in a period with no digest yet sends one, covering the period
before; no other round in that period sends another (the period's label is unique in the
`digests` table, claimed in the same transaction that queues the email). It holds the NPS
and its change (flagged only beyond the margin of error), responses per segment, new
detractors with their comments and case status, overdue cases, at-risk accounts, top
themes and testimonials waiting for approval. Webhooks get the same as JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlite_utils

from . import accounts, cases, nps, themes
from .clock import iso, stamp
from .config import Config
from .humans import reads_responses
from .scores import DETRACTOR_SQL, PROMOTER_SQL, counted_sql

LISTED = 50  # overdue cases listed by name; the digest counts them all


@dataclass(frozen=True)
class DigestPeriod:
    label: str  # 2026-W49, 2026-12
    start: datetime
    end: datetime


def period_of(moment: datetime, every: str, zone: ZoneInfo) -> DigestPeriod:
    """Return the week (ISO, from Monday) or month containing `moment`, in `zone`."""
    local = moment.astimezone(zone).date()
    if every == "week":
        first = local - timedelta(days=local.weekday())
        last = first + timedelta(days=7)
        year, week, _ = first.isocalendar()
        label = f"{year}-W{week:02d}"
    else:
        first = local.replace(day=1)
        last = (first + timedelta(days=32)).replace(day=1)
        label = f"{first:%Y-%m}"
    return DigestPeriod(label, _midnight(first, zone), _midnight(last, zone))


def previous(period: DigestPeriod, every: str, zone: ZoneInfo) -> DigestPeriod:
    """Return the period before this one."""
    return period_of(period.start - timedelta(seconds=1), every, zone)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def _window(db, policy: str, start: str, end: str) -> dict:
    """Counted responses per segment in a time window, with the NPS and its margin."""
    n, p, d = db.execute(
        f"SELECT count(*), coalesce(sum({PROMOTER_SQL}), 0), coalesce(sum({DETRACTOR_SQL}), 0)"
        f" FROM responses r WHERE r.responded_at >= ? AND r.responded_at < ?"
        f" AND {counted_sql(policy)}", [start, end]).fetchone()
    score, margin = nps.score(p, d, n)
    return {"nps": score, "margin_of_error": margin, "responses": n, "promoters": p,
            "passives": n - p - d, "detractors": d}


@reads_responses
def build(db: sqlite_utils.Database, config: Config, period: DigestPeriod,
          before: DigestPeriod) -> dict:
    """Return the digest of one period, compared with the period before."""
    policy = config["SURVEY_SCORE_POLICY"]
    start, end = stamp(period.start), stamp(period.end)
    now_ = _window(db, policy, start, end)
    then = _window(db, policy, stamp(before.start), stamp(before.end))
    change = None
    if now_["nps"] is not None and then["nps"] is not None:
        delta = round(now_["nps"] - then["nps"], 1)
        margin = round(math.hypot(now_["margin_of_error"] or 0, then["margin_of_error"] or 0), 1)
        change = {"delta": delta, "margin": margin, "significant": abs(delta) > margin}
    detractors = [
        {"id": c["id"], "name": c["name"], "email": c["email"], "company": c["company"],
         "score": c["score"], "comment": c["comment"], "status": c["status"],
         "answered_at": iso(c["created_at"])}
        for c in cases.list_cases(db, policy, limit=1000) if start <= c["created_at"] < end]
    overdue = [{"id": c["id"], "name": c["name"], "email": c["email"],
                "company": c["company"], "score": c["score"], "since": iso(c["created_at"])}
               for c in cases.overdue(db, policy, config["SURVEY_CASE_SLA_HOURS"])]
    risk = [g for g in accounts.report(
        db, policy=policy, method=config["SURVEY_ACCOUNT_NPS"],
        window_days=config["SURVEY_ACCOUNT_WINDOW_DAYS"],
        renewal_days=config["SURVEY_RENEWAL_WINDOW_DAYS"])["groups"] if g["at_risk"]]
    waiting = db.execute(
        "SELECT count(*) FROM responses r LEFT JOIN testimonials t ON t.response_id = r.id"
        f" WHERE r.testimonial_consent = 1 AND {PROMOTER_SQL} AND coalesce(t.status, 'pending')"
        " = 'pending'").fetchone()[0]
    return {
        "event": "digest", "period": period.label, "from": iso(start), "to": iso(end),
        **now_, "previous": {"period": before.label, **then}, "change": change,
        "new_detractors": detractors, "overdue_count": len(overdue),
        "overdue_cases": overdue[:LISTED],
        "at_risk_accounts": [{"account": g["key"], "score": g["score"],
                              "renewal_date": g["renewal_date"],
                              "open_cases": g["open_cases"]} for g in risk],
        "top_themes": themes.counts(db, policy, start, end)[:5],
        "testimonials_waiting": waiting,
    }


def text(digest: dict, base_url: str) -> str:
    """Return the digest as the plain text of an email."""
    score = nps.formatted(digest["nps"])
    lines = [f"NPS {digest['period']}: {score}"
             + (f" (± {digest['margin_of_error']:.1f})" if digest["margin_of_error"] else "")]
    change = digest["change"]
    if change:
        verdict = ("a real change" if change["significant"]
                   else f"within the ± {change['margin']:.1f} margin of error: not a real change")
        lines.append(f"Change from {digest['previous']['period']}: {change['delta']:+.1f} "
                     f"points, {verdict}.")
    lines += ["", f"Responses: {digest['responses']} ({digest['promoters']} promoters, "
              f"{digest['passives']} passives, {digest['detractors']} detractors)", ""]
    lines.append(f"New detractors ({len(digest['new_detractors'])}):")
    for c in digest["new_detractors"][:20]:
        who = c["name"] or c["email"]
        company = f" ({c['company']})" if c["company"] else ""
        comment = f': "{c["comment"]}"' if c["comment"] else ""
        lines.append(f"- {who}{company} scored {c['score']}{comment} [case {c['status']}]")
    lines += ["", f"Overdue cases: {digest['overdue_count']}"]
    for c in digest["overdue_cases"][:20]:
        lines.append(f"- {c['name'] or c['email']} scored {c['score']}, new since {c['since']}")
    lines += ["", f"Accounts at risk: {len(digest['at_risk_accounts'])}"]
    for a in digest["at_risk_accounts"][:20]:
        lines.append(f"- {a['account']}: score {a['score']}, renews {a['renewal_date']}, "
                     f"{a['open_cases']} open cases")
    if digest["top_themes"]:
        lines += ["", "Top themes:"]
        lines += [f"- {t['theme']}: {t['total']} comments ({t['detractors']} from "
                  f"detractors)" for t in digest["top_themes"]]
    lines += ["", f"Testimonials waiting for approval: {digest['testimonials_waiting']}",
              "", f"Workspace: {base_url}/staff/"]
    return "\n".join(lines) + "\n"
