"""The report a person or a program asks for, by any breakdown, with the settings applied.

One entry point for the command line, the API and the digest: `--by account` is the
accounts report and `--by theme` the themes' (SPEC 13), every other breakdown the NPS
report.
"""

from __future__ import annotations

import sqlite_utils

from . import accounts, nps, themes
from .config import Config

ACCOUNT_COLUMNS = ("score", "segment", "at_risk", "renewal_date", "open_cases", "coverage",
                   "change", "contacts", "surveyed")


def build(db: sqlite_utils.Database, config: Config, *, campaign_id: int | None = None,
          by: str | None = None) -> dict:
    """Return the report: overall, and with `by` a `groups` list, each with a `key`."""
    if by == "account":
        return accounts.report(
            db, policy=config["SURVEY_SCORE_POLICY"], method=config["SURVEY_ACCOUNT_NPS"],
            window_days=config["SURVEY_ACCOUNT_WINDOW_DAYS"],
            renewal_days=config["SURVEY_RENEWAL_WINDOW_DAYS"], campaign_id=campaign_id)
    if by == "theme":
        return themes.report(db, config["SURVEY_SCORE_POLICY"], campaign_id)
    return nps.report(db, campaign_id=campaign_id, by=by,
                      policy=config["SURVEY_SCORE_POLICY"])


def columns(by: str | None) -> list[str]:
    """Return the columns of a report's rows as a table or CSV shows them."""
    return ["key", *(ACCOUNT_COLUMNS if by == "account" else ()), *nps.FIELDS]
