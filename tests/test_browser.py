"""Chromium looks at what people see: the email on a 320 px phone, and a detractor's visit.

Screenshots of every step are kept under pytest's temp dir (the `artifacts` fixture), so a
person can look at them after a run.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re

import pytest
from conftest import outbox

from survey_mailer import branding, campaigns
from survey_mailer.compose import strings

pytestmark = pytest.mark.browser

PHONE = 320
RED, YELLOW, GREEN = "rgb(198, 40, 40)", "rgb(249, 168, 37)", "rgb(46, 125, 50)"
LANGUAGES = {"bob@example.com": "en", "ana@example.com": "es",
             "chloe@example.com": "fr", "sven@example.com": "sv"}

# Geometry, colour and visibility of what matters, read from the rendered page at once.
MEASURE = """() => {
  const box = e => { const r = e.getBoundingClientRect();
                     return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
  const visible = e => { const r = e.getBoundingClientRect(), s = getComputedStyle(e);
                         return r.width > 0 && r.height > 0 && s.display !== 'none'
                                && s.visibility !== 'hidden' && parseFloat(s.opacity) > 0; };
  const background = e => {  // the colour behind an element: its own or an ancestor's
    for (; e; e = e.parentElement) {
      const c = getComputedStyle(e).backgroundColor;
      if (c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') return c;
    }
    return 'rgb(255, 255, 255)';
  };
  const cells = [...document.querySelectorAll('table.nps td')];
  return {
    buttons: cells.map(td => ({...box(td), text: td.innerText.trim(),
                               background: getComputedStyle(td).backgroundColor,
                               visible: visible(td.querySelector('a'))})),
    labels: [...document.querySelectorAll('table.labels td')]
      .map(td => ({text: td.innerText.trim(), visible: visible(td), right: box(td).right})),
    unsubscribe: [...document.querySelectorAll('a[href*="/unsubscribe/"]')]
      .map(a => ({text: a.innerText.trim(), visible: visible(a)})),
    honeypot: [...document.querySelectorAll('a[href$="/hp"]')].map(visible),
    scrollWidth: document.documentElement.scrollWidth,
    texts: [...document.querySelectorAll('body *')]
      .filter(e => visible(e) && [...e.childNodes].some(
        n => n.nodeType === Node.TEXT_NODE && n.textContent.trim()))
      .map(e => ({text: e.innerText.trim().slice(0, 40), color: getComputedStyle(e).color,
                  background: background(e)})),
  };
}"""


PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhf"
                       "DwAChwGA60e6kgAAAABJRU5ErkJggg==")


@pytest.fixture(params=["plain", "branded"])
def emailed(request, db, runner, contacts_csv, settings) -> str:
    """A campaign sent to the four contacts: plain, or with a logo and an accent colour."""
    assert runner("contacts", "import", str(contacts_csv)).exit_code == 0
    campaign_id = campaigns.create(db, name="Q4", subject="A quick question",
                                   sender="Acme <nps@acme.test>", postal_address="1 Main St",
                                   accent="#1a7f37" if request.param == "branded" else "")
    if request.param == "branded":
        branding.set_logo(db, campaign_id, PNG)
    assert runner("campaign", "send", str(campaign_id)).exit_code == 0
    return request.param


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("address", list(LANGUAGES))
def test_email_fits_a_phone(emailed, settings, page, artifacts, address, scheme):
    language = LANGUAGES[address]
    html = outbox(settings)[address].get_body(("html",)).get_content()
    assert ("border-top:4px solid #1a7f37" in html) == (emailed == "branded")
    page.set_viewport_size({"width": PHONE, "height": 640})
    page.emulate_media(color_scheme=scheme)
    page.set_content(html)
    page.screenshot(path=artifacts / f"email-{emailed}-{language}-{scheme}-320px.png",
                    full_page=True)
    seen = page.evaluate(MEASURE)

    buttons = seen["buttons"]
    assert [b["text"] for b in buttons] == [str(n) for n in range(11)]
    tops = [b["top"] for b in buttons]
    assert max(tops) - min(tops) <= 2, f"buttons wrap onto more than one row: tops {tops}"
    for b in buttons:
        assert b["visible"]
        assert 0 <= b["left"] and b["right"] <= PHONE, f"button {b['text']} is cut off: {b}"
    assert seen["scrollWidth"] <= PHONE, "the email scrolls sideways on a phone"
    assert [b["background"] for b in buttons] == [RED] * 7 + [YELLOW] * 2 + [GREEN] * 2

    words = strings(language)
    assert [(label["text"], label["visible"]) for label in seen["labels"]] == [
        (words["not_likely"], True), (words["very_likely"], True)]
    assert all(label["right"] <= PHONE for label in seen["labels"])
    assert seen["unsubscribe"] == [{"text": words["unsubscribe"], "visible": True}]
    assert seen["honeypot"] == [False]
    # Every visible text is readable on what is behind it (WCAG AA: contrast of 4.5 or more).
    assert len(seen["texts"]) >= 19  # greeting, question, intro, 11 buttons, labels, footer
    unreadable = [t for t in seen["texts"] if contrast(t["color"], t["background"]) < 4.5]
    assert not unreadable, unreadable


def contrast(foreground: str, background: str) -> float:
    """Return the WCAG contrast ratio of two CSS rgb() colours."""

    def luminance(colour: str) -> float:
        red, green, blue = (int(v) / 255 for v in re.findall(r"\d+", colour)[:3])
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
                  for c in (red, green, blue)]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_detractor_walks_from_email_to_thanks(live_server, runner, contacts_csv, settings,
                                              page, artifacts):
    # live_server first: it points SURVEY_BASE_URL at itself, so the emails link to it.
    assert runner("contacts", "import", str(contacts_csv)).exit_code == 0
    created = runner("campaign", "create", "--name", "Q4", "--subject", "A quick question",
                     "--sender", "Acme <nps@acme.test>", "--postal-address", "1 Main St")
    campaign_id = created.output.strip().splitlines()[-1]
    assert runner("campaign", "send", campaign_id).exit_code == 0
    message = outbox(settings)["ana@example.com"]  # Spanish
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    assert len(re.findall(rf"{live_server}/r/[^/\s]+/\d+", text)) == 11

    page.set_viewport_size({"width": 390, "height": 800})
    page.set_content(html)
    page.screenshot(path=artifacts / "detractor-1-email.png", full_page=True)
    with page.expect_popup() as opened:  # the buttons open the browser (target=_blank)
        page.click("table.nps a >> text='2'")
    page = opened.value
    page.set_viewport_size({"width": 390, "height": 800})  # a phone, like the email's reader
    page.wait_for_url(re.compile(r"/feedback/[^/]+$"))
    assert page.url.startswith(live_server + "/feedback/")
    assert page.locator("h1").inner_text() == "¿Qué podríamos hacer mejor?"
    assert page.locator("input[name=score][value='2']").is_checked()
    page.screenshot(path=artifacts / "detractor-2-feedback.png", full_page=True)

    page.fill("textarea[name=comment]", "El soporte tardó dos semanas en contestar.")
    page.screenshot(path=artifacts / "detractor-3-typed.png", full_page=True)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Gracias por su respuesta")
    assert page.locator("h1").inner_text() == "Gracias por su respuesta"
    assert page.locator("html").get_attribute("lang") == "es"
    page.screenshot(path=artifacts / "detractor-4-thanks.png", full_page=True)

    report = json.loads(runner("report", "--format", "json").output)
    assert {k: report[k] for k in ("responses", "promoters", "passives", "detractors",
                                   "sent", "nps")} == {
        "responses": 1, "promoters": 0, "passives": 0, "detractors": 1, "sent": 4,
        "nps": -100.0}
    exported = list(csv.DictReader(io.StringIO(runner("export", "responses").output)))
    assert [(r["email"], r["score"], r["segment"], r["comment"], r["language"])
            for r in exported] == [("ana@example.com", "2", "detractor",
                                    "El soporte tardó dos semanas en contestar.", "es")]
