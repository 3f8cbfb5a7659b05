"""The demo data of `make demo`: four languages, four quarters, safe to build again."""

from __future__ import annotations

import json

from survey_mailer import config as config_
from survey_mailer import demo


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
