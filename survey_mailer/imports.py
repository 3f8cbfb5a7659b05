"""Responses from other tools: the history a team brings along, so its trend goes on.

`survey-mailer responses import FILE.csv --campaign-name NAME` and Delighted's `POST
survey_responses` land here. An imported response counts in the NPS like any other (it is
marked confirmed by "import" and `imported`), but it is history: it never makes an alert,
a webhook or a follow-up case (`humans.live_sql`). Each one hangs on a delivery of the
campaign marked as sent at the time of the answer (source "import"), one per person and
campaign, so importing the same file again changes nothing.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import IO, NamedTuple

import sqlite_utils

from . import contacts, csvfiles, scores
from .addresses import email_problem, shown, text_problem
from .clock import now, stamp
from .db import write
from .errors import ImportFailed, SurveyError

TIME_COLUMNS = ("respondedat", "createdat", "responsetimestamp")
KNOWN = ("email", "score", "comment", "name", "company", *TIME_COLUMNS)
MAX_COMMENT = 5000


def _key(header: str) -> str:
    """A header as matched: case, spaces and underscores ignored ("Response Timestamp")."""
    return re.sub(r"[\s_]", "", header.lower())


def parse_time(value: object) -> str:
    """Return ISO 8601 text or unix seconds as a stored stamp; raise ValueError if neither."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int | float) or (isinstance(value, str)
                                          and re.fullmatch(r"\d{1,11}(\.\d+)?", value.strip())):
        moment = datetime.fromtimestamp(float(value), UTC)
    elif isinstance(value, str):
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    else:
        raise ValueError(value)
    if not 2000 <= moment.year <= 2100:
        raise ValueError(value)
    return stamp(moment)


class Row(NamedTuple):
    line: int
    email: str
    score: int
    responded_at: str
    comment: str
    name: str | None
    company: str | None
    attributes: dict


def parse_csv(source: bytes | IO[bytes] | IO[str]) -> list[Row]:
    """Read and check every row of a responses file; raise ImportFailed naming each bad line."""
    table = csvfiles.Table(source, _key, "a header row with email, score and responded_at "
                                         "columns is required")
    header, fields = table.header, table.fields
    missing = [name for name in ("email", "score") if name not in header]
    if missing or not any(t in header for t in TIME_COLUMNS):
        needed = missing + ([] if any(t in header for t in TIME_COLUMNS) else
                            ["responded_at (or created_at, response timestamp)"])
        raise ImportFailed([f"line 1: no {', '.join(needed)} column in the header "
                            f"({', '.join(f.strip() for f in fields)})"])
    time_column = next(t for t in TIME_COLUMNS if t in header)
    extra = {h: f.strip().lower() for h, f in zip(header, fields, strict=True)
             if h not in KNOWN}
    rows, problems, seen = [], table.problems, {}
    for line, record in table.rows():
        problem, row = _row(line, record, time_column, extra, seen)
        if problem:
            problems.append(f"line {line}: {problem}")
        else:
            seen[row.email.lower()] = line
            rows.append(row)
    if problems:
        raise ImportFailed(problems)
    return rows


def _row(line: int, record: dict, time_column: str, extra: dict,
         seen: dict) -> tuple[str | None, Row | None]:
    email, score = record["email"], scores.parse(record["score"])
    if not email:
        return "email is empty", None
    if email_problem(email):
        return email_problem(email), None
    if email.lower() in seen:
        return (f'"{email}" already appears on line {seen[email.lower()]} (one response per '
                f"person and campaign: import each period with its own --campaign-name)"), None
    if score is None:
        return f'score "{shown(record["score"])}" is not a whole number from 0 to 10', None
    try:
        responded_at = parse_time(record[time_column])
    except (ValueError, OverflowError, OSError):
        return (f'"{shown(record[time_column])}" is not a time: write ISO 8601 '
                f"(2026-03-31T14:00:00Z) or unix seconds"), None
    if responded_at > now():
        return f'"{shown(record[time_column])}" is in the future', None
    if len(record.get("comment", "")) > MAX_COMMENT:
        return f"the comment is longer than {MAX_COMMENT} characters", None
    texts = {}
    for field in ("name", "company"):
        if field in record:
            value = record[field].replace("\t", " ").strip()
            if text_problem(field, value):
                return text_problem(field, value), None
            texts[field] = value or None
    attributes = {name: record[h] for h, name in extra.items() if record[h]}
    return None, Row(line, email, score, responded_at, record.get("comment", ""),
                     texts.get("name"), texts.get("company"), attributes)


class Imported(NamedTuple):
    added: int
    unchanged: int  # already imported (the same file again)
    erased: int  # skipped: these people asked to be forgotten

    def __str__(self) -> str:
        return (f"{self.added} responses imported, {self.unchanged} already there"
                + (f", {self.erased} skipped: erased" if self.erased else ""))


def history_campaign(conn, name: str) -> int:
    """Return the id of the campaign that holds imported history under this name."""
    row = conn.execute("SELECT id FROM campaigns WHERE name = ? ORDER BY id LIMIT 1",
                       [name]).fetchone()
    if row is not None:
        return row[0]
    return conn.execute(
        "INSERT INTO campaigns (name, subject, sender, brand, created_at, paused_at)"
        " VALUES (?, 'Imported responses', '', '', ?, ?)", [name, now(), now()]).lastrowid


def import_csv(db: sqlite_utils.Database, campaign_name: str,
               source: bytes | IO[bytes] | IO[str]) -> Imported:
    """Check a whole responses file, then import it in one transaction."""
    if not campaign_name.strip():
        raise SurveyError("--campaign-name is empty: name the campaign the history goes in")
    rows = parse_csv(source)
    added = unchanged = erased = 0
    with write(db) as conn:
        campaign_id = history_campaign(conn, campaign_name.strip())
        for row in rows:
            if contacts.is_erased(db, row.email):
                erased += 1
                continue
            if add(conn, campaign_id, row) is None:
                unchanged += 1
            else:
                added += 1
    return Imported(added, unchanged, erased)


def add(conn, campaign_id: int, row: Row, *, contact: dict | None = None) -> int | None:
    """Import one response in the caller's transaction; return its id, None if it exists.

    The contact is added, or updated with the name and company given (attributes merged).
    """
    if contact is None:
        contact = contacts.upsert(conn, email=row.email, name=row.name, company=row.company,
                                  attributes=row.attributes)
    if conn.execute("SELECT 1 FROM responses WHERE campaign_id = ? AND contact_id = ?",
                    [campaign_id, contact["id"]]).fetchone():
        return None
    (delivery_id,) = conn.execute(
        """INSERT INTO deliveries (campaign_id, contact_id, status, created_at, sent_at,
                                   source)
           VALUES (?, ?, 'sent', ?, ?, 'import')
           ON CONFLICT (campaign_id, contact_id) DO UPDATE SET status = deliveries.status
           RETURNING id""",
        [campaign_id, contact["id"], row.responded_at, row.responded_at]).fetchone()
    return conn.execute(
        """INSERT INTO responses (delivery_id, campaign_id, contact_id, score, comment,
                                  confirmed, confirmed_at, confirmed_by, seen, imported,
                                  created_at, responded_at, last_click_at)
           VALUES (?, ?, ?, ?, ?, 1, ?, 'import', 1, 1, ?, ?, ?) RETURNING id""",
        [delivery_id, campaign_id, contact["id"], row.score, row.comment, now(),
         row.responded_at, row.responded_at, row.responded_at]).fetchone()[0]
