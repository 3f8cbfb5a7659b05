"""Closing the loop in Debian's chromium against gunicorn: a support user opens the account
at risk, its detractor's case, replies and resolves it (SPEC 13). Screenshots at 375 and
1280 px go to the test's artifacts and to /work/notes/screens when that folder exists."""
# ruff: noqa: F811  (fixtures imported from staff_support are parameters here)

from __future__ import annotations

import email
import email.policy
import shutil
from pathlib import Path

import pytest
from staff_support import EMAIL, PASSWORD, answer, deliveries, staff_user  # noqa: F401

from survey_mailer import config as config_
from survey_mailer import notify, themes

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SCREENS = Path("/work/notes/screens")


@pytest.fixture
def support(settings, monkeypatch):
    monkeypatch.setenv("SURVEY_SUPPORT_EMAIL", "support@acme.test")


@pytest.fixture
def workspace(support, live_server, db, sent_campaign, staff_user):
    ids = deliveries(db, sent_campaign)
    ana = answer(db, ids["ana@example.com"], 2, "Los informes son lentos", contact_ok=True)
    answer(db, ids["bob@example.com"], 5, "Slow reports, pricey")
    answer(db, ids["chloe@example.com"], 9, "Rapide et simple")
    answer(db, ids["sven@example.com"], 10, "Snabb support")
    db.execute("UPDATE contacts SET attributes = json_set(attributes, '$.renewal_date', "
               "date('now', '+30 days')) WHERE company = 'Acme'")
    db.execute("UPDATE contacts SET attributes = json_set(attributes, '$.renewal_date', "
               "date('now', '+300 days')) WHERE company = 'Globex'")
    db.conn.commit()
    themes.save(db, "Speed", "slow*, lent*, rapide, snabb")
    themes.save(db, "Reports", "report*, informe*")
    themes.tag_new(db)
    return live_server, ana


def shot(page, artifacts: Path, name: str) -> None:
    for width in (1280, 375):
        page.set_viewport_size({"width": width, "height": 900})
        path = artifacts / f"loop-{name}-{width}.png"
        page.screenshot(path=path, full_page=True)
        if SCREENS.is_dir():
            shutil.copy(path, SCREENS / path.name)
    page.set_viewport_size({"width": 1280, "height": 900})


def test_support_replies_to_the_at_risk_accounts_detractor_and_resolves(
        page, workspace, artifacts, db, settings):
    base, ana = workspace
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(base + "/staff/accounts")
    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    assert page.url == base + "/staff/accounts"
    rows = page.locator("table.accounts tbody tr")
    # (lower-cased: the badge's upper case is CSS, applied or not when read)
    assert rows.first.locator("td").first.inner_text().lower() == "acme at risk"
    assert rows.nth(1).locator("td").first.inner_text() == "Globex"
    shot(page, artifacts, "accounts")

    page.click("table.accounts >> text=Acme")
    assert page.locator("h1").inner_text().lower() == "acme at risk"
    assert page.locator("td.comment >> text=Los informes son lentos").is_visible()
    shot(page, artifacts, "account")

    page.click("a:has-text('Ana García')")
    assert page.url == f"{base}/staff/followups/{ana}"
    assert page.locator("text=Everything from Ana García").is_visible()
    page.fill("#subject", "Your reports are faster now")
    page.fill("#message", "Hi Ana, we made the reports three times faster. Thank you!")
    shot(page, artifacts, "case")
    page.click("button[name=resolve]")
    assert page.locator(".flash-success").inner_text() == (
        "Reply to ana@example.com queued and the case resolved.")
    assert page.locator("h2 .status").inner_text().lower() == "resolved"
    notify.dispatch(db, config_.load())  # the worker's round (the page's own may be first)
    page.reload()
    assert page.locator("ol.notes .status").inner_text().lower() == "sent"
    assert page.locator("ol.notes .body").first.inner_text().startswith(
        "Reply to ana@example.com: Your reports are faster now")
    shot(page, artifacts, "case-replied")
    [path] = Path(settings["SURVEY_OUTBOX_DIR"]).glob("reply-n*.eml")
    sent = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert sent["Reply-To"].addresses[0].addr_spec == EMAIL
    assert sent["In-Reply-To"].startswith("<survey.")

    page.goto(base + "/staff/themes")
    assert page.locator("summary:has-text('Speed')").inner_text().startswith("Speed · 4")
    shot(page, artifacts, "themes")
    page.goto(base + "/staff/")
    assert page.locator("table.themes").is_visible()
    shot(page, artifacts, "dashboard")
    page.goto(base + "/staff/followups")
    shot(page, artifacts, "followups")
