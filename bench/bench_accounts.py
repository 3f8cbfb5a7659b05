"""Accounts and themes at size (SPEC 13): 1,000,000 responses in 20,000 accounts.

Builds a database of 100,000 contacts (five per account, the first a decision-maker, a
renewal date on every account), and 1,000,000 deliveries each with a counted response and
a comment (in en, es, fr, sv) spread over the last 180 days, so both the account window and
the window before it are full. Then times:

- the first computation of every contact's window totals (`account_stats.refresh` on a
  database that has none: once after the upgrade, or after the policy or the window
  changes), once; no target, it is the report's cost without its kept totals;
- `report --by account` (`reports.build(by="account")`, the `account` method), with the
  totals current, best of three, target < 1 s;
- the same report right after 1,000 new answers from 1,000 contacts (what a busy hour
  brings between two reports: the report brings their totals up to date first), best of
  three, target < 1 s;
- the logged-in /staff/accounts page through Flask's test client, best of three after a
  warm-up, target < 1 s;
- re-tagging every comment after a rule change (`themes.save`, then the worker's rounds
  until the tags are current), target < 30 s.

`BENCH_ACCOUNTS_RESPONSES=20000 python bench/bench_accounts.py` runs it small.
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_dashboard import best_of, staff_client  # noqa: E402
from survey_mailer import account_stats, reports, themes  # noqa: E402
from survey_mailer import config as config_  # noqa: E402
from survey_mailer import db as db_  # noqa: E402
from survey_mailer.clock import stamp, utcnow  # noqa: E402

RESPONSES = int(os.environ.get("BENCH_ACCOUNTS_RESPONSES", 1_000_000))
ACCOUNTS = max(1, RESPONSES // 50)  # 20,000 at full size
CONTACTS = ACCOUNTS * 5
CAMPAIGNS = RESPONSES // CONTACTS  # each contact once per campaign: 10
REPORT_TARGET = 1.0  # seconds
RETAG_TARGET = 30.0  # seconds
COMMENTS = [
    "Support took two weeks to answer my ticket.",
    "El soporte tardó dos semanas en contestar.",
    "Les rapports sont trop lents à charger.",
    "Faktureringen är krånglig och dyr.",
    "Good product; exports to Excel would make it a 10.",
    "Buen producto, pero faltan informes por correo.",
    "Bien, mais l'application mobile manque.",
    "Saves our team hours every week.",
    "Enkel att använda och snabb support.",
    "Indispensable pour notre équipe.",
]
RULES = {
    "Support": "support, soporte, ticket",
    "Speed": "lent*, slow*, långsam*, tardó, snabb",
    "Billing": "faktur*, invoice*, billing, dyr",
    "Reports and exports": "rapport*, report*, informe*, export*",
    "Mobile app": "mobile, móvil, app",
}


def build(path: Path) -> None:
    """Fill a fresh database with accounts, contacts, campaigns, deliveries and responses."""
    rng = random.Random(13)
    database = db_.connect(path)
    db_.migrate(database)
    conn = database.conn
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    now = utcnow()
    created = stamp(now - timedelta(days=400))
    languages = ["en", "es", "fr", "sv"]
    with db_.write(database):
        conn.executemany(
            "INSERT INTO contacts (id, email, name, company, language, attributes, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ((i, f"c{i}@example.com", f"Contact {i}", f"Account {i % ACCOUNTS}",
              languages[i % 4],
              json.dumps({"role": "decision-maker" if i <= ACCOUNTS else "user",
                          "renewal_date": (now + timedelta(days=i % ACCOUNTS % 365))
                          .date().isoformat()}),
              created, created)
             for i in range(1, CONTACTS + 1)))
        conn.executemany(
            "INSERT INTO campaigns (id, name, subject, sender, brand, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            ((c, f"Campaign {c}", "s", "nps@acme.test", "Acme", created)
             for c in range(1, CAMPAIGNS + 1)))
        per_campaign = RESPONSES // CAMPAIGNS
        moments = [stamp(now - timedelta(seconds=rng.uniform(3600, 180 * 86400)))
                   for _ in range(RESPONSES)]
        conn.executemany(
            "INSERT INTO deliveries (id, campaign_id, contact_id, status, created_at, sent_at)"
            " VALUES (?, ?, ?, 'sent', ?, ?)",
            ((d, 1 + (d - 1) // per_campaign, 1 + (d - 1) % CONTACTS, moments[d - 1],
              moments[d - 1]) for d in range(1, RESPONSES + 1)))
        weights = [3, 2, 2, 3, 3, 5, 7, 12, 18, 22, 23]
        scores = rng.choices(range(11), weights, k=RESPONSES)
        conn.executemany(
            "INSERT INTO responses (id, delivery_id, campaign_id, contact_id, score, comment,"
            " confirmed, automated, seen, created_at, responded_at)"
            " VALUES (?, ?, ?, ?, ?, ?, 1, 0, 1, ?, ?)",
            ((d, d, 1 + (d - 1) // per_campaign, 1 + (d - 1) % CONTACTS, scores[d - 1],
              COMMENTS[rng.randrange(len(COMMENTS))], moments[d - 1], moments[d - 1])
             for d in range(1, RESPONSES + 1)))
    conn.execute("ANALYZE")
    database.close()


def answer_1000(database, batch: int) -> None:
    """Record 1,000 counted answers now, from 1,000 contacts, to a campaign of their own."""
    moment, campaign = stamp(utcnow()), CAMPAIGNS + 1 + batch
    rows = [(RESPONSES + batch * 1000 + k, 1 + (batch * 1000 + k) * 7919 % CONTACTS)
            for k in range(1, 1001)]
    with db_.write(database) as conn:
        conn.execute("INSERT INTO campaigns (id, name, subject, sender, brand, created_at)"
                     " VALUES (?, 'Pulse', 's', 'nps@acme.test', 'Acme', ?)",
                     [campaign, moment])
        conn.executemany("INSERT INTO deliveries (id, campaign_id, contact_id, status,"
                         " created_at, sent_at) VALUES (?, ?, ?, 'sent', ?, ?)",
                         [(i, campaign, c, moment, moment) for i, c in rows])
        conn.executemany("INSERT INTO responses (id, delivery_id, campaign_id, contact_id,"
                         " score, confirmed, created_at, responded_at)"
                         " VALUES (?, ?, ?, ?, 3, 1, ?, ?)",
                         [(i, i, campaign, c, moment, moment) for i, c in rows])


def run() -> list[tuple]:
    with tempfile.TemporaryDirectory(prefix="bench-accounts-") as tmp:
        path = Path(tmp) / "survey.db"
        start = time.perf_counter()
        build(path)
        built = time.perf_counter() - start
        os.environ.update(SURVEY_DATABASE=str(path), SURVEY_ENV="development",
                          SURVEY_SECRET_KEY="bench-secret-key")
        config = config_.load()
        database = db_.connect(path)
        start = time.perf_counter()
        computed = account_stats.refresh(database, config["SURVEY_SCORE_POLICY"],
                                         config["SURVEY_ACCOUNT_WINDOW_DAYS"])
        first_time = time.perf_counter() - start
        assert computed == CONTACTS, computed
        groups = []

        def report():
            groups[:] = reports.build(database, config, by="account")["groups"]

        report_time = best_of(report)
        assert len(groups) == ACCOUNTS, len(groups)

        def answered_then_report(batch: int) -> float:
            answer_1000(database, batch)
            start = time.perf_counter()
            report()
            return time.perf_counter() - start

        after_answers = min(answered_then_report(batch) for batch in range(3))
        client = staff_client(database)

        def page():
            response = client.get("/staff/accounts")
            assert response.status_code == 200, response.status_code

        page_time = best_of(page)
        for name, words in RULES.items():
            themes.save(database, name, words)
        start = time.perf_counter()
        tagged = 0
        while themes.stale(database):  # the worker's rounds
            tagged += themes.tag_new(database)
        retag_time = time.perf_counter() - start
        assert tagged > RESPONSES // 2, tagged
        database.close()
    note = (f"{RESPONSES:,} responses, {ACCOUNTS:,} accounts (built in {built:.0f} s); "
            "seconds, lower is better")
    return [
        ("account totals, first computation", first_time, None, note),
        ("report --by account", report_time, REPORT_TARGET, note),
        ("report --by account after 1,000 answers", after_answers, REPORT_TARGET, note),
        ("/staff/accounts page", page_time, REPORT_TARGET, note),
        (f"re-tag {RESPONSES:,} comments ({tagged:,} tags)", retag_time, RETAG_TARGET, note),
    ]


if __name__ == "__main__":
    for row in run():
        print(f"{row[0]:44} {row[1]:8.3f} s  (target {row[2]} s)  {row[3]}")
