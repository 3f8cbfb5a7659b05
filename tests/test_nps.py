"""NPS arithmetic against hand-computed cases, and the report's SQL breakdowns."""

import csv
import io
import json
import re

import pytest

from survey_mailer import db as db_
from survey_mailer import nps


@pytest.mark.parametrize(("p", "d", "n", "expected"), [
    # 5 promoters, 3 passives, 2 detractors: p=.5, d=.2, NPS 30;
    # variance .5+.2-.3^2 = .61; 1.96*100*sqrt(.61/10) = 48.4
    (5, 2, 10, (30.0, 48.4)),
    # all promoters: NPS 100, variance 1 - 1 = 0
    (4, 0, 4, (100.0, 0.0)),
    # all detractors: NPS -100, no uncertainty
    (0, 3, 3, (-100.0, 0.0)),
    # 1 promoter, 1 detractor: NPS 0, variance 1 - 0 = 1; 1.96*100*sqrt(1/2) = 138.6
    (1, 1, 2, (0.0, 138.6)),
    # 50 promoters, 30 passives, 20 detractors of 100: NPS 30, 1.96*100*sqrt(.61/100) = 15.3
    (50, 20, 100, (30.0, 15.3)),
    # 2 of 3 promoters: NPS 66.7, variance .6667 - .4444 = .2222; 1.96*100*sqrt(.2222/3)=53.3
    (2, 0, 3, (66.7, 53.3)),
    (0, 0, 0, (None, None)),
])
def test_score_and_margin(p, d, n, expected):
    assert nps.score(p, d, n) == expected


@pytest.mark.parametrize(("score", "segment"), [(0, "detractor"), (6, "detractor"),
                                                (7, "passive"), (8, "passive"),
                                                (9, "promoter"), (10, "promoter")])
def test_segments(score, segment):
    assert nps.segment(score) == segment


def answer(db, email, score, *, when="2026-05-01 10:00:00", automated=0, confirmed=0,
           seen=1):
    """A response as the click log folds it; `seen`: its page was shown in a browser tab."""
    delivery = db.execute(
        "SELECT d.id, d.campaign_id, d.contact_id FROM deliveries d JOIN contacts c "
        "ON c.id = d.contact_id WHERE c.email = ?", [email]).fetchone()
    with db_.write(db) as conn:
        conn.execute(
            "INSERT INTO responses (delivery_id, campaign_id, contact_id, score, automated,"
            " confirmed, seen, created_at, responded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [delivery[0], delivery[1], delivery[2], score, automated, confirmed, seen, when,
             when])


@pytest.fixture
def answered(db, sent_campaign):
    # ana (es, Acme, pro) 10; bob (en, Acme, free) 3; chloe (fr, Globex, pro) 8 in Q3;
    # sven (sv, Globex, free): a scanner's click, flagged automated.
    answer(db, "ana@example.com", 10, confirmed=1)
    answer(db, "bob@example.com", 3)
    answer(db, "chloe@example.com", 8, when="2026-08-15 09:00:00")
    answer(db, "sven@example.com", 0, automated=1)
    return sent_campaign


def report(runner, *args):
    result = runner("report", "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_report_overall(runner, answered):
    data = report(runner)
    # 3 counted: 1 promoter, 1 passive, 1 detractor -> NPS 0; variance 2/3; moe 92.4
    assert {k: data[k] for k in nps.FIELDS} == {
        "nps": 0.0, "margin_of_error": 92.4, "responses": 3, "promoters": 1,
        "passives": 1, "detractors": 1, "sent": 4, "response_rate": 0.75,
        "filtered_automated": 1,
    }


def test_strict_counts_only_confirmed(runner, answered, monkeypatch):
    monkeypatch.setenv("SURVEY_SCORE_POLICY", "strict")
    data = report(runner, "--campaign", str(answered))
    assert (data["responses"], data["promoters"], data["nps"]) == (1, 1, 100.0)


def test_report_by_company(runner, answered):
    groups = {g["key"]: g for g in report(runner, "--by", "company")["groups"]}
    assert (groups["Acme"]["nps"], groups["Acme"]["responses"], groups["Acme"]["sent"]) == \
        (0.0, 2, 2)
    assert (groups["Globex"]["nps"], groups["Globex"]["passives"],
            groups["Globex"]["filtered_automated"]) == (0.0, 1, 1)


def test_report_by_quarter_language_and_attribute(runner, answered):
    quarters = {g["key"]: g["responses"] for g in report(runner, "--by", "quarter")["groups"]
                if g["responses"]}
    assert quarters == {"2026-Q2": 2, "2026-Q3": 1}
    languages = {g["key"]: g["nps"] for g in report(runner, "--by", "language")["groups"]}
    assert languages == {"en": -100.0, "es": 100.0, "fr": 0.0, "sv": None}
    plans = {g["key"]: g["nps"] for g in report(runner, "--by", "attribute:plan")["groups"]}
    assert plans == {"free": -100.0, "pro": 50.0}


def test_report_csv_and_table(runner, answered):
    rows = list(csv.DictReader(io.StringIO(
        runner("report", "--format", "csv", "--by", "company").output)))
    assert [r["key"] for r in rows] == ["all", "Acme", "Globex"]
    assert rows[0]["nps"] == "0.0" and rows[0]["response_rate"] == "0.75"
    table = runner("report").output.splitlines()
    assert table[0].split() == ["NPS", "±", "responses", "promoters", "passives",
                                "detractors", "sent", "rate", "filtered"]
    assert table[1].split() == ["all", "0.0", "92.4", "3", "1", "1", "1", "4", "75.0%", "1"]


def test_report_bad_grouping(runner, db):
    result = runner("report", "--by", "colour")
    assert result.exit_code == 1
    assert result.output == ('Error: cannot group by "colour": use company, language, '
                             'quarter, campaign or attribute:NAME\n')


def test_export_responses(runner, answered, tmp_path):
    out = tmp_path / "r.csv"
    assert runner("export", "responses", "--output", str(out)).exit_code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert list(rows[0]) == ["email", "name", "company", "language", "campaign", "score",
                             "segment", "comment", "testimonial_consent", "responded_at",
                             "counted", "automated", "seen", "confirmed", "campaign_id"]
    assert [(r["email"], r["score"], r["segment"], r["counted"], r["automated"], r["seen"],
             r["confirmed"]) for r in rows] == [
        ("ana@example.com", "10", "promoter", "1", "0", "1", "1"),
        ("bob@example.com", "3", "detractor", "1", "0", "1", "0"),
        ("chloe@example.com", "8", "passive", "1", "0", "1", "0"),
        ("sven@example.com", "0", "detractor", "0", "1", "1", "0")]
    assert {r["campaign"] for r in rows} == {"Q4"}  # named, not only numbered
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rows[0]["responded_at"])


def test_campaign_list_counts_only_counted_responses(runner, answered):
    campaigns = json.loads(runner("campaign", "list", "--format", "json").output)
    assert [(c["sent"], c["responses"]) for c in campaigns] == [(4, 3)]  # sven's is filtered
