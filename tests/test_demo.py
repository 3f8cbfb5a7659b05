"""The demo data of `make demo`: four languages, four quarters, safe to build again."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from staff_support import EMAIL, PASSWORD, login

from landing import create_app
from survey_mailer import config as config_
from survey_mailer import demo, users


def test_demo_builds_once_and_keeps_other_data(runner, contacts_csv, settings):
    assert runner("contacts", "import", str(contacts_csv)).exit_code == 0
    created = runner("campaign", "create", "--name", "Mine", "--subject", "Hi",
                     "--sender", "Me <me@acme.test>")
    mine = created.output.strip().splitlines()[-1]
    lines: list[str] = []

    first = demo.build(config_.load(), out=lines.append)
    report = json.loads(runner("report", "--by", "quarter", "--format", "json").output)
    again = demo.build(config_.load(), out=lines.append)

    assert json.loads(runner("report", "--by", "quarter", "--format", "json").output) == report
    assert [g["sent"] for g in report["groups"]] == [40, 40, 40, 40]
    assert all(g["responses"] > 0 for g in report["groups"])
    languages = json.loads(runner("report", "--by", "language", "--format", "json").output)
    assert [g["key"] for g in languages["groups"]] == ["en", "es", "fr", "sv"]
    plans = json.loads(runner("report", "--by", "attribute:plan", "--format", "json").output)
    assert {g["key"] for g in plans["groups"]} == {"enterprise", "free", "pro"}

    # Built once: the second run sent nothing and answered nothing more.
    assert sum(line.startswith("Sent ") for line in lines) == 4
    assert first["campaign_id"] == again["campaign_id"]
    # The four contacts and the campaign that were there before are untouched.
    contacts = json.loads(runner("contacts", "list", "--format", "json").output)
    assert len(contacts) == 44
    ours = {c["email"]: c for c in contacts if not c["email"].endswith("@demo.example")}
    assert sorted(ours) == ["ana@example.com", "bob@example.com", "chloe@example.com",
                            "sven@example.com"]
    assert all("source" not in c["attributes"] for c in ours.values())
    campaigns = json.loads(runner("campaign", "list", "--format", "json").output)
    assert [c for c in campaigns if str(c["id"]) == mine][0]["sent"] == 0

    # The email to click is the current campaign's, for someone who has not answered.
    eml = again["eml"]
    assert eml.name.startswith(f"c{again['campaign_id']}-d") and eml.exists()
    delivery_id = int(eml.stem.split("-d")[1])
    assert again["database"].execute(
        "SELECT count(*) FROM responses WHERE delivery_id = ?", [delivery_id]).fetchone()[0] == 0
    first["database"].close()
    again["database"].close()


def demo_env() -> dict[str, str]:
    """Return the settings `make demo` sets (the Makefile's DEMO_ENV)."""
    makefile = (Path(__file__).resolve().parent.parent / "Makefile").read_text("utf-8")
    line = re.search(r"^DEMO_ENV := ((?:.*\\\n)*.*)$", makefile, re.MULTILINE).group(1)
    return dict(word.split("=", 1) for word in shlex.split(line.replace("\\\n", " ")))


def test_demo_shows_filtered_scanner_clicks(settings):
    built = demo.build(config_.load(), out=lambda line: None)
    database = built["database"]
    again = demo.build(config_.load(), out=lambda line: None)  # clicked once, not twice
    reasons = sorted(r[0] for r in database.execute(
        "SELECT DISTINCT k.reason FROM clicks k JOIN responses r ON r.delivery_id = k.delivery_id"
        " WHERE k.automated = 1 AND r.campaign_id = ?", [built["campaign_id"]]))
    assert reasons == ["burst", "honeypot", "user-agent"]

    users.add_user(database, EMAIL, PASSWORD)
    client = create_app({"TESTING": True, "RATELIMIT_ENABLED": False}).test_client()
    assert login(client).status_code == 302
    html = client.get("/staff/responses?filtered=1").text
    assert html.count('class="status filtered" title="Flagged as automated"') == 3
    assert "Only filtered (3)" in html
    # The email `make demo` offers to click is still one nobody (and no scanner) clicked.
    delivery_id = int(again["eml"].stem.split("-d")[1])
    assert database.execute("SELECT count(*) FROM clicks WHERE delivery_id = ?",
                            [delivery_id]).fetchone()[0] == 0
    database.close()
    again["database"].close()


def test_demo_promoters_page_offers_the_site_and_a_review(settings, monkeypatch, links):
    env = demo_env()
    assert env["SURVEY_SITE_URL"].startswith("https://")
    assert env["SURVEY_REVIEW_URL"].startswith("https://")
    for name in ("SURVEY_SITE_URL", "SURVEY_REVIEW_URL"):
        monkeypatch.setenv(name, env[name])
    built = demo.build(config_.load(), out=lambda line: None)
    delivery_id = int(built["eml"].stem.split("-d")[1])
    built["database"].close()
    client = create_app({"TESTING": True}).test_client()
    page = client.get(f"/r/{links.token('score', delivery_id)}/10", follow_redirects=True)
    assert f'<a href="{env["SURVEY_SITE_URL"]}">Explore our site</a>' in page.text
    assert f'<a href="{env["SURVEY_REVIEW_URL"]}">Leave a public review</a>' in page.text


def test_demo_closes_the_loop(settings):
    from survey_mailer import cases, reports, themes

    result = demo.build(config_.load(), out=lambda line: None)
    database, settings_ = result["database"], config_.load()
    groups = reports.build(database, settings_, by="account")["groups"]
    assert [g["key"] for g in groups if g["at_risk"]] == ["Initech"]
    assert all(g["renewal_date"] for g in groups)
    assert cases.overdue(database, settings_["SURVEY_SCORE_POLICY"], 48)
    named = {t["theme"] for t in themes.counts(database, settings_["SURVEY_SCORE_POLICY"])}
    assert {"Support", "Speed", "Billing"} <= named
