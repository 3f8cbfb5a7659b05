"""The landing page in Debian's chromium: it follows the chosen score's segment at once, and
its score buttons are readable (WCAG 2.1 AA) whether chosen or not."""

from __future__ import annotations

import pytest
from conftest import outbox
from test_browser import contrast

from survey_mailer import humans

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def saved(db) -> dict:
    humans.fold(db)
    row = db.execute("SELECT r.score, r.comment, r.display_name, r.testimonial_consent "
                     "FROM responses r JOIN contacts c ON c.id = r.contact_id "
                     "WHERE c.email = 'bob@example.com'").fetchone()
    return dict(row)


def score_link(settings, score: int) -> str:
    text = outbox(settings)["bob@example.com"].get_body(("plain",)).get_content()
    return [line.split()[-1] for line in text.splitlines() if "/r/" in line][score]


@pytest.fixture
def sent(live_server, sent_campaign):
    return live_server


def test_a_passive_who_picks_10_is_asked_for_a_testimonial(sent, settings, db, page,
                                                           artifacts):
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(score_link(settings, 8))
    assert page.locator("h1").inner_text() == "What would make it a 9 or 10?"
    assert not page.locator("#display_name").is_visible()
    assert not page.locator("text=You may contact me about my answer").is_visible()

    page.locator("label.s10").click()
    assert page.locator("h1").inner_text() == "Thank you!"
    assert page.title() == "Thank you!"
    assert page.locator("p.lead").inner_text().startswith("We are glad you would recommend ")
    assert page.locator("label[for=comment]").inner_text() == "Your words"
    assert page.locator("#display_name").is_visible()
    assert page.locator("#testimonial_consent").is_visible()
    assert not page.locator("#testimonial_consent").is_checked()
    page.screenshot(path=artifacts / "landing-passive-picks-10.png", full_page=True)

    page.locator("label.s3").click()  # and on to a detractor's question
    assert page.locator("h1").inner_text() == "What could we do better?"
    assert page.locator("text=You may contact me about my answer").is_visible()
    assert not page.locator("#display_name").is_visible()

    page.locator("label.s9").click()
    page.fill("#comment", "It saves us hours")
    page.fill("#display_name", "Bob, Acme")
    page.check("#testimonial_consent")
    page.click("button[type=submit]")
    page.wait_for_selector("h1 >> text=Thank you for your answer")
    assert "/testimonial/" in page.url
    assert saved(db) == {"score": 9, "comment": "It saves us hours",
                         "display_name": "Bob, Acme", "testimonial_consent": 1}


def test_hidden_fields_are_not_sent(sent, settings, db, page):
    page.goto(score_link(settings, 10))
    page.fill("#display_name", "Bob")
    page.check("#testimonial_consent")
    page.locator("label.s7").click()  # changed their mind: the consent went out of sight
    page.click("button[type=submit]")
    page.wait_for_selector("h1 >> text=Thank you for your answer")
    assert saved(db) == {"score": 7, "comment": "", "display_name": "",
                         "testimonial_consent": 0}


# The colour of each score button's text, the colour behind it, and its border against the
# card around it, read from the page.
BUTTONS = """() => [...document.querySelectorAll('label.score')].map(label => {
  const style = getComputedStyle(label);
  return {score: label.innerText.trim(), checked: label.querySelector('input').checked,
          text: style.color, background: style.backgroundColor, border: style.borderTopColor,
          card: getComputedStyle(document.querySelector('main')).backgroundColor,
          opacity: style.opacity};
})"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_score_buttons_meet_wcag_aa(sent, settings, page, scheme, artifacts):
    page.emulate_media(color_scheme=scheme)
    page.goto(score_link(settings, 8))
    page.screenshot(path=artifacts / f"landing-buttons-{scheme}.png")
    buttons = page.evaluate(BUTTONS)
    assert [b["score"] for b in buttons] == [str(n) for n in range(11)]
    assert [b["checked"] for b in buttons] == [n == 8 for n in range(11)]
    for b in buttons:
        assert b["opacity"] == "1"
        assert contrast(b["text"], b["background"]) >= 4.5, b  # text (1.4.3)
        if not b["checked"]:  # the control's edge on the card (1.4.11)
            assert contrast(b["border"], b["card"]) >= 3 or \
                contrast(b["background"], b["card"]) >= 3, b
