"""SpamAssassin (Debian's, local tests only) on the survey email, the reminder and the
detractor alert, composed the way the product sends them: no rule we can fix may fire."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from staff_support import answer, deliveries

from survey_mailer import db as db_

pytestmark = pytest.mark.slow

SUPPORT = "support@acme.test"
# Rules that fire because of where the test runs, not because of what we compose.
OUTSIDE_OUR_CONTROL = {
    "NO_RECEIVED": "the outbox is not an MTA: Received headers are added by the servers on "
                   "the way (informational, 0 points)",
    "NO_RELAYS": "likewise: the message was not relayed over SMTP in a test (informational)",
    "HTML_MESSAGE": "the survey is an HTML email by design, with a text part (0 points)",
}
RULE_LINE = re.compile(r"^\s*-?\d+\.\d+\s+([A-Z0-9_]+)\s", re.MULTILINE)


def spamassassin_rules(raw: bytes) -> dict[str, str]:
    """Return the rules SpamAssassin's local tests fire on a message, with their lines."""
    if shutil.which("spamassassin") is None:
        pytest.fail("Debian's spamassassin is missing: `make test` installs it "
                    "(apt-get install spamassassin)")
    report = subprocess.run(["spamassassin", "-L", "-t"], input=raw, capture_output=True,
                            check=True, timeout=120).stdout.decode("utf-8", "replace")
    details = report[report.index("Content analysis details"):]
    return {m.group(1): details[m.start():details.index("\n", m.end())].strip()
            for m in RULE_LINE.finditer(details)}


@pytest.fixture
def messages(settings, monkeypatch, db, sent_campaign, runner) -> dict[str, bytes]:
    """The raw survey email, reminder and detractor alert, as the outbox holds them."""
    monkeypatch.setenv("SURVEY_SUPPORT_EMAIL", SUPPORT)
    outbox = Path(settings["SURVEY_OUTBOX_DIR"])
    survey = next(p for p in outbox.glob("*.eml") if b"To: Bob Smith" in p.read_bytes())
    with db_.write(db) as conn:  # sent a few days ago, unanswered: a reminder is due
        conn.execute("UPDATE deliveries SET sent_at = datetime(sent_at, '-3 days')")
    assert runner("campaign", "remind", str(sent_campaign), "--after-days", "2").exit_code == 0
    answer(db, deliveries(db, sent_campaign)["ana@example.com"], 3, "Support took two weeks",
           contact_ok=True)
    assert runner("notify").exit_code == 0
    return {"survey": survey.read_bytes(),
            "reminder": next(outbox.glob("*-r1.eml")).read_bytes(),
            "alert": next(outbox.glob("alert-*.eml")).read_bytes()}


def test_no_rule_we_can_fix_fires(messages):
    fired = {kind: spamassassin_rules(raw) for kind, raw in messages.items()}
    assert all(fired.values()), fired  # the report was read: NO_RECEIVED fires at least
    ours = {kind: {rule: line for rule, line in rules.items()
                   if rule not in OUTSIDE_OUR_CONTROL}
            for kind, rules in fired.items()}
    assert ours == {"survey": {}, "reminder": {}, "alert": {}}
