"""The workspace's roles in Debian's chromium against gunicorn (issue 13): an admin adds a
marketer, the marketer uploads contacts (a bad file first), a support agent is refused."""

from __future__ import annotations

import pytest
from staff_support import PASSWORD

from survey_mailer import users

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ADMIN, MARKETER, SUPPORT = "admin@acme.test", "marketer@acme.test", "support@acme.test"
BAD = "email,name,plan\nana@example.com,Ana,pro\nnot-an-address,X,\nbob@example.com,Bob,\n" \
      "ana@example.com,Again,\n"
GOOD = "email,name,plan\nana@example.com,Ana,pro\nbob@example.com,Bob,free\n"


def log_in(page, base: str, email: str) -> None:
    page.goto(base + "/staff/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/staff/")


def test_admin_adds_a_marketer_who_uploads_contacts(browser, live_server, db, tmp_path,
                                                    artifacts):
    users.add_user(db, ADMIN, PASSWORD)
    users.add_user(db, SUPPORT, PASSWORD, "support")
    base = live_server
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        log_in(page, base, ADMIN)
        page.click("nav >> text=Team")
        page.fill("#email", MARKETER)
        page.select_option("#role", "marketer")
        page.fill("#password", PASSWORD)
        page.click("text=Add account")
        assert page.locator(".flash-success").inner_text().startswith(f"{MARKETER} added")
        page.screenshot(path=artifacts / "team-added.png", full_page=True)
        page.click("text=Log out")

        log_in(page, base, MARKETER)
        assert page.locator("nav >> text=Team").count() == 0  # not a marketer's page
        page.click("nav >> text=Contacts")
        bad, good = tmp_path / "bad.csv", tmp_path / "contacts.csv"
        bad.write_text(BAD)
        good.write_text(GOOD)
        page.set_input_files("input[type=file]", str(bad))
        page.click("button:has-text('Upload')")
        problems = page.locator("ul.problems li").all_inner_texts()
        assert problems == ['line 3: "not-an-address" is not a valid email address',
                            'line 5: "ana@example.com" already appears on line 2']
        page.screenshot(path=artifacts / "contacts-upload-refused.png", full_page=True)
        assert db.execute("SELECT count(*) FROM contacts").fetchone()[0] == 0
        page.set_input_files("input[type=file]", str(good))
        page.click("button:has-text('Upload')")
        assert "2 added, 0 updated" in page.locator(".flash-success").inner_text()
        assert page.locator("table.data tbody tr").count() == 2
        page.click("text=Ana")
        assert page.locator("h1").inner_text() == "Ana"
        page.click("text=Log out")

        log_in(page, base, SUPPORT)
        for path in ("/staff/contacts", "/staff/campaigns", "/staff/campaigns/new"):
            page.goto(base + path)
            assert page.locator("h1").inner_text() == "You cannot do that", path
        page.screenshot(path=artifacts / "campaigns-refused.png")
    finally:
        context.close()
