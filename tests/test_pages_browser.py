"""Every public and staff page in Debian's chromium: it fits a 320 px phone, and axe-core
finds no WCAG 2.1 AA violation on it.

axe-core comes from npm (package.json at the repository root; `make test` runs `npm ci`).
"""
# ruff: noqa: F811  (fixtures imported from staff_support are parameters here)

from __future__ import annotations

import json
from pathlib import Path

import pytest
from staff_support import EMAIL, PASSWORD, answer, deliveries, staff_user  # noqa: F401

from survey_mailer import humans, responses

pytestmark = [pytest.mark.browser, pytest.mark.slow]

AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
PHONE = 320
LONG = "maria-jose.fernandez-lopez@subsidiary.example.com"
NAV = ["Dashboard", "Follow-ups", "Accounts", "Themes", "Testimonials", "Responses",
       "Contacts", "Campaigns", "Team", "API keys"]


@pytest.fixture
def contacts_csv(tmp_path) -> Path:
    """The usual four contacts, and one with a long address (it once widened a page)."""
    path = tmp_path / "contacts.csv"
    path.write_text(
        "email,name,company,language,plan\n"
        "ana@example.com,Ana García,Acme,es,pro\n"
        "bob@example.com,Bob Smith,Acme,en,free\n"
        "chloe@example.com,Chloé Martin,Globex,fr,pro\n"
        "sven@example.com,Sven Ek,Globex,sv,free\n"
        f"{LONG},María José Fernández,Globex,en,pro\n", encoding="utf-8")
    return path


@pytest.fixture
def promoter_links(settings, monkeypatch):
    """The promoters' page offers the site and a review (set before the server starts)."""
    monkeypatch.setenv("SURVEY_SITE_URL", "https://www.acme.test/")
    monkeypatch.setenv("SURVEY_REVIEW_URL", "https://reviews.test/acme")


@pytest.fixture
def site(promoter_links, live_server, db, sent_campaign, staff_user, links):
    """A sent campaign with answers in every segment, a filtered scanner burst, a login."""
    ids = deliveries(db, sent_campaign)
    case = answer(db, ids["ana@example.com"], 3, "The export keeps timing out", contact_ok=True)
    answer(db, ids["chloe@example.com"], 10, "Our team loves it", display_name="Chloé M.",
           testimonial_consent=True)
    scanned = responses.delivery(db, ids["sven@example.com"])
    for score in (0, 5, 10):  # a scanner's burst: every button within a second
        humans.record_click(db, scanned, score, method="GET", user_agent="Mozilla/5.0")
    bob = links.token("score", ids["bob@example.com"])
    contact = db.execute("SELECT id FROM contacts WHERE email = 'ana@example.com'").fetchone()[0]
    return {"base": live_server, "case": case, "bob": bob, "contact": contact,
            "campaign": sent_campaign,
            "unsubscribe": links.token("unsubscribe", ids[LONG])}


def every_page(page, site):
    """Open every page a person can see, one after the other; yield each one's name."""
    base, bob = site["base"], site["bob"]
    page.goto(f"{base}/v/{bob}")
    yield "web version"
    for score, name in ((3, "feedback"), (8, "comment"), (10, "testimonial")):
        page.goto(f"{base}/r/{bob}/{score}")
        assert page.url.endswith(f"/{name}/{bob}")
        yield name
    page.click("button[type=submit]")
    page.wait_for_selector("h1 >> text=Thank you for your answer")
    yield "thanks"
    page.goto(f"{base}/unsubscribe/{site['unsubscribe']}")
    yield "unsubscribe"
    page.click("button[type=submit]")
    page.wait_for_selector("h1 >> text=You are unsubscribed")
    yield "unsubscribed"
    page.goto(f"{base}/r/not-a-token/3")
    yield "error: bad link"
    page.goto(f"{base}/no/such/page")
    yield "error: not found"

    page.goto(f"{base}/staff/login")
    yield "staff login"
    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/staff/")
    for path, name in (("/staff/", "dashboard"), ("/staff/followups", "followups"),
                       (f"/staff/followups/{site['case']}", "a case"),
                       ("/staff/testimonials?status=all", "testimonials"),
                       ("/staff/responses", "responses"),
                       ("/staff/responses?filtered=1", "filtered responses"),
                       ("/staff/contacts", "contacts"),
                       (f"/staff/contacts/{site['contact']}", "a contact"),
                       ("/staff/campaigns", "campaigns"),
                       (f"/staff/campaigns/{site['campaign']}", "a campaign"),
                       (f"/staff/campaigns/{site['campaign']}/preview?language=es",
                        "campaign preview"),
                       ("/staff/campaigns/new", "new campaign"),
                       ("/staff/team", "team"), ("/staff/api-keys", "api keys"),
                       ("/staff/accounts", "accounts"), ("/staff/accounts/Globex", "an account"),
                       ("/staff/themes", "themes")):
        page.goto(base + path)
        yield "staff " + name


def test_every_page_fits_a_320px_phone(page, site, artifacts):
    page.set_viewport_size({"width": PHONE, "height": 640})
    seen = []
    for name in every_page(page, site):
        seen.append(name)
        page.screenshot(path=artifacts / f"fit-{name.replace(' ', '-')}-320px.png",
                        full_page=True)
        width = page.evaluate("document.scrollingElement.scrollWidth")
        assert width <= PHONE, f"{name} is {width} px wide on a {PHONE} px phone"
        if name == "testimonial":  # links told apart by more than their colour
            assert page.evaluate("[...document.querySelectorAll('p.more a')].map("
                                 "a => getComputedStyle(a).textDecorationLine)") == \
                ["underline", "underline"]
        if name.startswith("staff ") and name != "staff login":
            for label in NAV:  # every item shows, none scrolled out of sight
                box = page.locator("header nav a", has_text=label).bounding_box()
                assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE, \
                    f"{name}: the navigation's {label!r} is out of sight: {box}"
    assert len(seen) == 27


@pytest.mark.parametrize(("width", "scheme"), [(PHONE, "light"), (1280, "light"),
                                               (1280, "dark")])
def test_axe_finds_no_wcag_aa_violation(page, site, width, scheme):
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: `make test` installs it (npm ci)")
    source = AXE.read_text("utf-8")
    page.set_viewport_size({"width": width, "height": 800})
    page.emulate_media(color_scheme=scheme)  # the public pages follow the reader's scheme
    found = {}
    for name in every_page(page, site):
        # Evaluated by the driver, not a <script> tag: the pages' CSP allows only 'self'.
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            page.evaluate(source)
        violations = page.evaluate(
            "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})"
            ".then(r => r.violations.map(v => ({id: v.id, help: v.help,"
            " nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)})))", AXE_TAGS)
        if violations:
            found[name] = violations
    assert not found, json.dumps(found, indent=1)


# Each text of a chart: whether it lies whole inside the chart's viewBox, and its size on
# screen (its font size scaled as the SVG is).
CHART_TEXTS = """() => [...document.querySelectorAll('svg.chart')].flatMap(svg => {
  const view = svg.viewBox.baseVal, scale = svg.getBoundingClientRect().width / view.width;
  return [...svg.querySelectorAll('text')].map(t => { const b = t.getBBox();
    return {chart: svg.getAttribute('class'), text: t.textContent,
            inside: b.x >= view.x && b.y >= view.y && b.x + b.width <= view.x + view.width
                    && b.y + b.height <= view.y + view.height,
            px: parseFloat(getComputedStyle(t).fontSize) * scale}; });
})"""


@pytest.mark.parametrize("width", [PHONE, 1280])
def test_charts_show_every_label_whole_and_readable(page, width):
    from survey_mailer import charts

    quarters = [("2025-Q1", -12.5, 30.0), ("2025-Q2", 35.7, 28.4), ("2025-Q3", 57.1, 25.1),
                ("2025-Q4", 65.2, 28.5)]
    page.set_viewport_size({"width": width, "height": 800})
    # The dashboard's panel: half the page on a desktop, the whole phone less its margins.
    panel = 460 if width > PHONE else 262
    page.set_content(f'<div style="width:{panel}px">{charts.trend(quarters)}</div>'
                     f'<div style="width:{panel}px">{charts.distribution([3] * 11)}</div>')
    texts = page.evaluate(CHART_TEXTS)
    assert {t["text"] for t in texts} >= {"2025-Q1", "2025-Q4", "+65.2", "10"}
    assert [t for t in texts if not t["inside"]] == []
    assert [t for t in texts if t["px"] < 10] == []
