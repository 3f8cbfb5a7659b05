"""account_stats: the totals kept current equal the totals computed from scratch.

A seeded random walk changes everything the accounts report reads (answers and their
scores, confirmations, scanner flags and page views; deliveries sent; cases opened and
resolved; contacts' companies and roles) while the clock moves on, and back, across the
window edges. After each step the totals brought up to date by `refresh` must equal the
ones a full computation gives, row for row.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from survey_mailer import account_stats, accounts
from survey_mailer import clock as clock_
from survey_mailer import db as db_
from survey_mailer.clock import stamp
from survey_mailer.db import write

START = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
CONTACTS = 30
DAYS = 30  # the window: 30 days now, 30 days before


@pytest.fixture
def clock():
    frozen = clock_.Stopped(START)
    with clock_.frozen(frozen):
        yield frozen


@pytest.fixture
def world(db, clock):
    created = stamp(START - timedelta(days=400))
    with write(db) as conn:
        conn.executemany(
            "INSERT INTO contacts (id, email, company, attributes, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(i, f"c{i}@example.com", f"Account {i % 7}" if i % 5 else "",
              json.dumps({"role": "decision-maker"} if i % 3 == 0 else {}), created, created)
             for i in range(1, CONTACTS + 1)])
        conn.execute("INSERT INTO campaigns (id, name, subject, sender, brand, created_at)"
                     " VALUES (1, 'Q4', 's', 'nps@acme.test', 'Acme', ?)", [created])
    return db


def table(db) -> list[tuple]:
    return [tuple(row) for row in db.execute(
        f"SELECT {account_stats.COLUMNS} FROM account_stats ORDER BY contact_id, win")]


def from_scratch(db, policy: str) -> list[tuple]:
    """Return the totals as a first refresh computes them (and put the kept ones back)."""
    kept = table(db)
    with write(db) as conn:
        state = conn.execute("SELECT * FROM account_stats_state").fetchone()
        conn.execute("DELETE FROM account_stats_state")
    account_stats.refresh(db, policy, DAYS)
    full = table(db)
    with write(db) as conn:
        conn.execute("DELETE FROM account_stats")
        conn.executemany(f"INSERT INTO account_stats ({account_stats.COLUMNS}) VALUES"
                         f" ({', '.join('?' * len(kept[0]))})", kept)
        conn.execute("DELETE FROM account_stats_state")
        conn.execute(f"INSERT INTO account_stats_state VALUES ({', '.join('?' * len(state))})",
                     list(state))
    return full


def campaign(conn) -> int:
    """Make a campaign: a contact has one delivery per campaign."""
    return conn.execute("INSERT INTO campaigns (name, subject, sender, brand, created_at)"
                        " VALUES ('Q', 's', 'nps@acme.test', 'Acme', ?)",
                        [stamp(START)]).lastrowid


def step(db, clock, rng: random.Random) -> str:
    """Make one random change; return what it was (for the failure message)."""
    contact = rng.randint(1, CONTACTS)
    moment = stamp(clock.time - timedelta(days=rng.uniform(0, 3 * DAYS)))
    kind = rng.choice(["answer", "answer", "rescore", "confirm", "flag", "seen", "send",
                       "case", "company", "role", "renewal", "contact", "time"])
    with write(db) as conn:
        responses = [r[0] for r in conn.execute("SELECT id FROM responses")]
        if kind == "answer" or (not responses and kind in ("rescore", "confirm", "flag",
                                                           "seen", "case")):
            sent = campaign(conn)
            delivery = conn.execute(
                "INSERT INTO deliveries (campaign_id, contact_id, status, created_at, sent_at)"
                " VALUES (?, ?, 'sent', ?, ?)", [sent, contact, moment, moment]).lastrowid
            conn.execute(
                "INSERT INTO responses (delivery_id, campaign_id, contact_id, score,"
                " confirmed, automated, seen, created_at, responded_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [delivery, sent, contact, rng.randint(0, 10), rng.random() < 0.5,
                 rng.random() < 0.2, rng.random() < 0.8, moment, moment])
            return f"answer by {contact} at {moment}"
        response = rng.choice(responses) if responses else None
        if kind == "rescore":
            conn.execute("UPDATE responses SET score = ? WHERE id = ?",
                         [rng.randint(0, 10), response])
        elif kind in ("confirm", "flag", "seen"):
            column = {"confirm": "confirmed", "flag": "automated", "seen": "seen"}[kind]
            conn.execute(f"UPDATE responses SET {column} = 1 - {column} WHERE id = ?",
                         [response])
        elif kind == "send":
            conn.execute("INSERT INTO deliveries (campaign_id, contact_id, created_at)"
                         " VALUES (?, ?, ?)", [campaign(conn), contact, moment])
            conn.execute("UPDATE deliveries SET status = 'sent', sent_at = ? WHERE id ="
                         " (SELECT max(id) FROM deliveries)", [moment])
        elif kind == "case":  # on a detractor's answer, where it counts
            response = conn.execute("SELECT id FROM responses ORDER BY score > 6, random()"
                                    " LIMIT 1").fetchone()[0]
            conn.execute("INSERT INTO cases (response_id, status, updated_at) VALUES (?, ?, ?)"
                         " ON CONFLICT (response_id) DO UPDATE SET status = excluded.status",
                         [response, rng.choice(["new", "resolved", "resolved"]), moment])
        elif kind == "company":
            conn.execute("UPDATE contacts SET company = ? WHERE id = ?",
                         [rng.choice(["", "Account 1", "Account 8"]), contact])
        elif kind in ("role", "renewal"):
            attributes = {"role": rng.choice(["decision-maker", "user"])} if kind == "role" \
                else {"renewal_date": rng.choice(["2027-01-10", "2026-11-30", "2027-02-30",
                                                  "2027-03-01T10:00", "soon"])}
            conn.execute("UPDATE contacts SET attributes = json_patch(attributes, ?)"
                         " WHERE id = ?", [json.dumps(attributes), contact])
        elif kind == "contact":
            conn.execute("INSERT INTO contacts (email, company, created_at, updated_at)"
                         " VALUES (?, 'Account 3', ?, ?)", [f"new{rng.random()}@example.com",
                                                            moment, moment])
    if kind == "time":
        clock.time += timedelta(hours=rng.choice([-30, 5, 26, 24 * 20, 24 * 45]))
    return f"{kind} ({contact}, response {response})"


@pytest.mark.parametrize("policy", ["balanced", "strict"])
def test_kept_totals_equal_totals_from_scratch(world, clock, policy):
    db, rng = world, random.Random(25)
    account_stats.refresh(db, policy, DAYS)
    done = []
    for _ in range(300):
        done.append(step(db, clock, rng))
        account_stats.refresh(db, policy, DAYS)
        assert table(db) == from_scratch(db, policy), done[-5:]
    # The walk went through every kind of change, and the table was never empty.
    assert {d.split()[0] for d in done} >= {"answer", "rescore", "confirm", "flag", "seen",
                                            "send", "case", "company", "role", "renewal",
                                            "contact", "time"}
    assert table(db)


def test_a_refresh_computes_only_the_contacts_that_changed(world, clock):
    db = world
    with write(db) as conn:
        for contact in range(1, CONTACTS + 1):
            moment = stamp(START - timedelta(days=contact))
            conn.execute("INSERT INTO deliveries (id, campaign_id, contact_id, status,"
                         " created_at, sent_at) VALUES (?, 1, ?, 'sent', ?, ?)",
                         [contact, contact, moment, moment])
            conn.execute("INSERT INTO responses (delivery_id, campaign_id, contact_id, score,"
                         " confirmed, created_at, responded_at) VALUES (?, 1, ?, 9, 1, ?, ?)",
                         [contact, contact, moment, moment])
    members = CONTACTS - CONTACTS // 5  # every fifth contact has no company
    assert account_stats.refresh(db, "balanced", DAYS) == members  # the first: everyone
    assert account_stats.refresh(db, "balanced", DAYS) == 0
    with write(db) as conn:
        conn.execute("UPDATE responses SET score = 2 WHERE contact_id = 4")
    assert account_stats.refresh(db, "balanced", DAYS) == 1
    with write(db) as conn:
        conn.execute("INSERT INTO cases (response_id, status, updated_at) VALUES"
                     " ((SELECT id FROM responses WHERE contact_id = 4), 'resolved', ?)",
                     [stamp(START)])
    assert account_stats.refresh(db, "balanced", DAYS) == 1
    # A day later, the answers of contact 30 (30 days ago) moved to the window before, and
    # nobody's answer left the window before (none is 60 days old).
    clock.time += timedelta(days=1)
    assert account_stats.refresh(db, "balanced", DAYS) == 1
    # Another policy or window is computed afresh.
    assert account_stats.refresh(db, "strict", DAYS) == members
    assert account_stats.refresh(db, "strict", 60) == members


def test_the_report_reads_the_kept_totals(world, clock):
    db = world
    with write(db) as conn:
        moment = stamp(START - timedelta(days=1))
        conn.execute("INSERT INTO deliveries (id, campaign_id, contact_id, status, created_at,"
                     " sent_at) VALUES (1, 1, 1, 'sent', ?, ?)", [moment, moment])
        conn.execute("INSERT INTO responses (delivery_id, campaign_id, contact_id, score,"
                     " confirmed, created_at, responded_at) VALUES (1, 1, 1, 3, 1, ?, ?)",
                     [moment, moment])
    first = accounts.report(db, window_days=DAYS)
    assert [(g["key"], g["score"], g["open_cases"], g["contacts"]) for g in first["groups"]
            ] == [("Account 1", 3.0, 1, 4)]
    with write(db) as conn:
        conn.execute("UPDATE contacts SET company = 'Renamed' WHERE id = 1")
        conn.execute("INSERT INTO cases (response_id, status, updated_at) VALUES (1,"
                     " 'resolved', ?)", [moment])
    again = accounts.report(db, window_days=DAYS)
    assert [(g["key"], g["score"], g["open_cases"], g["contacts"]) for g in again["groups"]
            ] == [("Renamed", 3.0, 0, 1)]


def test_a_full_computation_holds_no_lock_and_misses_nothing_written_meanwhile(
        world, clock, monkeypatch):
    # The first refresh reads its snapshot without the write lock: another connection
    # answers, resolves a case and changes a role while it reads. The totals then match
    # the snapshot, and the next refresh takes up what was written meanwhile.
    db, other = world, db_.connect(world.path)
    with write(db) as conn:
        moment = stamp(START - timedelta(days=2))
        conn.execute("INSERT INTO deliveries (id, campaign_id, contact_id, status, created_at,"
                     " sent_at) VALUES (1, 1, 1, 'sent', ?, ?)", [moment, moment])
        conn.execute("INSERT INTO responses (id, delivery_id, campaign_id, contact_id, score,"
                     " confirmed, created_at, responded_at) VALUES (1, 1, 1, 1, 2, 1, ?, ?)",
                     [moment, moment])
    real = account_stats.compute

    def compute_while_another_writes(conn, *args, **kwargs):
        rows = real(conn, *args, **kwargs)
        with write(other) as theirs:  # would wait forever if the reader held the lock
            sent = campaign(theirs)
            theirs.execute("INSERT INTO deliveries (id, campaign_id, contact_id, status,"
                           " created_at, sent_at) VALUES (2, ?, 8, 'sent', ?, ?)",
                           [sent, moment, moment])
            theirs.execute("INSERT INTO responses (delivery_id, campaign_id, contact_id,"
                           " score, confirmed, created_at, responded_at)"
                           " VALUES (2, ?, 8, 10, 1, ?, ?)", [sent, moment, moment])
            theirs.execute("INSERT INTO cases (response_id, status, updated_at)"
                           " VALUES (1, 'resolved', ?)", [moment])
            theirs.execute("UPDATE contacts SET attributes = '{\"role\": \"decision-maker\"}'"
                           " WHERE id = 22")
        return rows

    monkeypatch.setattr(account_stats, "compute", compute_while_another_writes)
    account_stats.refresh(db, "balanced", DAYS)
    monkeypatch.setattr(account_stats, "compute", real)
    one = {row[0]: row for row in table(db) if row[1] == 0}
    assert (one[1][9], one[8][2], one[22][11]) == (1, 0, 0)  # the snapshot: before
    assert account_stats.refresh(db, "balanced", DAYS) == 3  # contacts 1, 8 and 22
    one = {row[0]: row for row in table(db) if row[1] == 0}
    assert (one[1][9], one[8][2], one[22][11]) == (0, 1, 1)
    assert table(db) == from_scratch(db, "balanced")
