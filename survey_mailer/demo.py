"""Build a demo database (`python -m survey_mailer.demo`, run by `make demo`).

On the embedded defaults (instance/survey.db, instance/outbox, SURVEY_ENV=development):
about forty contacts in four languages, one survey campaign per quarter over the last four
quarters, each sent to the outbox, and responses spread over those quarters so the trend,
the breakdowns and the staff pages have something to show. Accounts (companies) renew on
dates spread over the coming year, one at risk (Initech: a new detractor, renewing within a
month); the older detractors' cases are overdue; themes in four languages tag the comments
(SPEC 13). At least one contact of the
current campaign is left without an answer: its email is the one to click. Security scanners
clicked three other emails of the current campaign (a burst of scores, the hidden honeypot
link, a listed user agent): filtered, they show under Responses, "Only filtered".

Safe to run again: it reuses what it built before (found by campaign name), and it only
ever touches its own contacts (addresses at demo.example) and campaigns, never other data.
"""

from __future__ import annotations

import json
import os
import random
import secrets
from datetime import date, datetime, timedelta
from pathlib import Path

from . import campaigns, clock, config, contacts, db, humans, responses, themes, users
from .backends.outbox import OutboxBackend
from .clock import stamp
from .scores import DETRACTOR_SQL, segment
from .sender import Sender

DOMAIN = "demo.example"
SENDER = "Acme Analytics <nps@acme-analytics.example>"
BRAND = "Acme Analytics"
POSTAL_ADDRESS = "Acme Analytics, 221B Baker Street, London NW1 6XE"
SEGMENT = {"source": "demo"}
STAFF_EMAIL = "demo@example.com"
BROWSER = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 "
           "(KHTML, like Gecko) Version/17.5 Safari/605.1.15")

PEOPLE = {
    "en": ["Olivia Brown", "James Wilson", "Amelia Taylor", "Harry Davies", "Grace Evans",
           "Noah Thomas", "Isla Roberts", "Jack Walker", "Emily Wright", "Oscar Hughes"],
    "es": ["Lucía García", "Hugo Fernández", "Martina López", "Pablo Martínez",
           "Sofía Sánchez", "Mateo Romero", "Valeria Torres", "Daniel Ruiz", "Carmen Díaz",
           "Álvaro Moreno"],
    "fr": ["Chloé Martin", "Lucas Bernard", "Léa Dubois", "Hugo Thomas", "Manon Robert",
           "Louis Richard", "Camille Petit", "Jules Durand", "Inès Leroy", "Gabriel Moreau"],
    "sv": ["Sven Ek", "Astrid Lindqvist", "Erik Johansson", "Maja Karlsson", "Oskar Nilsson",
           "Elsa Andersson", "Lars Berg", "Ebba Lund", "Nils Holm", "Alva Sjöberg"],
}
# Scanners that opened the links of an email: (user agent, scores clicked, honeypot hit).
SCANNER_CLICKS = [
    # A scanner posing as a browser clicks every button within a second: a burst.
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/124.0.0.0 Safari/537.36", [0, 5, 10], False),
    # One click, then the hidden link no person can see.
    (BROWSER, [9], True),
    # A link-protection service that names itself (in survey_mailer/data's list).
    ("Mozilla/5.0 (compatible; Barracuda Sentinel link protection)", [10], False),
]
COMPANIES = ["Northwind Traders", "Globex", "Initech", "Umbrella Health", "Hooli",
             "Stark Logistics"]
PLANS = ["free", "pro", "enterprise"]
# Days from today to each account's renewal: Initech renews within a month and gets a new
# detractor, so it is the account at risk.
RENEWAL_DAYS = {"Northwind Traders": 200, "Globex": 130, "Initech": 25,
                "Umbrella Health": 310, "Hooli": 160, "Stark Logistics": 240}
AT_RISK = "Initech"
THEMES = {
    "Support": "support, soporte, ticket",
    "Speed": "lent*, slow*, långsam*, tardó",
    "Billing": "faktur*, invoice*, billing, dyr, caro",
    "Reports and exports": "rapport*, report*, informe*, export*",
    "Mobile app": "mobile, móvil, application mobile, app",
}
# Scores per quarter, oldest first: the NPS climbs, as a demo's story should.
SCORE_WEIGHTS = [
    [1, 1, 2, 2, 3, 5, 8, 16, 18, 24, 20],
    [1, 1, 1, 2, 2, 4, 7, 15, 17, 27, 23],
    [0, 1, 1, 1, 2, 3, 6, 14, 16, 30, 26],
    [0, 0, 1, 1, 2, 3, 5, 13, 15, 32, 28],
]
COMMENTS = {
    "detractor": {
        "en": "Support took two weeks to answer my ticket.",
        "es": "El soporte tardó dos semanas en contestar.",
        "fr": "Les rapports sont trop lents à charger.",
        "sv": "Faktureringen är krånglig och dyr.",
    },
    "passive": {
        "en": "Good product; exports to Excel would make it a 10.",
        "es": "Buen producto, pero faltan informes por correo.",
        "fr": "Bien, mais l'application mobile manque.",
        "sv": "Bra, men jag saknar fler integrationer.",
    },
    "promoter": {
        "en": "Saves our team hours every week.",
        "es": "Nos ahorra horas cada semana.",
        "fr": "Indispensable pour notre équipe.",
        "sv": "Enkel att använda och snabb support.",
    },
}


def email_of(name: str) -> str:
    """Return the demo address of a sample person (ASCII, at demo.example)."""
    plain = name.lower().translate(str.maketrans("áéíóúàèçëïüöåäñ ", "aeiouaeceiuoaan."))
    return f"{plain}@{DOMAIN}"


def sample_contacts() -> list[dict]:
    """Return the forty sample contacts, the same on every run."""
    rng = random.Random(2024)
    rows = []
    for language, names in PEOPLE.items():
        for name in names:
            rows.append({
                "email": email_of(name), "name": name, "company": rng.choice(COMPANIES),
                "language": language,
                "attributes": {"plan": rng.choice(PLANS), **SEGMENT},
            })
    return rows


def quarter_dates(today: date, count: int = 4) -> list[tuple[str, datetime]]:
    """Return (label, a mid-quarter send time) for the last `count` quarters, oldest first.

    The current quarter's campaign is sent now; earlier ones in the middle of their quarter.
    """
    now = clock.utcnow().replace(tzinfo=None)
    year, quarter = today.year, (today.month - 1) // 3
    result = []
    for back in range(count - 1, -1, -1):
        y, q = divmod(year * 4 + quarter - back, 4)
        label = f"{y}-Q{q + 1}"
        result.append((label, now if back == 0 else datetime(y, q * 3 + 2, 15, 9, 30)))
    return result


def campaign_name(label: str) -> str:
    return f"Demo: relationship NPS {label}"


def build(settings: config.Config, out=print) -> dict:
    """Build (or reuse) the demo data; return what `main` prints."""
    database = db.open_configured(settings)
    backend = OutboxBackend(settings["SURVEY_OUTBOX_DIR"])
    people = sample_contacts()
    added = contacts.import_rows(database, [
        {**row, "attributes": json.dumps(row["attributes"], ensure_ascii=False)} for row in people]
    ).added
    if added:
        out(f"Added {added} demo contacts ({DOMAIN}) in en, es, fr and sv")
    # Resurvey spacing does not apply inside the demo: every quarter reaches everyone.
    everyone = config.Config({**settings, "SURVEY_RESURVEY_DAYS": 0})
    rng = random.Random(7)
    quarters = quarter_dates(clock.utcnow().date())
    current_id = None
    for index, (label, sent_at) in enumerate(quarters):
        name = campaign_name(label)
        current = index == len(quarters) - 1
        campaign_id = _find_or_create(database, name, label)
        summary = campaigns.send(database, Sender(database, backend), everyone, campaign_id,
                                 retry_unknown=True)
        if summary.sent:
            out(f"Sent {name!r} to {summary.sent} contacts (outbox)")
        if not current:
            _backdate_sends(database, campaign_id, sent_at)
        _answer(database, campaign_id, SCORE_WEIGHTS[index], sent_at, rng, current)
        if current:
            current_id = campaign_id
            _scanner_clicks(database, settings, campaign_id)
            _closing_the_loop(database, campaign_id)
    return {"database": database, "campaign_id": current_id,
            "eml": _unanswered_eml(database, current_id, backend)}


def _find_or_create(database, name: str, label: str) -> int:
    row = database.execute("SELECT id FROM campaigns WHERE name = ? ORDER BY id LIMIT 1",
                           [name]).fetchone()
    if row:
        return row[0]
    return campaigns.create(database, name=name, subject=f"{BRAND}: one question ({label})",
                            sender=SENDER, brand=BRAND, segment=SEGMENT,
                            postal_address=POSTAL_ADDRESS)


def _backdate_sends(database, campaign_id: int, sent_at: datetime) -> None:
    with db.write(database) as conn:
        conn.execute("UPDATE campaigns SET created_at = ? WHERE id = ?",
                     [stamp(sent_at - timedelta(hours=2)), campaign_id])
        conn.execute("UPDATE deliveries SET created_at = ?, sent_at = ? "
                     "WHERE campaign_id = ? AND status = 'sent' AND sent_at > ?",
                     [stamp(sent_at), stamp(sent_at), campaign_id, stamp(sent_at)])


def _answer(database, campaign_id: int, weights: list[int], sent_at: datetime,
            rng: random.Random, current: bool) -> None:
    """Answer about two thirds of a campaign's deliveries, once; backdate past quarters."""
    rows = database.execute(
        "SELECT d.id FROM deliveries d JOIN contacts c ON c.id = d.contact_id "
        "WHERE d.campaign_id = ? AND d.status = 'sent' AND c.email LIKE ? ORDER BY d.id",
        [campaign_id, f"%@{DOMAIN}"]).fetchall()
    already = database.execute("SELECT count(*) FROM responses WHERE campaign_id = ?",
                               [campaign_id]).fetchone()[0]
    if already:
        return  # answered on an earlier run (or by a person since): leave it as it is
    ids = [r[0] for r in rows]
    share = 0.55 if current else 0.7  # the current campaign is still collecting answers
    answering = sorted(rng.sample(ids, int(len(ids) * share)))
    for delivery_id in answering:
        found = responses.delivery(database, delivery_id)
        score = rng.choices(range(11), weights=weights)[0]
        humans.record_click(database, found, score, method="GET", user_agent=BROWSER,
                            seen=True)
        group = segment(score)
        if rng.random() < 0.6:  # most people also send the landing page's form
            promoter = group == "promoter"
            consent = promoter and rng.random() < 0.6
            responses.save_answer(
                database, found, score=score, comment=COMMENTS[group][found["language"]],
                contact_ok=group == "detractor" and rng.random() < 0.7,
                display_name=found["name"].split()[0] if consent else "",
                testimonial_consent=consent)
        if not current:
            moment = sent_at + timedelta(hours=rng.uniform(1, 24 * 10))
            _backdate_response(database, delivery_id, moment)


def _scanner_clicks(database, settings: config.Config, campaign_id: int) -> None:
    """Let scanners click three unanswered emails of the current campaign, once."""
    if database.execute("SELECT count(*) FROM clicks k JOIN deliveries d ON d.id = k.delivery_id"
                        " WHERE d.campaign_id = ? AND k.automated = 1",
                        [campaign_id]).fetchone()[0]:
        return  # clicked on an earlier run
    # The last unanswered ones: the first is the email `main` offers to click.
    unanswered = [row[0] for row in database.execute(
        "SELECT d.id FROM deliveries d LEFT JOIN responses r ON r.delivery_id = d.id "
        "WHERE d.campaign_id = ? AND d.status = 'sent' AND r.id IS NULL "
        "ORDER BY d.id DESC LIMIT ?", [campaign_id, len(SCANNER_CLICKS)])]
    scanners = humans.scanners_for(settings)
    for delivery_id, (user_agent, scores, honeypot) in zip(unanswered, SCANNER_CLICKS,
                                                           strict=False):
        for score in scores:
            humans.log_click(database, delivery_id, score, method="GET", user_agent=user_agent,
                             reason=scanners.reason(user_agent, None))
        if honeypot:
            humans.log_click(database, delivery_id, None, method="GET", kind="honeypot",
                             user_agent=user_agent)
    humans.fold(database)


def _closing_the_loop(database, campaign_id: int) -> None:
    """Renewal dates and a decision-maker per account, one account at risk, themes."""
    today = clock.utcnow().date()
    with db.write(database) as conn:
        for company, days in RENEWAL_DAYS.items():
            conn.execute("UPDATE contacts SET attributes = json_set(attributes, "
                         "'$.renewal_date', ?) WHERE company = ? AND email LIKE ?",
                         [(today + timedelta(days=days)).isoformat(), company, f"%@{DOMAIN}"])
            conn.execute("UPDATE contacts SET attributes = json_set(attributes, '$.role', "
                         "'decision-maker') WHERE id = (SELECT min(id) FROM contacts "
                         "WHERE company = ? AND email LIKE ?)", [company, f"%@{DOMAIN}"])
    # The account at risk: one of its people, not yet answered nor clicked, is a detractor
    # (once: a later run finds the detractor there).
    row = None if database.execute(
        "SELECT 1 FROM responses r JOIN contacts c ON c.id = r.contact_id"
        f" WHERE r.campaign_id = ? AND c.company = ? AND {DETRACTOR_SQL}",
        [campaign_id, AT_RISK]).fetchone() else database.execute(
        "SELECT d.id FROM deliveries d JOIN contacts c ON c.id = d.contact_id"
        " LEFT JOIN responses r ON r.delivery_id = d.id"
        " WHERE d.campaign_id = ? AND c.company = ? AND d.status = 'sent' AND r.id IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM clicks k WHERE k.delivery_id = d.id)"
        " ORDER BY d.id LIMIT 1", [campaign_id, AT_RISK]).fetchone()
    if row:
        found = responses.delivery(database, row[0])
        humans.record_click(database, found, 2, method="GET", user_agent=BROWSER, seen=True)
        responses.save_answer(database, found, score=2, contact_ok=True,
                              comment=COMMENTS["detractor"][found["language"]])
    known = {t["name"] for t in themes.list_themes(database)}
    for name, words in THEMES.items():
        if name not in known:
            themes.save(database, name, words)
    themes.tag_new(database)


def _backdate_response(database, delivery_id: int, moment: datetime) -> None:
    columns = set(database["responses"].columns_dict)
    when = stamp(moment)
    updates = [c for c in ("created_at", "responded_at", "last_click_at", "confirmed_at")
               if c in columns]
    with db.write(database) as conn:
        conn.execute(
            "UPDATE responses SET "
            + ", ".join(f"{c} = CASE WHEN {c} IS NULL THEN NULL ELSE ? END" for c in updates)
            + " WHERE delivery_id = ?", [*([when] * len(updates)), delivery_id])
        conn.execute("UPDATE clicks SET clicked_at = ? WHERE delivery_id = ?",
                     [when, delivery_id])


def _unanswered_eml(database, campaign_id: int, backend: OutboxBackend) -> Path | None:
    """Return the outbox file of a current-campaign delivery nobody has answered yet."""
    for (delivery_id,) in database.execute(
            "SELECT d.id FROM deliveries d LEFT JOIN responses r ON r.delivery_id = d.id "
            "WHERE d.campaign_id = ? AND d.status = 'sent' AND r.id IS NULL ORDER BY d.id",
            [campaign_id]):
        path = backend.path(f"c{campaign_id}-d{delivery_id}")
        if path.exists():
            return path.resolve()
    return None


def staff_login(database, out=print) -> None:
    """Create (or reset) the demo staff login and print it."""
    password = secrets.token_urlsafe(12)
    users.add_user(database, STAFF_EMAIL, password)
    out(f"Staff login: {STAFF_EMAIL}  password: {password}  (a new one on every run)")


def main() -> None:
    """Build the demo data on the embedded defaults and say how to use it."""
    os.environ.setdefault("SURVEY_ENV", "development")
    settings = config.load()
    result = build(settings)
    database = result["database"]
    base = settings["SURVEY_BASE_URL"]
    print(f"Demo database: {settings['SURVEY_DATABASE']}")
    staff_login(database)
    if result["eml"] is not None:
        print(f"Open this email (its buttons work against the server): {result['eml']}")
    else:
        print("Every demo contact has answered the current campaign already; "
              "run `make clean demo` for a fresh demo")
    print(f"Staff workspace: {base}/staff/")
    print("Report by quarter: .venv/bin/survey-mailer report --by quarter")
    print(f"Serving {base} (Ctrl-C to stop)")
    database.close()


if __name__ == "__main__":
    main()
