"""The staff dashboard and the NPS report over 1,000,000 responses (SPEC 9: under 1 s).

Builds a database of 100,000 contacts (40 companies, four languages, a `plan` attribute),
ten campaigns over ten quarters, and 1,000,000 deliveries each with a response, inserted with
executemany in one transaction. Then times, best of three after a warm-up:
`nps.report` with a breakdown (company, and a contact attribute), and the logged-in dashboard
page through Flask's test client (every query and the SVG charts).
"""

from __future__ import annotations

import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from survey_mailer import db as db_  # noqa: E402
from survey_mailer import nps, users  # noqa: E402

RESPONSES = 1_000_000
CONTACTS = 100_000
CAMPAIGNS = 10
TARGET = 1.0  # seconds (SPEC 9)


def build(path: Path, responses: int = RESPONSES) -> None:
    """Fill a fresh database with contacts, campaigns, deliveries and responses."""
    rng = random.Random(5)
    database = db_.connect(path)
    db_.migrate(database)
    conn = database.conn
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    languages = ["en", "es", "fr", "sv"]
    stamp = "2024-01-01 00:00:00.000000"
    with db_.write(database):
        conn.executemany(
            "INSERT INTO contacts (id, email, name, company, language, attributes, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ((i, f"c{i}@example.com", f"Contact {i}", f"Company {i % 40}",
              languages[i % 4], '{"plan": "%s"}' % ("pro" if i % 3 else "free"), stamp, stamp)
             for i in range(1, CONTACTS + 1)))
        conn.executemany(
            "INSERT INTO campaigns (id, name, subject, sender, brand, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            ((c, f"Campaign {c}", "s", "nps@acme.test", "Acme", stamp)
             for c in range(1, CAMPAIGNS + 1)))
        per_campaign = responses // CAMPAIGNS

        def quarter_stamp(campaign: int) -> str:
            year, quarter = 2024 + (campaign - 1) // 4, (campaign - 1) % 4
            return f"{year}-{quarter * 3 + 1:02d}-15 10:00:00.000000"

        conn.executemany(
            "INSERT INTO deliveries (id, campaign_id, contact_id, status, created_at, sent_at)"
            " VALUES (?, ?, ?, 'sent', ?, ?)",
            ((d, 1 + (d - 1) // per_campaign, 1 + (d - 1) % CONTACTS,
              quarter_stamp(1 + (d - 1) // per_campaign),
              quarter_stamp(1 + (d - 1) // per_campaign))
             for d in range(1, responses + 1)))
        weights = [3, 2, 2, 3, 3, 5, 7, 12, 18, 22, 23]
        scores = rng.choices(range(11), weights, k=responses)
        flags = rng.choices([0, 1], [97, 3], k=responses)
        conn.executemany(
            "INSERT INTO responses (id, delivery_id, campaign_id, contact_id, score, comment,"
            " confirmed, automated, seen, created_at, responded_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
            ((d, d, 1 + (d - 1) // per_campaign, 1 + (d - 1) % CONTACTS, scores[d - 1],
              "" if d % 5 else "Some words about the product", int(d % 2 == 0), flags[d - 1],
              quarter_stamp(1 + (d - 1) // per_campaign),
              quarter_stamp(1 + (d - 1) // per_campaign))
             for d in range(1, responses + 1)))
    conn.execute("ANALYZE")
    database.close()


def best_of(fn, rounds: int = 3) -> float:
    fn()  # warm-up: page cache, statement cache
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def staff_client(database):
    """Return a Flask test client of the app on SURVEY_DATABASE, logged in as staff."""
    users.add_user(database, "bench@acme.test", "bench password")
    from landing import create_app

    app = create_app({"TESTING": True, "RATELIMIT_ENABLED": False, "WTF_CSRF_ENABLED": False})
    client = app.test_client()
    client.post("/staff/login", data={"email": "bench@acme.test",
                                      "password": "bench password"})
    return client


def run() -> list[tuple]:
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        path = Path(tmp) / "survey.db"
        start = time.perf_counter()
        build(path)
        built = time.perf_counter() - start
        database = db_.connect(path)
        report_company = best_of(lambda: nps.report(database, by="company"))
        report_attribute = best_of(lambda: nps.report(database, by="attribute:plan"))
        os.environ.update(SURVEY_DATABASE=str(path), SURVEY_ENV="development",
                          SURVEY_SECRET_KEY="bench-secret-key")
        client = staff_client(database)

        def dashboard():
            response = client.get("/staff/")
            assert response.status_code == 200, response.status_code
            assert re.search(r"of 1,000,000 emails sent", response.text)

        page = best_of(dashboard)
        page_attribute = best_of(lambda: client.get("/staff/?by=attribute:plan"))
        database.close()
    note = f"{RESPONSES:,} responses (built in {built:.0f} s); seconds, lower is better"
    return [
        ("dashboard /staff/ (by company)", page, TARGET, note),
        ("dashboard /staff/?by=attribute:plan", page_attribute, TARGET, note),
        ("nps.report by company", report_company, TARGET, note),
        ("nps.report by attribute:plan", report_attribute, TARGET, note),
    ]


if __name__ == "__main__":
    for row in run():
        print(f"{row[0]:40} {row[1]:8.3f} s  (target {row[2]} s)  {row[3]}")
