"""Addresses the mailer cannot send to are refused at import, not at send time."""

from __future__ import annotations

import json


def test_non_ascii_addresses_are_refused_with_their_line(runner, tmp_path):
    # Messages are built without SMTPUTF8: such an address used to crash `campaign send`
    # with a traceback and leave its delivery of unknown fate.
    path = tmp_path / "contacts.csv"
    path.write_text("email,name\nåsa@example.se,Åsa\nbob@example.com,Bob\n"
                    "eva@exämple.se,Eva\n", encoding="utf-8")
    result = runner("contacts", "import", str(path))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        'line 2: "åsa@example.se" has non-ASCII characters before the @, which cannot be '
        "sent to",
        'line 4: "eva@exämple.se" has a non-ASCII domain: write it as eva@xn--exmple-cua.se',
        f"Error: 2 problems in {path}; nothing was imported",
    ]
    assert json.loads(runner("contacts", "list", "--format", "json").output) == []


def test_non_ascii_names_are_fine(runner, tmp_path, settings):
    path = tmp_path / "contacts.csv"
    path.write_text("email,name\nasa@xn--exmple-cua.se,Åsa Öberg\n", encoding="utf-8")
    assert runner("contacts", "import", str(path)).output == "1 added, 0 updated\n"
    created = runner("campaign", "create", "--name", "Q4", "--subject", "Hej",
                     "--sender", "Acme <nps@acme.test>")
    campaign_id = created.output.strip().splitlines()[-1]
    assert runner("campaign", "send", campaign_id).output == (
        "1 sent, 0 failed, 0 skipped, 0 left to send\n")
