"""Counting only humans in a real browser: Debian's chromium against gunicorn (SPEC 7).

A person's pointer event on the landing page sends the beacon and confirms the response; a
JavaScript-running bot that loads the page without input events sends none.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from conftest import outbox

from survey_mailer import humans

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DESKTOP_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/131.0.0.0 Safari/537.36")


def links(settings, email: str) -> list[str]:
    """Return the eleven score links of a contact's email, pointing at the live server."""
    text = outbox(settings)[email].get_body(("plain",)).get_content()
    found = re.findall(rf"{re.escape(settings['SURVEY_BASE_URL'])}/r/[^/\s]+/\d+", text)
    assert len(found) == 11
    return found


def counts(runner, monkeypatch, policy: str) -> tuple[int, int]:
    """Return (responses counted, filtered_automated) as `survey-mailer report` prints them."""
    monkeypatch.setenv("SURVEY_SCORE_POLICY", policy)
    result = runner("report", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    return data["responses"], data["filtered_automated"]


def confirmed(db) -> list[tuple]:
    humans.fold(db)  # as every reader of responses does
    return [tuple(r) for r in db.execute(
        "SELECT score, confirmed, confirmed_by FROM responses ORDER BY id")]


def wait_for(condition, timeout: float = 10.0) -> None:
    """Poll until a condition holds (a beacon travels asynchronously); no timing asserted."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def watch_requests(page) -> list[str]:
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    return seen


def test_a_pointer_event_confirms_the_click(live_server, sent_campaign, settings, db, page,
                                            runner, monkeypatch, artifacts):
    # live_server first: it points SURVEY_BASE_URL at itself before the campaign is sent.
    seen = watch_requests(page)
    page.goto(links(settings, "bob@example.com")[9])
    assert "/testimonial/" in page.url
    # Headless chromium says "HeadlessChrome": its click alone is filtered as a scanner's.
    assert counts(runner, monkeypatch, "balanced") == (0, 1)
    page.wait_for_load_state("networkidle")
    assert confirmed(db) == [(9, 0, None)]  # loading the page is not a human signal

    page.locator("h1").click()  # a real pointer event, dispatched by the browser
    wait_for(lambda: confirmed(db)[0][1] == 1)
    assert confirmed(db) == [(9, 1, "beacon:pointerdown")]
    assert sum("/b/" in url for url in seen) == 1
    page.keyboard.press("Tab")  # further events send nothing more
    page.wait_for_load_state("networkidle")
    assert sum("/b/" in url for url in seen) == 1
    assert counts(runner, monkeypatch, "strict") == (1, 0)
    assert counts(runner, monkeypatch, "balanced") == (1, 0)
    page.screenshot(path=str(artifacts / "humans-confirmed-testimonial.png"))


def test_a_javascript_bot_without_input_is_not_confirmed(live_server, sent_campaign, settings,
                                                         db, browser, runner, monkeypatch):
    # A sandbox with an ordinary browser's user agent that runs the page's scripts.
    context = browser.new_context(user_agent=DESKTOP_UA)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    seen = watch_requests(page)
    try:
        page.goto(links(settings, "ana@example.com")[3])
        assert "/feedback/" in page.url
        page.wait_for_load_state("networkidle")
        # Events a script makes up are not trusted: no beacon for them either.
        page.evaluate("""() => {
            for (const type of ["pointerdown", "keydown", "touchstart"]) {
                document.dispatchEvent(new Event(type, {bubbles: true}));
            }
            document.querySelector("h1").click();
        }""")
        page.wait_for_load_state("networkidle")
    finally:
        context.close()
    assert any(url.endswith("/static/human.js") for url in seen)  # the script did run
    assert not [e for e in errors if "Content Security Policy" in e]  # the CSP let it
    assert not any("/b/" in url for url in seen)
    # Driven by automation (navigator.webdriver): the page never says it was seen.
    assert not any("/s/" in url for url in seen)
    assert confirmed(db) == [(3, 0, None)]
    assert counts(runner, monkeypatch, "strict") == (0, 1)
    assert counts(runner, monkeypatch, "balanced") == (0, 1)


def test_a_bot_opening_every_link_in_chromium_is_a_burst(live_server, sent_campaign,
                                                         settings, db, browser, runner,
                                                         monkeypatch):
    context = browser.new_context(user_agent=DESKTOP_UA)
    page = context.new_page()
    try:
        for url in links(settings, "sven@example.com"):
            page.goto(url)
    finally:
        context.close()
    humans.fold(db)  # the bursts are found as the click log is folded
    automated = db.execute("SELECT count(*), sum(automated) FROM clicks").fetchone()
    assert tuple(automated) == (11, 11)
    assert counts(runner, monkeypatch, "balanced") == (0, 1)
    assert counts(runner, monkeypatch, "strict") == (0, 1)
