"""The staff workspace in Debian's chromium against gunicorn: a support agent's morning."""
# ruff: noqa: F811  (fixtures imported from staff_support are parameters here)

from __future__ import annotations

import pytest
from staff_support import EMAIL, PASSWORD, XSS, answer, deliveries, staff_user  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def workspace(live_server, db, sent_campaign, staff_user):
    ids = deliveries(db, sent_campaign)
    answer(db, ids["ana@example.com"], 3, "The export keeps timing out", contact_ok=True)
    answer(db, ids["bob@example.com"], 8, "Good, a bit pricey")
    answer(db, ids["chloe@example.com"], 10, "Our team loves it", display_name="Chloé M.",
           testimonial_consent=True)
    answer(db, ids["sven@example.com"], 6, XSS)
    return live_server


def test_agent_logs_in_follows_up_and_publishes(page, workspace, artifacts):
    base = workspace
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(base + "/staff/followups")
    assert page.url.startswith(base + "/staff/login?next=")
    page.screenshot(path=artifacts / "staff-login.png")
    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    assert page.url == base + "/staff/followups"

    page.goto(base + "/staff/")
    assert page.locator(".kpi .big .nps").first.inner_text() == "-25.0"
    assert page.locator("svg.distribution rect").count() == 11
    assert page.locator("text=of 4 emails sent").is_visible()
    page.screenshot(path=artifacts / "staff-dashboard.png", full_page=True)

    page.click("nav >> text=Follow-ups")
    assert page.locator("td.comment").first.inner_text() == XSS  # shown as text
    page.screenshot(path=artifacts / "staff-followups.png", full_page=True)
    page.click("text=Ana García")
    page.select_option("#status", "contacted")
    page.fill("#note", "Called Ana: export fix ships Friday")
    page.click("button:has-text('Save')")
    assert page.locator(".flash-success").inner_text().startswith(
        "Case updated: status new -> contacted")
    assert page.locator("ol.notes .body").inner_text() == "Called Ana: export fix ships Friday"
    assert page.locator("ol.notes .meta").inner_text().startswith(EMAIL)
    assert page.locator("a:has-text('write from your own mail')").get_attribute("href") \
        .startswith("mailto:ana@example.com?subject=")
    page.screenshot(path=artifacts / "staff-case.png", full_page=True)

    page.click("nav >> text=Testimonials")
    page.fill("input[name$='-display_name']", "Chloé, Globex")
    page.click("button:has-text('Approve')")
    assert "Approved and published." in page.locator(".flash-success").inner_text()
    page.screenshot(path=artifacts / "staff-testimonials.png", full_page=True)

    # Embedded the way a website would: an <iframe> on another page.
    page.set_content(f'<h1>Our site</h1><iframe src="{base}/testimonials/widget" '
                     f'width="700" height="240"></iframe>')
    widget = page.frame_locator("iframe")
    assert widget.locator("blockquote").inner_text() == "Our team loves it"
    assert "Chloé, Globex" in widget.locator("figcaption").inner_text()
    page.screenshot(path=artifacts / "staff-widget-embedded.png")

    page.goto(base + "/staff/responses")
    assert page.locator("table.data tbody tr").count() == 4
    page.screenshot(path=artifacts / "staff-responses.png", full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(base + "/staff/")
    page.screenshot(path=artifacts / "staff-dashboard-phone.png", full_page=True)
