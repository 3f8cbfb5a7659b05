"""NPS arithmetic and reports, computed in SQL over counted responses."""

from __future__ import annotations

import math
import re

import sqlite_utils

from .errors import SurveyError

FIELDS = ("nps", "margin_of_error", "responses", "promoters", "passives", "detractors",
          "sent", "response_rate", "filtered_automated")
ATTRIBUTE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_ .-]*$")


def segment(score: int) -> str:
    """Return detractor (0-6), passive (7-8) or promoter (9-10)."""
    return "detractor" if score <= 6 else "passive" if score <= 8 else "promoter"


def counted_sql(policy: str, alias: str = "r") -> str:
    """Return the SQL condition under which a response counts in the NPS."""
    if policy == "strict":
        return f"{alias}.confirmed = 1"
    return f"({alias}.confirmed = 1 OR {alias}.automated = 0)"


def score(promoters: int, detractors: int, responses: int) -> tuple[float | None, float | None]:
    """Return (NPS, 95% margin of error), both rounded to one decimal; None without responses."""
    if not responses:
        return None, None
    p, d = promoters / responses, detractors / responses
    nps = 100 * (p - d)
    variance = max(0.0, p + d - (p - d) ** 2)
    margin = 1.96 * 100 * math.sqrt(variance / responses)
    return round(nps, 1), round(margin, 1)


def _group_expr(by: str, table: str) -> str:
    if by == "company":
        return "c.company"
    if by == "language":
        return "c.language"
    if by == "campaign":
        return f"{table}.campaign_id"
    if by == "quarter":
        column = "r.created_at" if table == "r" else "d.sent_at"
        return (f"strftime('%Y', {column}) || '-Q' || "
                f"((cast(strftime('%m', {column}) AS integer) + 2) / 3)")
    if by.startswith("attribute:"):
        name = by.split(":", 1)[1]
        if not ATTRIBUTE_RE.match(name):
            raise SurveyError(f'attribute name "{name}" is not valid')
        return f"json_extract(c.attributes, '$.\"{name}\"')"
    raise SurveyError(
        f'cannot group by "{by}": use company, language, quarter, campaign or attribute:NAME')


def _row(n: int, p: int, d: int, sent: int, filtered: int) -> dict:
    nps, margin = score(p, d, n)
    return {
        "nps": nps,
        "margin_of_error": margin,
        "responses": n,
        "promoters": p,
        "passives": n - p - d,
        "detractors": d,
        "sent": sent,
        "response_rate": round(n / sent, 4) if sent else 0.0,
        "filtered_automated": filtered,
    }


def report(db: sqlite_utils.Database, *, campaign_id: int | None = None, by: str | None = None,
           policy: str = "balanced") -> dict:
    """Return the NPS and its counts, overall and (with `by`) per group."""
    counted = counted_sql(policy)
    where_r = "r.campaign_id = ?" if campaign_id is not None else "1"
    where_d = "d.campaign_id = ?" if campaign_id is not None else "1"
    params = [campaign_id] if campaign_id is not None else []
    key_r = _group_expr(by, "r") if by else "NULL"
    key_d = _group_expr(by, "d") if by else "NULL"
    needs_contacts = by in ("company", "language") or (by or "").startswith("attribute:")
    join_r = "JOIN contacts c ON c.id = r.contact_id" if needs_contacts else ""
    join_d = "JOIN contacts c ON c.id = d.contact_id" if needs_contacts else ""
    responses = db.execute(
        f"""
        SELECT {key_r} AS key,
               sum({counted}) AS n,
               sum({counted} AND r.score >= 9) AS p,
               sum({counted} AND r.score <= 6) AS d,
               sum(r.automated = 1 AND r.confirmed = 0) AS filtered
        FROM responses r {join_r}
        WHERE {where_r}
        GROUP BY key
        """,
        params,
    ).fetchall()
    sent = dict(db.execute(
        f"SELECT {key_d} AS key, count(*) FROM deliveries d {join_d} "
        f"WHERE {where_d} AND d.status = 'sent' GROUP BY key",
        params,
    ).fetchall())
    groups = {}
    for row in responses:
        groups[row["key"]] = (row["n"] or 0, row["p"] or 0, row["d"] or 0, row["filtered"] or 0)
    total = [sum(g[i] for g in groups.values()) for i in range(4)]
    result = _row(total[0], total[1], total[2], sum(sent.values()), total[3])
    if campaign_id is not None:
        result["campaign"] = campaign_id
    if by:
        keys = sorted(set(groups) | set(sent), key=lambda k: (k is None, str(k)))
        result["by"] = by
        result["groups"] = [
            {"key": "" if key is None else key,
             **_row(*groups.get(key, (0, 0, 0, 0))[:3], sent.get(key, 0),
                    groups.get(key, (0, 0, 0, 0))[3])}
            for key in keys
        ]
    return result


def distribution(db: sqlite_utils.Database, *, campaign_id: int | None = None,
                 policy: str = "balanced") -> list[int]:
    """Return how many counted responses gave each score, 0 to 10."""
    where = "r.campaign_id = ?" if campaign_id is not None else "1"
    counts = [0] * 11
    for value, count in db.execute(
            f"SELECT r.score, count(*) FROM responses r WHERE {where} AND {counted_sql(policy)} "
            f"GROUP BY r.score", [campaign_id] if campaign_id is not None else []):
        counts[value] = count
    return counts
