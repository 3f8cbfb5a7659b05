"""Each contact's totals in the two account windows, kept current (SPEC 13).

The accounts report needs, per contact, in the last SURVEY_ACCOUNT_WINDOW_DAYS days and in
the window before: counted responses, promoters, detractors, the score sum, the latest
counted score, filtered responses and sent deliveries; and its open cases, company, role
and renewal date. Grouping a million responses by contact for every report costs seconds,
and between two reports few contacts change. So the totals live in `account_stats` (a row
per contact and window; every contact of a company has one in window 0) and `refresh`
brings them up to date before each read, computing again only the contacts that changed:

- a response written since the last refresh (its `version`, m014, grows with every write);
- a delivery sent, a case opened or resolved, a contact added, removed, or given another
  company, role or renewal date (triggers of m025 note the contact in `account_dirty`);
- a response or delivery that crossed a window's edge as time moved on.

An incremental refresh runs under the write lock, so two processes never interleave. The
first refresh, one after the policy or the window length changed, and one with more than
FULL_AT contacts changed compute every contact: that reads for seconds at a million
answers, so it reads one snapshot without the lock and then writes under it, unless
another process brought the totals past that snapshot meanwhile. What changed after the
snapshot is still marked (a version above it, a row in account_dirty after its marker),
so the next refresh takes it up.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta

import sqlite_utils

from .clock import stamp, utcnow
from .db import write
from .scores import DETRACTOR_SQL, PROMOTER_SQL, counted_sql, filtered_sql

DECISION_MAKER = "decision-maker"  # the `role` attribute of whom the account listens to
FULL_AT = 20_000  # more changed contacts than this: computing all at once is quicker
COLUMNS = ("contact_id, win, n, p, d, total, latest, filtered, sent, open_cases, company,"
           " decides, renewal")


def edges(days: int) -> tuple[str, str]:
    """Return the start of the window before and of the current one: `days` days each.

    The current window has no end: an answer stamped a moment ahead of this clock (another
    process's) is in it.
    """
    now = utcnow()
    return stamp(now - timedelta(days=2 * days)), stamp(now - timedelta(days=days))


def compute(conn: sqlite3.Connection, policy: str, scope: str, params: dict,
            win: str = "0", contacts: str = "1") -> list[tuple]:
    """Return account_stats rows (COLUMNS) of the contacts with a company.

    `scope` is an SQL condition on a response or a delivery and `win` an expression of its
    window, written with `{x}` for the row's alias and `{stamp}` for its time (when it was
    answered or sent); `contacts` is a condition on the contacts, written with `{id}` for
    a contact's id; all take `:name` parameters. A contact has a row per window it has a
    counted or filtered response or a sent delivery in, and one in window 0 in any case
    (its open cases, from any time: a case stays open until someone resolves it; or only
    to count it among its company's contacts).
    """
    rows: dict[tuple[int, int], list] = {}

    def add(key, column, value):
        rows.setdefault(key, [0, 0, 0, 0, None, 0, 0, 0])[column] = value

    r = {"x": "r", "stamp": "r.responded_at", "id": "r.contact_id"}
    where, window = f"{scope} AND {contacts}".format(**r), win.format(**r)
    # SQLite gives the bare column r.score of the row with the max(): the latest answer.
    for contact, w, n, p, d, total, latest, _ in conn.execute(
            f"SELECT r.contact_id, {window}, count(*), sum({PROMOTER_SQL}),"
            f" sum({DETRACTOR_SQL}), sum(r.score), r.score, max(r.responded_at)"
            f" FROM responses r WHERE {where} AND {counted_sql(policy)} GROUP BY 1, 2",
            params):
        rows[contact, w] = [n, p, d, total, latest, 0, 0, 0]
    for contact, w, count in conn.execute(
            f"SELECT r.contact_id, {window}, count(*) FROM responses r"
            f" WHERE {where} AND {filtered_sql()} GROUP BY 1, 2", params):
        add((contact, w), 5, count)
    d = {"x": "d", "stamp": "d.sent_at", "id": "d.contact_id"}
    for contact, w, count in conn.execute(
            f"SELECT d.contact_id, {win.format(**d)}, count(*) FROM deliveries d"
            f" WHERE {scope} AND {contacts} AND d.status = 'sent' GROUP BY 1, 2"
            .format(**d), params):
        add((contact, w), 6, count)
    for contact, count in conn.execute(
            f"SELECT r.contact_id, count(*) FROM responses r"
            f" LEFT JOIN cases k ON k.response_id = r.id WHERE {contacts.format(**r)}"
            f" AND {counted_sql(policy)} AND {DETRACTOR_SQL}"
            f" AND coalesce(k.status, 'new') != 'resolved' GROUP BY 1", params):
        add((contact, 0), 7, count)
    # Every contact of a company has a row in window 0, with its company, whether it
    # decides, and its renewal date (the attribute's first ten characters, if a date).
    people = {}
    for contact, company, decides, day in conn.execute(
            f"""SELECT id, company, decides, CASE WHEN date(day) IS day THEN day END
                FROM (SELECT id, company,
                             coalesce(attributes ->> '$.role' = '{DECISION_MAKER}', 0)
                             AS decides,
                             substr(attributes ->> '$.renewal_date', 1, 10) AS day
                      FROM contacts WHERE company != '' AND {contacts.format(id='id')})""",
            params):
        people[contact] = (company, decides, day)
        rows.setdefault((contact, 0), [0, 0, 0, 0, None, 0, 0, 0])
    return [(contact, w, *totals, *people[contact]) for (contact, w), totals in rows.items()
            if contact in people]


def _store(conn: sqlite3.Connection, table: str, rows: list[tuple]) -> None:
    conn.executemany(f"INSERT INTO {table} ({COLUMNS}) VALUES"
                     f" ({', '.join('?' * len(COLUMNS.split(',')))})", rows)


WINDOWS = "{stamp} >= :start"
WINDOW_OF = "{stamp} < :mid"  # 0: the current window, 1: the one before
SOME = "{id} IN (SELECT value FROM json_each(:ids))"


def refresh(db: sqlite_utils.Database, policy: str, days: int) -> int:
    """Bring account_stats up to date for a policy and window; return contacts computed."""
    start, mid = edges(days)
    params = {"start": start, "mid": mid}
    state = db.execute("SELECT policy, days, start, mid, version, dirty_until"
                       " FROM account_stats_state").fetchone()
    if state is not None and (state[0], state[1]) == (policy, days):
        with write(db) as conn:
            state = conn.execute("SELECT policy, days, start, mid, version, dirty_until"
                                 " FROM account_stats_state").fetchone()
            ids = _changed(conn, state, start, mid)
            if len(ids) <= FULL_AT:
                if ids:
                    params["ids"] = json.dumps(ids)
                    conn.execute("DELETE FROM account_stats WHERE contact_id IN"
                                 " (SELECT value FROM json_each(?))", [params["ids"]])
                    _store(conn, "account_stats",
                           compute(conn, policy, WINDOWS, params, WINDOW_OF, SOME))
                _done(conn, policy, days, start, mid, *_marks(conn))
                return len(ids)
    conn = db.conn
    conn.execute("BEGIN")  # one snapshot for every read below
    try:
        version, marker = _marks(conn)
        rows = compute(conn, policy, WINDOWS, params, WINDOW_OF)
    finally:
        conn.commit()
    with write(db) as conn:
        state = conn.execute("SELECT policy, days, version, dirty_until"
                             " FROM account_stats_state").fetchone()
        if state is not None and (state[0], state[1]) == (policy, days) and (
                state[2] > version or state[3] > marker):
            return 0  # another process brought the totals past this snapshot meanwhile
        conn.execute("DELETE FROM account_stats")
        _store(conn, "account_stats", rows)
        _done(conn, policy, days, start, mid, version, marker)
    return len({row[0] for row in rows})


def _marks(conn: sqlite3.Connection) -> tuple[int, int]:
    """Return how far the totals will reflect: the response version, the last dirty mark.

    The mark is AUTOINCREMENT's high-water mark: ids are never used again, even once
    every row is deleted, so a mark compares with any later one.
    """
    return (conn.execute("SELECT last FROM response_versions").fetchone()[0],
            conn.execute("SELECT coalesce(max(seq), 0) FROM sqlite_sequence"
                         " WHERE name = 'account_dirty'").fetchone()[0])


def _done(conn: sqlite3.Connection, policy: str, days: int, start: str, mid: str,
          version: int, marker: int) -> None:
    conn.execute("DELETE FROM account_dirty WHERE id <= ?", [marker])
    conn.execute("DELETE FROM account_stats_state")
    conn.execute("INSERT INTO account_stats_state (policy, days, start, mid, version,"
                 " dirty_until) VALUES (?, ?, ?, ?, ?, ?)",
                 [policy, days, start, mid, version, marker])


def _changed(conn: sqlite3.Connection, state, start: str, mid: str) -> list[int]:
    """Return the contacts whose totals may differ from what account_stats holds."""
    crossed = []  # time ranges between an edge then and now (either way: clocks in tests)
    params: dict = {"version": state[4], "marker": state[5]}
    for k, (then, now) in enumerate(((state[2], start), (state[3], mid))):
        if then != now:
            params[f"a{k}"], params[f"b{k}"] = min(then, now), max(then, now)
            crossed += [f"SELECT contact_id FROM responses WHERE responded_at >= :a{k}"
                        f" AND responded_at < :b{k}",
                        f"SELECT contact_id FROM deliveries WHERE sent_at >= :a{k}"
                        f" AND sent_at < :b{k} AND status = 'sent'"]
    query = " UNION ".join(["SELECT contact_id FROM account_dirty WHERE id > :marker",
                            "SELECT contact_id FROM responses WHERE version > :version",
                            *crossed])
    return [row[0] for row in conn.execute(query, params)]


def by_company(conn: sqlite3.Connection, today: str, table: str = "account_stats",
               company: str | None = None):
    """Yield each company's sums per window (or one company's), from `table`
    (account_stats or a temporary table of the same columns):

    (company, win, n, p, d, total, filtered, sent, surveyed, answered and surveyed,
    sum and count of the contacts' latest scores, the same for decision-makers, open
    cases, contacts, the earliest renewal date from `today` on). In window 0 every contact
    of the company has a row, so the last two are the company's.
    """
    yield from conn.execute(
        f"""SELECT company, win, sum(n), sum(p), sum(d), sum(total), sum(filtered), sum(sent),
                   sum(sent > 0), sum(sent > 0 AND n > 0), sum(latest), count(latest),
                   sum(CASE WHEN decides THEN latest END),
                   count(CASE WHEN decides THEN latest END), sum(open_cases), count(*),
                   min(CASE WHEN renewal >= ? THEN renewal END)
            FROM {table} WHERE ? IS NULL OR company = ? GROUP BY company, win""",
        [today, company, company])


def of_campaign(db: sqlite_utils.Database, policy: str, campaign_id: int, today: str,
                company: str | None = None) -> list[tuple]:
    """Return by_company() rows of one campaign's answers and deliveries (window 0)."""
    conn = db.conn
    outside = not conn.in_transaction
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS campaign_stats AS"
                 f" SELECT {COLUMNS} FROM account_stats WHERE 0")
    try:
        _store(conn, "temp.campaign_stats", compute(
            conn, policy, "{x}.campaign_id = :campaign", {"campaign": campaign_id}))
        return list(by_company(conn, today, "temp.campaign_stats", company))
    finally:
        conn.execute("DELETE FROM temp.campaign_stats")
        if outside and conn.in_transaction:
            conn.commit()  # the implicit transaction the inserts opened
