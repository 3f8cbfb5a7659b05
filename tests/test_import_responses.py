"""`survey-mailer responses import`: history from another tool counts and never alerts."""

from __future__ import annotations

import json

import pytest

from survey_mailer import cases, notify
from survey_mailer import config as config_

DELIGHTED_EXPORT = (
    "Response ID,Email,Name,Score,Comment,Response Timestamp,Company,Plan\n"
    "1,ana@example.com,Ana García,10,Great,1735689600,Acme,pro\n"
    "2,bob@example.com,Bob Smith,2,Slow,2025-01-02T10:00:00Z,Acme,free\n"
    "3,new@example.com,,8,,2025-01-03 09:30:00,Initech,\n"
)


def report(runner) -> dict:
    result = runner("report", "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def write(tmp_path, text: str, name: str = "history.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def test_a_delighted_export_is_imported_and_counts(runner, db, tmp_path, monkeypatch):
    monkeypatch.setenv("SURVEY_SUPPORT_EMAIL", "support@acme.test")
    monkeypatch.setenv("SURVEY_WEBHOOK_URLS", "http://127.0.0.1:9/hook")
    path = write(tmp_path, DELIGHTED_EXPORT)
    result = runner("responses", "import", str(path), "--campaign-name", "Delighted 2025")
    assert result.exit_code == 0, result.output
    assert result.output == ('3 responses imported, 0 already there (campaign '
                             '"Delighted 2025")\n')
    data = report(runner)
    assert (data["responses"], data["promoters"], data["passives"], data["detractors"]) == \
        (3, 1, 1, 1)
    rows = {r["email"]: dict(r) for r in db.execute(
        "SELECT c.email, c.name, c.company, c.attributes, r.score, r.comment,"
        " r.responded_at, r.imported, cp.name AS campaign FROM responses r"
        " JOIN contacts c ON c.id = r.contact_id JOIN campaigns cp ON cp.id = r.campaign_id")}
    assert rows["ana@example.com"]["responded_at"] == "2025-01-01 00:00:00.000000"
    assert rows["bob@example.com"]["responded_at"] == "2025-01-02 10:00:00.000000"
    assert rows["new@example.com"]["responded_at"] == "2025-01-03 09:30:00.000000"
    assert (rows["ana@example.com"]["name"], rows["ana@example.com"]["company"],
            json.loads(rows["ana@example.com"]["attributes"])) == \
        ("Ana García", "Acme", {"response id": "1", "plan": "pro"})
    assert {r["imported"] for r in rows.values()} == {1}
    assert {r["campaign"] for r in rows.values()} == {"Delighted 2025"}
    # History: no alert, no webhook, no follow-up case, nothing overdue.
    config = config_.load()
    assert notify.scan(db, config) == 0
    assert cases.list_cases(db, "balanced") == []
    assert cases.overdue(db, "balanced", 0) == []
    assert cases.case_counts(db, "balanced")["new"] == 0
    # The same file again changes nothing.
    result = runner("responses", "import", str(path), "--campaign-name", "Delighted 2025")
    assert result.output == ('0 responses imported, 3 already there (campaign '
                             '"Delighted 2025")\n')
    assert report(runner)["responses"] == 3
    # The history campaign never sends.
    assert db.execute("SELECT count(*) FROM deliveries WHERE status != 'sent'"
                      ).fetchone()[0] == 0


def test_every_bad_line_is_named_and_nothing_is_imported(runner, db, tmp_path):
    path = write(tmp_path, (
        "email,score,created_at\n"
        "ana@example.com,10,2025-01-01\n"
        "not-an-address,5,2025-01-01\n"
        "bob@example.com,11,2025-01-01\n"
        "chloe@example.com,7,yesterday\n"
        "ana@example.com,3,2025-02-01\n"
        "sven@example.com,9,2099-01-01\n"
        "dan@example.com,9\n"))
    result = runner("responses", "import", str(path), "--campaign-name", "Old tool")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines == [
        'line 3: "not-an-address" is not a valid email address',
        'line 4: score "11" is not a whole number from 0 to 10',
        'line 5: "yesterday" is not a time: write ISO 8601 (2026-03-31T14:00:00Z) or unix '
        "seconds",
        'line 6: "ana@example.com" already appears on line 2 (one response per person and '
        "campaign: import each period with its own --campaign-name)",
        'line 7: "2099-01-01" is in the future',
        "line 8: 2 fields, the header has 3",
        f"Error: 6 problems in {path}; nothing was imported",
    ]
    assert db.execute("SELECT count(*) FROM responses").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM campaigns").fetchone()[0] == 0


@pytest.mark.parametrize("header, message", [
    ("email,comment,created_at", "line 1: no score column in the header"),
    ("email,score", "line 1: no responded_at (or created_at, response timestamp) column"),
    ("Email,EMAIL,score,created_at", 'line 1: column "email" appears twice'),
])
def test_a_header_without_what_is_needed_is_refused(runner, tmp_path, header, message):
    path = write(tmp_path, header + "\n")
    result = runner("responses", "import", str(path), "--campaign-name", "Old tool")
    assert result.exit_code == 1
    assert result.output.startswith(message)


def test_header_names_ignore_case_spaces_and_underscores(runner, db, tmp_path):
    path = write(tmp_path, "E MAIL,SCORE,responded_At\nana@example.com,9,1735689600\n")
    result = runner("responses", "import", str(path), "--campaign-name", "Old tool")
    assert result.exit_code == 0, result.output
    assert report(runner)["promoters"] == 1


def test_erased_people_are_skipped(runner, db, tmp_path, sent_campaign):
    assert runner("contacts", "erase", "bob@example.com").exit_code == 0
    path = write(tmp_path, DELIGHTED_EXPORT)
    result = runner("responses", "import", str(path), "--campaign-name", "Delighted 2025")
    assert result.output == ('2 responses imported, 0 already there, 1 skipped: erased '
                             '(campaign "Delighted 2025")\n')
    assert db.execute("SELECT count(*) FROM contacts WHERE email = 'bob@example.com'"
                      ).fetchone()[0] == 0
