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

from dataclasses import dataclass
from datetime import date, timedelta

import sqlite_utils

from . import account_stats, nps
from .account_stats import DECISION_MAKER
from .clock import utcnow
from .humans import reads_responses
from .scores import segment_of_mean

METHODS = ("responses", "account", "decision-maker")


@dataclass
class _Account:
    """One company's sums in one window (account_stats.by_company)."""

    n: int = 0
    p: int = 0
    d: int = 0
    total: int = 0  # sum of counted scores (the `responses` method's mean)
    filtered: int = 0
    sent: int = 0
    surveyed: int = 0  # contacts sent a survey
    answered: int = 0  # of those, contacts who answered
    latest: tuple = (0, 0)  # sum and count of the contacts' latest counted scores
    deciders: tuple = (0, 0)  # the same, decision-makers only
    open_cases: int = 0  # detractors' cases not resolved, from any time
    contacts: int = 0
    renewal: date | None = None  # the earliest upcoming renewal date of its contacts

    def active(self) -> bool:
        """Return whether the account has anything in the window: answers, sends, cases."""
        return bool(self.n or self.filtered or self.sent or self.open_cases)

    def score(self, method: str) -> float | None:
        """Return the account's mean score under a method, or None without answers."""
        if method == "responses":
            return self.total / self.n if self.n else None
        total, count = self.deciders if method == DECISION_MAKER and self.deciders[1] \
            else self.latest
        return total / count if count else None


def _windows(rows) -> tuple[dict[str, _Account], dict[str, _Account]]:
    """Return the accounts of the current window and of the one before, from their sums."""
    windows: tuple[dict, dict] = ({}, {})
    for company, win, n, p, d, total, filtered, sent, surveyed, answered, \
            latest, count, decided, deciders, opened, contacts, renewal in rows:
        account = _Account(n, p, d, total or 0, filtered, sent, surveyed, answered,
                           (latest or 0, count), (decided or 0, deciders), opened, contacts,
                           date.fromisoformat(renewal) if renewal else None)
        if account.active():
            windows[win][company] = account
    return windows


def _classified(accounts: dict[str, _Account], method: str) -> dict[str, float]:
    return {key: score for key, a in accounts.items()
            if (score := a.score(method)) is not None}


@reads_responses
def report(db: sqlite_utils.Database, *, policy: str = "balanced", method: str = "account",
           window_days: int = 90, renewal_days: int = 90,
           campaign_id: int | None = None, company: str | None = None) -> dict:
    """Return the NPS by account: at-risk accounts first, then from the lowest score.

    The top-level NPS is over accounts (promoter accounts minus detractor accounts) under
    `account` and `decision-maker`, over responses under `responses`. With `company`, only
    that account (and the top level over it alone).
    """
    if method not in METHODS:
        raise ValueError(f"unknown account method {method!r}")
    today = utcnow().date()
    if campaign_id is not None:
        accounts, before = _windows(account_stats.of_campaign(
            db, policy, campaign_id, today.isoformat(), company))[0], {}
    else:
        account_stats.refresh(db, policy, window_days)
        accounts, before = _windows(account_stats.by_company(db.conn, today.isoformat(),
                                                             company=company))
    previous = _classified(before, method)
    horizon = today + timedelta(days=renewal_days)
    groups = []
    for key, account in accounts.items():
        score = account.score(method)
        kind = segment_of_mean(score) if score is not None else None
        renewal = account.renewal
        opened = account.open_cases
        groups.append({
            "key": key,
            "score": round(score, 1) if score is not None else None,
            "segment": kind,
            **nps._row(account.n, account.p, account.d, account.sent, account.filtered),
            "contacts": account.contacts,
            "surveyed": account.surveyed,
            "coverage": round(account.answered / account.surveyed, 4)
            if account.surveyed else 0.0,
            "change": round(score - previous[key], 1)
            if score is not None and key in previous else None,
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
