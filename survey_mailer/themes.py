"""Themes: what comments talk about, tagged by hand or by keyword rules (SPEC 13).

A theme is a name and its words, one per line or comma-separated, in any language. A
word matches whole words of a comment, ignoring case and accents ("lent" finds "Lént");
a trailing `*` matches a prefix ("slow*" finds "slowness"); several words on one line
match as a phrase ("customer service"). Rules tag every comment, old ones included:
changing a rule marks the tags stale, and the worker's next round tags again
(`retag`). Tags staff set by hand are theirs and no rule removes them.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass

import sqlite_utils

from .clock import now
from .db import write
from .errors import NotFound, SurveyError
from .humans import reads_responses
from .scores import counted_sql, in_segment_sql

WORD_RE = re.compile(r"\w+")
BATCH = 5000


def normalise(text: str) -> str:
    """Return text folded for matching: no accents, case-folded."""
    if text.isascii():
        return text.casefold()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def parse_words(text: str) -> list[str]:
    """Return a rule's words (or phrases), folded, from lines or commas; refuse nonsense."""
    words = []
    for part in re.split(r"[,\n]", text):
        word = " ".join(WORD_RE.findall(normalise(part.strip().rstrip("*")))) + (
            "*" if part.strip().endswith("*") else "")
        if word.strip("*"):
            words.append(word)
        elif part.strip():
            raise SurveyError(f'"{part.strip()}" has no letters or digits to match')
    return list(dict.fromkeys(words))


@dataclass
class Matcher:
    """Every theme's words compiled for fast matching of many comments."""

    exact: dict[str, set[int]]
    prefixes: dict[int, dict[str, set[int]]]  # by prefix length
    phrases: list[tuple[re.Pattern, int]]

    @classmethod
    def build(cls, rules: list[tuple[int, list[str]]]) -> Matcher:
        exact, prefixes, phrases = defaultdict(set), defaultdict(lambda: defaultdict(set)), []
        for theme_id, words in rules:
            for word in words:
                prefix = word.endswith("*")
                word = word.rstrip("*")
                if " " in word:
                    pattern = r"\b" + r"\s+".join(map(re.escape, word.split())) + (
                        r"\w*" if prefix else r"\b")
                    phrases.append((re.compile(pattern), theme_id))
                elif prefix:
                    prefixes[len(word)][word].add(theme_id)
                else:
                    exact[word].add(theme_id)
        return cls(dict(exact), {k: dict(v) for k, v in prefixes.items()}, phrases)

    def themes(self, comment: str) -> set[int]:
        """Return the ids of the themes a comment names."""
        text = normalise(comment)
        tokens = set(WORD_RE.findall(text))
        found: set[int] = set()
        for token in tokens:
            if token in self.exact:
                found |= self.exact[token]
        for length, words in self.prefixes.items():
            for token in tokens:
                hit = words.get(token[:length])
                if hit and len(token) >= length:
                    found |= hit
        for pattern, theme_id in self.phrases:
            if theme_id not in found and pattern.search(text):
                found.add(theme_id)
        return found


# Rules ------------------------------------------------------------------------------------


def list_themes(db: sqlite_utils.Database) -> list[dict]:
    """Return every theme with its words, by name."""
    return [dict(r, words=r["words"].split("\n") if r["words"] else [])
            for r in db.execute("SELECT * FROM themes ORDER BY name COLLATE NOCASE")]


def save(db: sqlite_utils.Database, name: str, words: str, theme_id: int | None = None) -> int:
    """Create or change a theme's name and words; its tags are redone by the next round."""
    name = " ".join(name.split())
    if not name or len(name) > 60:
        raise SurveyError("a theme needs a name of 1 to 60 characters")
    parsed = parse_words(words)
    stamp = now()
    with write(db) as conn:
        clash = conn.execute("SELECT id FROM themes WHERE name = ? COLLATE NOCASE AND id != ?",
                             [name, theme_id or 0]).fetchone()
        if clash:
            raise SurveyError(f'there is a theme named "{name}" already')
        if theme_id is None:
            theme_id = conn.execute(
                "INSERT INTO themes (name, words, created_at, updated_at) VALUES (?, ?, ?, ?)",
                [name, "\n".join(parsed), stamp, stamp]).lastrowid
        elif not conn.execute("UPDATE themes SET name = ?, words = ?, updated_at = ? "
                              "WHERE id = ?", [name, "\n".join(parsed), stamp,
                                               theme_id]).rowcount:
            raise NotFound("theme", theme_id)
        conn.execute("UPDATE theme_rules SET version = version + 1")
    return theme_id


def delete(db: sqlite_utils.Database, theme_id: int) -> None:
    """Remove a theme and every tag of it."""
    with write(db) as conn:
        conn.execute("DELETE FROM response_themes WHERE theme_id = ?", [theme_id])
        if not conn.execute("DELETE FROM themes WHERE id = ?", [theme_id]).rowcount:
            raise NotFound("theme", theme_id)


def tag(db: sqlite_utils.Database, response_id: int, theme_id: int, on: bool = True) -> None:
    """Tag (or untag) a response with a theme by hand."""
    with write(db) as conn:
        if on:
            conn.execute("INSERT INTO response_themes (response_id, theme_id, source) "
                         "VALUES (?, ?, 'staff') ON CONFLICT DO UPDATE SET source = 'staff'",
                         [response_id, theme_id])
        else:
            conn.execute("DELETE FROM response_themes WHERE response_id = ? AND theme_id = ?",
                         [response_id, theme_id])


# Tagging ----------------------------------------------------------------------------------


def _rules(db) -> list[tuple[int, list[str]]]:
    return [(r[0], [w for w in r[1].split("\n") if w])
            for r in db.execute("SELECT id, words FROM themes")]


def stale(db: sqlite_utils.Database) -> bool:
    """Return whether the rules changed since comments were last tagged."""
    version, tagged = db.execute("SELECT version, tagged FROM theme_rules").fetchone()
    return version != tagged


def retag(db: sqlite_utils.Database, batches: int | None = None) -> int:
    """Tag every comment by the rules again (after a rule change); return the tags made.

    Comments are read in id order, BATCH at a time; each batch replaces its own rule tags
    (tags set by hand stay) and moves the cursor on in one transaction, so the write lock is
    never held for long, a crash resumes where it stopped, and with `batches` a caller (the
    worker's round) does a slice and comes back: meanwhile old comments keep their old tags.
    A rule change in the middle starts the pass again.
    """
    (version,) = db.execute("SELECT version FROM theme_rules").fetchone()
    with write(db) as conn:
        if conn.execute("SELECT retag_version IS NOT ? FROM theme_rules",
                        [version]).fetchone()[0]:
            # Comments changed after this are tagged by the next tag_new (versions above).
            conn.execute("UPDATE theme_rules SET retag_version = ?, retag_after = 0,"
                         " retag_seen = (SELECT coalesce(max(version), 0) FROM responses)",
                         [version])
    (last,) = db.execute("SELECT retag_after FROM theme_rules").fetchone()
    matcher = Matcher.build(_rules(db))
    tagged = 0
    while batches is None or batches > 0:
        rows = db.execute("SELECT id, comment FROM responses WHERE id > ? AND comment != ''"
                          " ORDER BY id LIMIT ?", [last, BATCH]).fetchall()
        with write(db) as conn:
            if conn.execute("SELECT version FROM theme_rules").fetchone()[0] != version:
                break  # the rules changed meanwhile: the next call starts the pass again
            if not rows:
                conn.execute("UPDATE theme_rules SET tagged = retag_version,"
                             " tagged_version = retag_seen")
                break
            found = [(response_id, theme_id) for response_id, comment in rows
                     for theme_id in matcher.themes(comment)]
            conn.execute("DELETE FROM response_themes WHERE source = 'rule'"
                         " AND response_id > ? AND response_id <= ?", [last, rows[-1][0]])
            conn.executemany("INSERT INTO response_themes (response_id, theme_id, source) "
                             "VALUES (?, ?, 'rule') ON CONFLICT DO NOTHING", found)
            last = rows[-1][0]
            conn.execute("UPDATE theme_rules SET retag_after = ?", [last])
        tagged += len(found)
        if batches is not None:
            batches -= 1
    return tagged


def tag_new(db: sqlite_utils.Database, batches: int | None = None) -> int:
    """Tag comments written or changed since the last tagging; redo all when rules changed.

    After a rule change, `batches` bounds the slice of the whole pass done in this call.
    """
    if stale(db):
        return retag(db, batches)
    (until,) = db.execute("SELECT tagged_version FROM theme_rules").fetchone()
    rows = db.execute("SELECT id, comment, version FROM responses WHERE version > ?"
                      " ORDER BY version", [until]).fetchall()
    if not rows:
        return 0
    matcher = Matcher.build(_rules(db))
    found = [(r[0], theme_id) for r in rows if r[1] for theme_id in matcher.themes(r[1])]
    with write(db) as conn:
        conn.executemany("DELETE FROM response_themes WHERE response_id = ? AND "
                         "source = 'rule'", [(r[0],) for r in rows])
        conn.executemany("INSERT INTO response_themes (response_id, theme_id, source) "
                         "VALUES (?, ?, 'rule') ON CONFLICT DO NOTHING", found)
        conn.execute("UPDATE theme_rules SET tagged_version = ?", [rows[-1][2]])
    return len(found)


# Reading ----------------------------------------------------------------------------------


@reads_responses
def counts(db: sqlite_utils.Database, policy: str, since: str | None = None,
           until: str | None = None) -> list[dict]:
    """Return, per theme, how many counted comments name it in each segment."""
    where, params = [counted_sql(policy)], []
    if since:
        where.append("r.responded_at >= ?")
        params.append(since)
    if until:
        where.append("r.responded_at < ?")
        params.append(until)
    rows = db.execute(
        f"""SELECT t.id, t.name, sum({in_segment_sql("detractor")}),
               sum({in_segment_sql("passive")}), sum({in_segment_sql("promoter")}), count(*)
            FROM response_themes x JOIN themes t ON t.id = x.theme_id
            JOIN responses r ON r.id = x.response_id
            WHERE {' AND '.join(where)} GROUP BY t.id ORDER BY count(*) DESC, t.name""",
        params)
    return [{"id": r[0], "theme": r[1], "detractors": r[2], "passives": r[3],
             "promoters": r[4], "total": r[5]} for r in rows]


def of_responses(db: sqlite_utils.Database, ids: list[int]) -> dict[int, list[str]]:
    """Return the theme names of each response."""
    if not ids:
        return {}
    found = defaultdict(list)
    for response_id, name in db.execute(
            f"SELECT x.response_id, t.name FROM response_themes x JOIN themes t"
            f" ON t.id = x.theme_id WHERE x.response_id IN ({','.join('?' * len(ids))})"
            f" ORDER BY t.name", ids):
        found[response_id].append(name)
    return dict(found)


@reads_responses
def report(db: sqlite_utils.Database, policy: str, campaign_id: int | None = None) -> dict:
    """Return the NPS report grouped by theme: the counted responses naming each one."""
    from . import nps

    where, params = [counted_sql(policy)], []
    if campaign_id is not None:
        where.append("r.campaign_id = ?")
        params.append(campaign_id)
    groups = [
        {"key": name, **nps._row(n, p, d, 0, 0)}
        for name, n, p, d in db.execute(
            f"""SELECT t.name, count(*), sum({in_segment_sql("promoter")}),
                       sum({in_segment_sql("detractor")})
                FROM response_themes x JOIN themes t ON t.id = x.theme_id
                JOIN responses r ON r.id = x.response_id
                WHERE {' AND '.join(where)} GROUP BY t.id ORDER BY t.name""", params)]
    overall = nps.report(db, campaign_id=campaign_id, policy=policy)
    overall.pop("scores", None)
    return {**overall, "by": "theme", "groups": groups}
