"""Accounts (SPEC 13): the three methods on hand-computed cases, coverage, at-risk, pages.

Four accounts, answered on a frozen clock (2026-12-02), renewal window 90 days:

- Solo Inc: one contact, 3; renews 2027-01-10 -> detractor, at risk.
- Many Co: 10, 9, 8 and a fourth contact surveyed who never answered; renews 2027-01-05
  -> mean 9.0, promoter, coverage 3/4, not at risk.
- Boss Ltd: the decision-maker 4, the others 9 and 10; renews 2027-06-01 (beyond the
  window) -> account 23/3 = 7.7 passive, decision-maker 4.0 detractor; not at risk.
- Quiet GmbH: two contacts surveyed, no answer -> no score, coverage 0.
"""
# ruff: noqa: F811  (fixtures imported from staff_support are parameters here)

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from staff_support import answer, deliveries, staff_client, staff_user  # noqa: F401

from survey_mailer import clock as clock_
from survey_mailer import config as config_
from survey_mailer import reports

CONTACTS = """email,name,company,role,renewal_date
solo@solo.test,Sol Olsen,Solo Inc,,2027-01-10
m1@many.test,Mia One,Many Co,,2027-01-05
m2@many.test,Max Two,Many Co,,2027-03-30
m3@many.test,Mo Three,Many Co,,
m4@many.test,Meg Four,Many Co,,
boss@boss.test,Bea Boss,Boss Ltd,decision-maker,2027-06-01
u1@boss.test,Ugo User,Boss Ltd,,
u2@boss.test,Uma User,Boss Ltd,,
q1@quiet.test,Quinn,Quiet GmbH,,
q2@quiet.test,Quentin,Quiet GmbH,,
"""
SCORES = {"solo@solo.test": 3, "m1@many.test": 10, "m2@many.test": 9, "m3@many.test": 8,
          "boss@boss.test": 4, "u1@boss.test": 9, "u2@boss.test": 10}


@pytest.fixture
def clock():
    frozen = clock_.Stopped(datetime(2026, 12, 2, 12, 0, tzinfo=UTC))
    with clock_.frozen(frozen):
        yield frozen


@pytest.fixture
def answered(clock, runner, db, tmp_path):
    path = tmp_path / "accounts.csv"
    path.write_text(CONTACTS, encoding="utf-8")
    assert runner("contacts", "import", str(path)).exit_code == 0
    created = runner("campaign", "create", "--name", "Q4", "--subject", "A question",
                     "--sender", "Acme <nps@acme.test>", "--postal-address", "1 Main St")
    campaign_id = int(created.output.strip().splitlines()[-1])
    assert runner("campaign", "send", str(campaign_id)).exit_code == 0
    ids = deliveries(db, campaign_id)
    found = {email: answer(db, ids[email], score, f"comment of {email}")
             for email, score in SCORES.items()}
    clock.time += timedelta(hours=1)  # the window ends now: the answers are inside it
    return found


def groups(db, monkeypatch, method: str) -> tuple[dict, dict]:
    monkeypatch.setenv("SURVEY_ACCOUNT_NPS", method)
    report = reports.build(db, config_.load(), by="account")
    return report, {g["key"]: g for g in report["groups"]}


def test_one_vote_per_account(answered, db, monkeypatch):
    report, by = groups(db, monkeypatch, "account")
    assert [g["key"] for g in report["groups"]] == ["Solo Inc", "Boss Ltd", "Many Co",
                                                    "Quiet GmbH"]
    assert (by["Solo Inc"]["score"], by["Solo Inc"]["segment"]) == (3.0, "detractor")
    assert (by["Many Co"]["score"], by["Many Co"]["segment"]) == (9.0, "promoter")
    assert (by["Boss Ltd"]["score"], by["Boss Ltd"]["segment"]) == (7.7, "passive")
    assert (by["Quiet GmbH"]["score"], by["Quiet GmbH"]["segment"]) == (None, None)
    # Over accounts: 1 promoter, 1 passive, 1 detractor of 3 answered accounts.
    assert (report["nps"], report["accounts"], report["promoter_accounts"],
            report["detractor_accounts"]) == (0.0, 3, 1, 1)


def test_the_decision_maker_counts_when_they_answered(answered, db, monkeypatch):
    report, by = groups(db, monkeypatch, "decision-maker")
    assert (by["Boss Ltd"]["score"], by["Boss Ltd"]["segment"]) == (4.0, "detractor")
    assert by["Many Co"]["score"] == 9.0  # no decision-maker: as `account`
    assert [g["key"] for g in report["groups"]] == ["Solo Inc", "Boss Ltd", "Many Co",
                                                    "Quiet GmbH"]
    assert (report["nps"], report["promoter_accounts"], report["detractor_accounts"]) == (
        -33.3, 1, 2)


def test_every_response_counts_under_responses(answered, db, monkeypatch):
    report, by = groups(db, monkeypatch, "responses")
    # 7 responses: 4 promoters (10, 9, 9, 10), 2 detractors (3, 4) -> 100 * 2 / 7.
    assert (report["responses"], report["promoters"], report["detractors"]) == (7, 4, 2)
    assert report["nps"] == 28.6
    assert by["Boss Ltd"]["score"] == 7.7 and by["Many Co"]["score"] == 9.0


def test_coverage_renewal_cases_and_risk(answered, db, monkeypatch):
    _, by = groups(db, monkeypatch, "account")
    assert (by["Many Co"]["contacts"], by["Many Co"]["surveyed"],
            by["Many Co"]["coverage"]) == (4, 4, 0.75)
    assert by["Quiet GmbH"]["coverage"] == 0.0 and by["Quiet GmbH"]["surveyed"] == 2
    assert by["Boss Ltd"]["coverage"] == 1.0
    assert by["Many Co"]["renewal_date"] == "2027-01-05"  # the earliest upcoming
    assert (by["Solo Inc"]["open_cases"], by["Boss Ltd"]["open_cases"],
            by["Many Co"]["open_cases"]) == (1, 1, 0)
    assert {k for k, g in by.items() if g["at_risk"]} == {"Solo Inc"}
    # Boss Ltd renews later than the window; brought closer, its open case makes it at risk.
    monkeypatch.setenv("SURVEY_RENEWAL_WINDOW_DAYS", "200")
    _, by = groups(db, monkeypatch, "account")
    assert {k for k, g in by.items() if g["at_risk"]} == {"Solo Inc", "Boss Ltd"}


def test_report_by_account_in_every_format(answered, runner):
    table = runner("report", "--by", "account")
    assert table.exit_code == 0, table.output
    assert table.output.index("Solo Inc") < table.output.index("Boss Ltd")
    data = json.loads(runner("report", "--by", "account", "--format", "json").output)
    assert [g["key"] for g in data["groups"]][:1] == ["Solo Inc"]
    rows = list(csv.DictReader(io.StringIO(
        runner("report", "--by", "account", "--format", "csv").output)))
    assert rows[0]["key"] == "all"  # the overall row, then the accounts, at risk first
    assert rows[1]["key"] == "Solo Inc" and rows[1]["at_risk"] in ("True", "true", "1")
    themes = runner("report", "--by", "theme", "--format", "json")
    assert themes.exit_code == 0 and json.loads(themes.output)["by"] == "theme"


def test_accounts_page_at_risk_first_and_an_accounts_page(answered, staff_client):
    page = staff_client.get("/staff/accounts")
    assert page.status_code == 200
    assert page.text.index("Solo Inc") < page.text.index("Boss Ltd") < page.text.index(
        "Many Co")
    assert 'class="status at-risk">at risk</span>' in page.text
    account = staff_client.get("/staff/accounts/Many Co")
    assert account.status_code == 200
    for text in ("Mia One", "comment of m1@many.test", "75.0% of 4 surveyed", "2026-Q4"):
        assert text in account.text, text
    boss = staff_client.get("/staff/accounts/Boss Ltd").text
    assert f'/staff/followups/{answered["boss@boss.test"]}' in boss
    assert staff_client.get("/staff/accounts/Nobody Inc").status_code == 404
