"""One account's page (SPEC 13): its contacts with their latest scores and comments, its
trend by quarter and its cases; its row of the accounts report on top."""

from __future__ import annotations

import sqlite_utils

from . import accounts, cases
from .config import Config
from .errors import NotFound
from .humans import reads_responses
from .scores import DETRACTOR_SQL, PROMOTER_SQL, counted_sql, segment


@reads_responses
def detail(db: sqlite_utils.Database, config: Config, company: str) -> dict:
    """Return an account's row, contacts, quarterly trend and cases; NotFound if none."""
    policy = config["SURVEY_SCORE_POLICY"]
    people = [dict(r) for r in db.execute(
        f"""SELECT c.id, c.name, c.email, json_extract(c.attributes, '$.role') AS role,
                   json_extract(c.attributes, '$.renewal_date') AS renewal_date,
                   r.id AS response_id, r.score, r.comment, r.responded_at
            FROM contacts c
            LEFT JOIN responses r ON r.id = (
                SELECT r.id FROM responses r WHERE r.contact_id = c.id
                AND {counted_sql(policy)} ORDER BY r.responded_at DESC, r.id DESC LIMIT 1)
            WHERE c.company = ? ORDER BY r.score IS NULL, r.score, c.email""", [company])]
    if not people:
        raise NotFound("account", company)
    for person in people:
        person["segment"] = segment(person["score"]) if person["score"] is not None else None
    report = accounts.report(
        db, policy=policy, method=config["SURVEY_ACCOUNT_NPS"],
        window_days=config["SURVEY_ACCOUNT_WINDOW_DAYS"],
        renewal_days=config["SURVEY_RENEWAL_WINDOW_DAYS"], company=company)
    row = next(iter(report["groups"]), None)
    trend = []
    for quarter, n, p, d, total in db.execute(
            f"""SELECT strftime('%Y', r.responded_at) || '-Q' ||
                       ((cast(strftime('%m', r.responded_at) AS INTEGER) + 2) / 3) AS q,
                       count(*), sum({PROMOTER_SQL}), sum({DETRACTOR_SQL}), sum(r.score)
                FROM responses r JOIN contacts c ON c.id = r.contact_id
                WHERE c.company = ? AND {counted_sql(policy)} GROUP BY q ORDER BY q""",
            [company]):
        trend.append({"key": quarter, "responses": n, "mean": round(total / n, 1),
                      "nps": round(100 * (p - d) / n, 1)})
    return {"key": company, "row": row, "method": report["method"], "contacts": people,
            "trend": trend,
            "cases": cases.list_cases(db, policy, company=company,
                                      sla_hours=config["SURVEY_CASE_SLA_HOURS"])}
