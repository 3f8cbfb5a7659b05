"""Counting only humans: scanner lists, bursts, the honeypot and human confirmation (SPEC 7).

Mail-security scanners open the links of an email, often all eleven score buttons within a
second, sometimes from a browser that runs JavaScript. Every click is kept in the click log;
a click is *automated* when

- its user agent or network is on a scanner list (matched at request time: the raw IP is
  never stored),
- different scores for one delivery arrive within `SURVEY_BURST_SECONDS` (a burst: all of
  its clicks are automated, including one already counted a moment earlier), or
- the delivery's hidden honeypot link is hit within that window, before or after.

A response is *confirmed* by a human signal: a real pointer, touch or key event on the
landing page (the beacon), a form submission, or staff restoring it by hand. Confirmation
overrides every heuristic, and clicks never change a confirmed response (the person can still
change their score with the page's form). Otherwise the latest unflagged click's score wins,
and under `balanced` it counts once the landing page of that score was *seen*: shown in a
visible, focused browser tab that no automation drives (the page's "seen" beacon). A fetch
that never displays the page, and a sandbox that renders it unattended, are no vote. A page
seen after a scanner's burst takes the person's click back out of it; machine traffic that
comes after a page was seen (a honeypot hit, more scores) marks that click again.

The score route only appends to the click log (`log_click`): one INSERT, so clicks stay
cheap under load (SPEC 9). Responses are folded from the log in click order (`fold`) by
whatever reads them next, with the same result as folding each click the moment it came.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
import sqlite3
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

import sqlite_utils

from . import db as db_
from .clock import now, shift
from .errors import ConfigError, NotFound
from .scores import counted_sql

DATA = Path(__file__).resolve().parent / "data"
USER_AGENTS_FILE = DATA / "scanner_user_agents.txt"
NETWORKS_FILE = DATA / "scanner_networks.txt"
FOLD_BATCH = 1000  # clicks folded per write transaction: tens of milliseconds of lock
IPV4_MAPPED = bytes(10) + b"\xff\xff"


# Scanner lists ----------------------------------------------------------------------------


class Scanners:
    """Known scanners' user-agent substrings and IP networks, matched fast per request."""

    def __init__(self, user_agents: Iterable[str] = (), networks: Iterable[str] = ()):
        agents = sorted({a.strip().lower() for a in user_agents if a.strip()})
        self._agents = (re.compile("|".join(re.escape(a) for a in agents), re.IGNORECASE)
                        if agents else None)
        self._seen_agents: dict[str, bool] = {}
        # Networks grouped by (IP version, prefix length): a lookup shifts the address once
        # per group and tests set membership, instead of comparing with every network.
        self._networks: dict[tuple[int, int], set[int]] = {}
        for text in networks:
            network = ipaddress.ip_network(text, strict=False)
            shift = network.max_prefixlen - network.prefixlen
            self._networks.setdefault((network.version, shift), set()).add(
                int(network.network_address) >> shift)

    def listed_agent(self, user_agent: str) -> bool:
        """Return whether a user agent is missing or names a known scanner."""
        # Remembered per string: searching the long alternation costs tens of microseconds
        # per click, and real traffic repeats a few hundred user agents.
        listed = self._seen_agents.get(user_agent)
        if listed is None:
            listed = not user_agent.strip() or bool(  # every browser sends one
                self._agents and self._agents.search(user_agent))
            if len(self._seen_agents) >= 4096:
                self._seen_agents.clear()
            self._seen_agents[user_agent] = listed
        return listed

    def listed_ip(self, ip: str | None) -> bool:
        """Return whether an IP address is in a listed scanner network."""
        if not ip or not self._networks:
            return False
        # socket.inet_pton rather than ipaddress.ip_address: this runs per click.
        try:
            if ":" in ip:
                packed = socket.inet_pton(socket.AF_INET6, ip)
                if packed.startswith(IPV4_MAPPED):
                    version, value = 4, int.from_bytes(packed[12:])
                else:
                    version, value = 6, int.from_bytes(packed)
            else:
                version, value = 4, int.from_bytes(socket.inet_pton(socket.AF_INET, ip))
        except OSError:
            return False
        return any(value >> shift in networks
                   for (net_version, shift), networks in self._networks.items()
                   if net_version == version)

    def reason(self, user_agent: str, ip: str | None) -> str | None:
        """Return why a request comes from a known scanner ("user-agent", "network"), or None."""
        if self.listed_agent(user_agent):
            return "user-agent"
        if self.listed_ip(ip):
            return "network"
        return None


def _read_list(path: Path, parse=None) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f'scanner list "{path}" cannot be read: {e.strerror}') from e
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split(" # ", 1)[0].strip()  # each entry may end with its source
        if not line or line.startswith("#"):
            continue
        if parse is not None:
            try:
                parse(line)
            except ValueError as e:
                raise ConfigError(f'{path} line {number}: "{line}" is not an IP network '
                                  f"(write it like 192.0.2.0/24)") from e
        entries.append(line)
    return entries


def _network(line: str) -> None:
    ipaddress.ip_network(line, strict=False)


@lru_cache(maxsize=8)
def scanners(extra_user_agents: str | None = None,
             extra_networks: str | None = None) -> Scanners:
    """Load the built-in scanner lists plus extra files (comma-separated paths); cached."""
    agent_files = [USER_AGENTS_FILE, *_paths(extra_user_agents)]
    network_files = [NETWORKS_FILE, *_paths(extra_networks)]
    return Scanners(
        [line for path in agent_files for line in _read_list(path)],
        [line for path in network_files for line in _read_list(path, _network)],
    )


def scanners_for(settings) -> Scanners:
    """Return the scanner lists the settings name (SURVEY_SCANNER_USER_AGENTS/_NETWORKS)."""
    return scanners(settings.get("SURVEY_SCANNER_USER_AGENTS"),
                    settings.get("SURVEY_SCANNER_NETWORKS"))


def _paths(value: str | None) -> list[Path]:
    return [Path(p.strip()) for p in (value or "").split(",") if p.strip()]


# Recording clicks -------------------------------------------------------------------------


def log_click(db: sqlite_utils.Database, delivery_id: int, score: int | None, *,
              method: str, user_agent: str = "", ip_hash: str = "", kind: str = "score",
              reason: str | None = None) -> None:
    """Append a click to the click log: the score route's whole write, one INSERT.

    `reason` says why the request is already known to be automated (a scanner list match);
    a honeypot hit always is. Bursts and a honeypot's neighbours are found when the click is
    folded into its response (`fold`). The click's foreign key checks that the delivery
    exists, so the route needs no lookup of its own: raise NotFound when it does not.
    """
    if kind == "honeypot":
        reason = "honeypot"
    with db_.write(db) as conn:
        try:
            conn.execute(
                "INSERT INTO clicks (delivery_id, score, kind, method, user_agent, ip_hash,"
                " clicked_at, automated, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                # The time is taken under the write lock: a delivery's clicks stay in order.
                [delivery_id, score, kind, method, user_agent[:500], ip_hash, now(),
                 int(reason is not None), reason])
        except sqlite3.IntegrityError as e:  # FOREIGN KEY: no such delivery
            raise NotFound("delivery", delivery_id) from e


def record_click(db: sqlite_utils.Database, delivery: dict | int, score: int | None, *,
                 seen: bool = False, **click) -> None:
    """Log a click and fold it into its response at once (for scripts and the demo).

    `seen`: the landing page then showed the score in a person's browser tab.
    """
    delivery_id = delivery if isinstance(delivery, int) else delivery["id"]
    log_click(db, delivery_id, score, **click)
    if seen and score is not None:
        page_seen(db, delivery_id, score)
    else:
        fold(db)


# Folding clicks into responses ------------------------------------------------------------


def fold(db: sqlite_utils.Database) -> int:
    """Fold the clicks logged since the last fold into responses; return how many.

    Every library function that reads responses runs this first (`reads_responses`), with
    the burst window the connection was opened with. When nothing is pending it costs one
    read and takes no lock; a backlog is folded in batches, so clicks never wait long for
    the write lock.
    """
    folded = 0
    while db.execute("SELECT max(id) > (SELECT until_id FROM clicks_folded)"
                     " FROM clicks").fetchone()[0]:
        with db_.write(db) as conn:
            folded += _fold_batch(conn, db.burst_seconds)
    return folded


F = TypeVar("F", bound=Callable)


def reads_responses(fn: F) -> F:
    """Fold pending clicks before `fn(db, ...)` reads responses: callers need not ask."""

    @functools.wraps(fn)
    def wrapper(db, *args, **kwargs):
        fold(db)
        return fn(db, *args, **kwargs)

    return wrapper


def _fold_batch(conn: sqlite3.Connection, burst_seconds: float) -> int:
    """Fold the next FOLD_BATCH pending clicks, oldest first; return how many."""
    (until,) = conn.execute("SELECT until_id FROM clicks_folded").fetchone()
    rows = conn.execute(
        "SELECT id, delivery_id, score, clicked_at, reason FROM clicks WHERE id > ?"
        " ORDER BY id LIMIT ?", [until, FOLD_BATCH]).fetchall()
    for row in rows:
        _fold_click(conn, *row, burst_seconds=burst_seconds)
    if rows:
        conn.execute("UPDATE clicks_folded SET until_id = ?", [rows[-1][0]])
    return len(rows)


def _fold_click(conn: sqlite3.Connection, click_id: int, delivery_id: int, score: int | None,
                stamp: str, reason: str | None, *, burst_seconds: float) -> None:
    """Classify one click with the clicks before it in its window; update the response.

    Every query stops at this click (id <= click_id), so a batch folds exactly as if each
    click had been folded the moment it came.
    """
    start = shift(stamp, -burst_seconds)
    scores, honeypot = conn.execute(
        "SELECT count(DISTINCT score), max(kind = 'honeypot') FROM clicks"
        " WHERE delivery_id = ? AND clicked_at >= ? AND id <= ?",  # the clicks_delivery index
        [delivery_id, start, click_id]).fetchone()
    if honeypot or scores > 1:
        reason = "honeypot" if honeypot else "burst"
        _mark_window(conn, click_id, delivery_id, score, reason, stamp, start)
    elif score is None:
        pass
    elif reason is None:
        conn.execute(
            """
            INSERT INTO responses (delivery_id, campaign_id, contact_id, score,
                                   created_at, responded_at, last_click_at)
            SELECT id, campaign_id, contact_id, ?, ?, ?, ? FROM deliveries WHERE id = ?
            ON CONFLICT (delivery_id) DO UPDATE SET
                score = excluded.score, automated = 0,
                -- A new score counts once its own page is seen.
                seen = responses.seen AND responses.score = excluded.score,
                responded_at = excluded.responded_at, last_click_at = excluded.last_click_at
            WHERE responses.confirmed = 0
            """,
            [score, stamp, stamp, stamp, delivery_id])
    else:
        _automated_score(conn, delivery_id, score, stamp, start)


def _automated_score(conn, delivery_id: int, score: int, stamp: str, start: str) -> None:
    # An automated click creates a response (counted nowhere, shown as filtered) or moves
    # one that machines made; it never touches a confirmed one or an earlier human's.
    conn.execute(
        """
        INSERT INTO responses (delivery_id, campaign_id, contact_id, score, automated,
                               created_at, responded_at, last_click_at)
        SELECT id, campaign_id, contact_id, ?, 1, ?, ?, ? FROM deliveries WHERE id = ?
        ON CONFLICT (delivery_id) DO UPDATE SET
            score = excluded.score, automated = 1,
            responded_at = excluded.responded_at, last_click_at = excluded.last_click_at
        WHERE responses.confirmed = 0
          AND (responses.automated = 1 OR responses.last_click_at >= ?)
        """,
        [score, stamp, stamp, stamp, delivery_id, start])


def _mark_window(conn, click_id: int, delivery_id: int, score: int | None, reason: str,
                 stamp: str, start: str) -> None:
    """Mark every click of the window automated, and the response its clicks made."""
    conn.execute(
        "UPDATE clicks SET automated = 1, reason = coalesce(reason, ?)"
        " WHERE delivery_id = ? AND clicked_at >= ? AND id <= ? AND automated = 0",
        [reason, delivery_id, start, click_id])
    conn.execute(
        "UPDATE responses SET automated = 1"
        " WHERE delivery_id = ? AND confirmed = 0 AND last_click_at >= ?",
        [delivery_id, start])
    if score is not None:
        _automated_score(conn, delivery_id, score, stamp, start)
    # The latest human score wins: the burst's first click looked human and replaced an
    # earlier person's score; put that one back.
    human = conn.execute(
        "SELECT score, clicked_at, seen FROM clicks WHERE delivery_id = ? AND kind = 'score'"
        " AND automated = 0 AND id <= ? ORDER BY clicked_at DESC LIMIT 1",
        [delivery_id, click_id]).fetchone()
    if human is not None:
        conn.execute(
            "UPDATE responses SET score = ?, automated = 0, last_click_at = ?,"
            " responded_at = ?, seen = ? WHERE delivery_id = ? AND confirmed = 0"
            " AND automated = 1", [human[0], human[1], human[1], human[2], delivery_id])


# Page seen --------------------------------------------------------------------------------


def page_seen(db: sqlite_utils.Database, delivery_id: int, score: int) -> bool:
    """Mark the latest click of `score` as seen by a person; return whether there is one.

    The landing page of that score was shown in a visible, focused tab that no automation
    drives: the click was a person's, even inside a scanner's burst, and its response counts
    under `balanced` (a confirmed response keeps its score and is only marked seen).
    """
    fold(db)
    with db_.write(db) as conn:
        click = conn.execute(
            "SELECT id, clicked_at FROM clicks WHERE delivery_id = ? AND kind = 'score'"
            " AND score = ? ORDER BY id DESC LIMIT 1", [delivery_id, score]).fetchone()
        if click is None:
            return False
        conn.execute("UPDATE clicks SET seen = 1, automated = 0 WHERE id = ?", [click[0]])
        if conn.execute(  # a page seen late: the person has clicked another score since
                "SELECT 1 FROM clicks WHERE delivery_id = ? AND kind = 'score' AND id > ?"
                " AND automated = 0", [delivery_id, click[0]]).fetchone():
            return True
        conn.execute(
            """
            UPDATE responses SET seen = 1,
                score = CASE WHEN confirmed THEN score ELSE ? END,
                automated = CASE WHEN confirmed THEN automated ELSE 0 END,
                last_click_at = CASE WHEN confirmed THEN last_click_at ELSE ? END,
                responded_at = CASE WHEN confirmed THEN responded_at ELSE ? END
            WHERE delivery_id = ? AND NOT (seen = 1 AND score = ? AND automated = 0)
            """,
            [score, click[1], click[1], delivery_id, score])
    return True


# Confirmation -----------------------------------------------------------------------------


def confirm(db: sqlite_utils.Database, delivery_id: int, *, by: str) -> bool:
    """Mark a delivery's response confirmed by a human signal; return whether one exists."""
    # The click that made the response may still be pending. Clicks logged after this
    # fold cannot change a confirmed response, so they may be folded later.
    fold(db)
    with db_.write(db) as conn:
        cursor = conn.execute(
            "UPDATE responses SET confirmed = 1, confirmed_at = coalesce(confirmed_at, ?),"
            " confirmed_by = coalesce(confirmed_by, ?) WHERE delivery_id = ?",
            [now(), by, delivery_id])
    return cursor.rowcount > 0


def restore(db: sqlite_utils.Database, response_id: int, *, staff: str) -> None:
    """Mark a filtered response as a person's by hand (staff), so it counts again."""
    with db_.write(db) as conn:
        cursor = conn.execute(
            "UPDATE responses SET confirmed = 1, confirmed_at = ?, confirmed_by = ?"
            " WHERE id = ?", [now(), f"staff:{staff}", response_id])
    if cursor.rowcount == 0:
        raise NotFound("response", response_id)


# Conditions for other modules ---------------------------------------------------------------


def settled_sql(burst_seconds: float, alias: str = "r") -> str:
    """Return the SQL condition of a settled response: confirmed, or no click for a window.

    A settled response can no longer turn out to be part of a burst, so alerts may go.
    The cut-off is computed now: build the condition again for every query.
    """
    cutoff = shift(now(), -burst_seconds)
    return (f"({alias}.confirmed = 1 OR coalesce({alias}.last_click_at, '') < '{cutoff}')")


def live_sql(alias: str = "r") -> str:
    """Return the SQL condition of a response given here, not history imported from
    another tool: only those make alerts, webhooks and follow-up cases."""
    return f"{alias}.imported = 0"


def alertable_sql(policy: str, burst_seconds: float, alias: str = "r") -> str:
    """Return the SQL condition of a response that alerts may report: counted, given here
    (not imported) and settled."""
    return (f"({counted_sql(policy, alias)} AND {live_sql(alias)}"
            f" AND {settled_sql(burst_seconds, alias)})")
