"""Accounts: a contact's company, its NPS, its coverage, and whether it is at risk (SPEC 13).

B2B companies have few accounts and deep relationships: what matters is which account is
unhappy, whether its people answered at all, and whether it renews soon. The period is
the last SURVEY_ACCOUNT_WINDOW_DAYS days (or one campaign), compared with the period
before. SURVEY_ACCOUNT_NPS says how an account counts:

- `responses`: every counted response, as the rest of the report does;
- `account`: one vote per account, the mean of its contacts' latest counted scores;
- `decision-maker`: the mean of its contacts whose attribute `role` is `decision-maker`,
  when any of them answered; else as `account`.

An account is at risk when it is a detractor, or has an open detractor case, and renews
(the earliest upcoming `renewal_date` attribute of its contacts) within
SURVEY_RENEWAL_WINDOW_DAYS.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

import sqlite_utils

from . import nps
from .clock import stamp, utcnow
from .humans import reads_responses
from .scores import DETRACTOR_SQL, PROMOTER_SQL, counted_sql, filtered_sql, segment_of_mean

METHODS = ("responses", "account", "decision-maker")
DECISION_MAKER = "decision-maker"


@dataclass
class _Account:
    contacts: int = 0
    surveyed: set = field(default_factory=set)
    answered: set = field(default_factory=set)
    latest: dict = field(default_factory=dict)  # contact id -> latest counted score
    deciders: dict = field(default_factory=dict)  # the same, decision-makers only
    n: int = 0
    p: int = 0
    d: int = 0
    total: int = 0  # sum of counted scores (the `responses` method's mean)
    sent: int = 0
    filtered: int = 0

    def score(self, method: str) -> float | None:
        """Return the account's mean score under a method, or None without answers."""
        if method == "responses":
            return self.total / self.n if self.n else None
        votes = self.deciders if method == DECISION_MAKER and self.deciders else self.latest
        return sum(votes.values()) / len(votes) if votes else None


@dataclass(frozen=True)
class Window:
    """Which responses and deliveries a report looks at: a time range, or one campaign."""

    start: str | None = None
    end: str | None = None
    campaign_id: int | None = None

    def sql(self, column: str, alias: str) -> tuple[str, list]:
        if self.campaign_id is not None:
            return f"{alias}.campaign_id = ?", [self.campaign_id]
        return f"{column} >= ? AND {column} < ?", [self.start, self.end]


def windows(days: int) -> tuple[Window, Window]:
    """Return the last `days` days and the `days` before them."""
    now = utcnow()
    edges = [stamp(now - timedelta(days=days * k)) for k in (2, 1, 0)]
    return Window(edges[1], edges[2]), Window(edges[0], edges[1])


def _collect(db: sqlite_utils.Database, window: Window, policy: str,
             companies: dict[int, str], deciders: set[int]) -> dict[str, _Account]:
    """Read one window's answers and deliveries into accounts."""
    accounts: dict[str, _Account] = defaultdict(_Account)
    where, params = window.sql("r.responded_at", "r")
    # Per contact: counted responses, promoters, detractors, the score sum, and the score
    # of the latest answer (SQLite gives the bare column of the row with the max()).
    for contact_id, n, p, d, total, latest, _ in db.execute(
            f"SELECT r.contact_id, count(*), sum({PROMOTER_SQL}), sum({DETRACTOR_SQL}),"
            f" sum(r.score), r.score, max(r.responded_at) FROM responses r"
            f" WHERE {where} AND {counted_sql(policy)} GROUP BY r.contact_id", params):
        company = companies.get(contact_id)
        if company is None:
            continue
        account = accounts[company]
        account.n, account.p, account.d = account.n + n, account.p + p, account.d + d
        account.total += total
        account.latest[contact_id] = latest
        account.answered.add(contact_id)
        if contact_id in deciders:
            account.deciders[contact_id] = latest
    where, params = window.sql("r.responded_at", "r")
    for contact_id, count in db.execute(
            f"SELECT r.contact_id, count(*) FROM responses r WHERE {where}"
            f" AND {filtered_sql()} GROUP BY r.contact_id", params):
        if contact_id in companies:
            accounts[companies[contact_id]].filtered += count
    where, params = window.sql("d.sent_at", "d")
    for contact_id, count in db.execute(
            f"SELECT d.contact_id, count(*) FROM deliveries d WHERE {where}"
            f" AND d.status = 'sent' GROUP BY d.contact_id", params):
        if contact_id in companies:
            account = accounts[companies[contact_id]]
            account.sent += count
            account.surveyed.add(contact_id)
    return accounts


def _classified(accounts: dict[str, _Account], method: str) -> dict[str, float]:
    return {key: score for key, a in accounts.items()
            if (score := a.score(method)) is not None}


@reads_responses
def report(db: sqlite_utils.Database, *, policy: str = "balanced", method: str = "account",
           window_days: int = 90, renewal_days: int = 90,
           campaign_id: int | None = None) -> dict:
    """Return the NPS by account: at-risk accounts first, then from the lowest score.

    The top-level NPS is over accounts (promoter accounts minus detractor accounts) under
    `account` and `decision-maker`, over responses under `responses`.
    """
    if method not in METHODS:
        raise ValueError(f"unknown account method {method!r}")
    companies, deciders, renewals, members = {}, set(), defaultdict(list), defaultdict(int)
    today = utcnow().date()
    for contact_id, company, role, renewal in db.execute(
            "SELECT id, company, json_extract(attributes, '$.role'),"
            " json_extract(attributes, '$.renewal_date') FROM contacts WHERE company != ''"):
        companies[contact_id] = company
        members[company] += 1
        if role == DECISION_MAKER:
            deciders.add(contact_id)
        if renewal:
            try:
                day = date.fromisoformat(str(renewal)[:10])
            except ValueError:
                continue  # a renewal date we cannot read is no renewal date
            if day >= today:
                renewals[company].append(day)
    if campaign_id is not None:
        current, before = Window(campaign_id=campaign_id), None
    else:
        current, before = windows(window_days)
    accounts = _collect(db, current, policy, companies, deciders)
    previous = _classified(_collect(db, before, policy, companies, deciders), method) \
        if before else {}
    open_cases = dict(db.execute(
        f"SELECT c.company, count(*) FROM responses r JOIN contacts c ON c.id = r.contact_id"
        f" LEFT JOIN cases k ON k.response_id = r.id WHERE {counted_sql(policy)}"
        f" AND {DETRACTOR_SQL} AND coalesce(k.status, 'new') != 'resolved'"
        f" AND c.company != '' GROUP BY c.company").fetchall())
    horizon = today + timedelta(days=renewal_days)
    groups = []
    for company in set(accounts) | set(open_cases):
        account = accounts.get(company) or _Account()
        score = account.score(method)
        kind = segment_of_mean(score) if score is not None else None
        renewal = min(renewals[company]) if renewals.get(company) else None
        opened = open_cases.get(company, 0)
        groups.append({
            "key": company,
            "score": round(score, 1) if score is not None else None,
            "segment": kind,
            **nps._row(account.n, account.p, account.d, account.sent, account.filtered),
            "contacts": members.get(company, 0),
            "surveyed": len(account.surveyed),
            "coverage": round(len(account.answered & account.surveyed)
                              / len(account.surveyed), 4) if account.surveyed else 0.0,
            "change": round(score - previous[company], 1)
            if score is not None and company in previous else None,
            "open_cases": opened,
            "renewal_date": renewal.isoformat() if renewal else None,
            "at_risk": bool((kind == "detractor" or opened) and renewal
                            and renewal <= horizon),
        })
    groups.sort(key=lambda g: (not g["at_risk"], g["score"] is None, g["score"] or 0,
                               g["key"]))
    return {**_top(groups, accounts, method), "by": "account", "method": method,
            "window_days": None if campaign_id is not None else window_days,
            "groups": groups, **({"campaign": campaign_id} if campaign_id else {})}


def _top(groups: list[dict], accounts: dict[str, _Account], method: str) -> dict:
    """Return the top-level NPS fields: over accounts, or over responses."""
    n = sum(a.n for a in accounts.values())
    p = sum(a.p for a in accounts.values())
    d = sum(a.d for a in accounts.values())
    row = nps._row(n, p, d, sum(a.sent for a in accounts.values()),
                   sum(a.filtered for a in accounts.values()))
    if method != "responses":
        scored = [g for g in groups if g["segment"]]
        promoters = sum(g["segment"] == "promoter" for g in scored)
        detractors = sum(g["segment"] == "detractor" for g in scored)
        score, margin = nps.score(promoters, detractors, len(scored))
        row.update(nps=score, margin_of_error=margin, accounts=len(scored),
                   promoter_accounts=promoters, detractor_accounts=detractors,
                   passive_accounts=len(scored) - promoters - detractors)
    row["at_risk"] = sum(g["at_risk"] for g in groups)
    return row
