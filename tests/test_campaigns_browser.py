"""A marketer's campaign in Debian's chromium against gunicorn and a real worker process
(issue 13): a Spanish subject and a logo, the Spanish preview at 375 px, a test to
themselves, then "send now" and the progress reaching the end as the worker sends."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import outbox
from playwright.sync_api import expect
from staff_support import PASSWORD

from survey_mailer import users

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MARKETER = "marketer@acme.test"
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhf"
                       "DwAChwGA60e6kgAAAABJRU5ErkJggg==")


@pytest.fixture
def worker(live_server, tmp_path):
    """`survey-mailer worker` beside gunicorn, stopped by its pid."""
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "survey-mailer"), "worker", "--interval", "0.5"],
        stdout=subprocess.DEVNULL, stderr=log, env=dict(os.environ))
    yield process
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(30)
    log.close()


def test_a_marketer_builds_previews_tests_and_sends(browser, live_server, worker, db, runner,
                                                    contacts_csv, settings, tmp_path,
                                                    artifacts):
    assert runner("contacts", "import", str(contacts_csv)).exit_code == 0
    users.add_user(db, "admin@acme.test", PASSWORD)
    users.add_user(db, MARKETER, PASSWORD, "marketer")
    logo = tmp_path / "logo.png"
    logo.write_bytes(PNG)
    base = live_server
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        page.goto(base + "/staff/login")
        page.fill("#email", MARKETER)
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.click("nav >> text=Campaigns")
        page.click("text=New campaign")
        page.fill("#name", "Q1 relationship")
        page.fill("#subject", "A quick question")
        page.fill("#subject_es", "Una pregunta rápida")
        page.fill("#sender", "Acme <nps@acme.test>")
        page.fill("#postal_address", "1 Main St, Springfield")
        page.fill("#accent", "#1a7f37")
        page.fill("#segment", "company=Acme")  # the count follows the typing
        expect(page.locator("#audience-count")).to_have_text("2 contacts would get it now")
        page.fill("#segment", "")
        expect(page.locator("#audience-count")).to_have_text("4 contacts would get it now")
        page.click("button:has-text('Create campaign')")
        assert page.locator("h1").inner_text().startswith("Q1 relationship")
        page.set_input_files("input[type=file]", str(logo))
        page.click("button:has-text('Upload')")
        assert "Logo saved" in page.locator(".flash-success").inner_text()

        page.click("a[href$='/preview?language=es']")  # the preview in Spanish
        frame = page.frame_locator("iframe[width='375']")
        assert "recomiende" in frame.locator("body").inner_text()
        assert frame.locator("img[alt='Acme']").count() == 1
        page.screenshot(path=artifacts / "campaign-preview-es.png", full_page=True)

        page.go_back()
        page.select_option("#test-language", "es")
        page.click("button:has-text('Send me a test')")
        assert "A test in es went to" in page.locator(".flash-success").inner_text()
        assert outbox(settings)[MARKETER]["Subject"] == "[Test] Una pregunta rápida"

        page.click("button:has-text('Send now')")
        # The worker sends; the page follows by itself, without a reload.
        expect(page.locator("[data-key=sent]")).to_have_text("4", timeout=30_000)
        expect(page.locator("[data-key=remaining]")).to_have_text("0")
        expect(page.locator("#status")).to_have_text("sent")
        page.screenshot(path=artifacts / "campaign-sent.png", full_page=True)
        subjects = {address: msg["Subject"] for address, msg in outbox(settings).items()}
        assert subjects["ana@example.com"] == "Una pregunta rápida"
        assert subjects["bob@example.com"] == "A quick question"
    finally:
        context.close()
