"""The staff workspace through the test client: login, permissions, CSRF, every page."""
# ruff: noqa: F811  (fixtures imported from staff_support are parameters here)

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime

import pytest
from conftest import csrf_token, outbox, score_links
from staff_support import (  # noqa: F401 (fixtures)
    EMAIL,
    PASSWORD,
    answer,
    deliveries,
    login,
    staff_client,
    staff_user,
)

from landing import create_app
from survey_mailer import humans, responses, users

PAGES = ["/staff/", "/staff/followups", "/staff/followups/1", "/staff/testimonials",
         "/staff/responses", "/staff/responses.csv", "/staff/?by=language"]
POSTS = ["/staff/followups/1", "/staff/testimonials/1", "/staff/responses/1/restore"]


@pytest.fixture
def answered(db, sent_campaign):
    """Ana 3 with a comment, Bob 7, Chloé 10 with consent, Sven 5 (confirmed answers)."""
    ids = deliveries(db, sent_campaign)
    return {
        "ana": answer(db, ids["ana@example.com"], 3, "Too slow to load", contact_ok=True),
        "bob": answer(db, ids["bob@example.com"], 7, "Fine"),
        "chloe": answer(db, ids["chloe@example.com"], 10, "Love it", display_name="Chloé M.",
                        testimonial_consent=True),
        "sven": answer(db, ids["sven@example.com"], 5, ""),
        "campaign": sent_campaign,
    }


# Accounts and the command line ------------------------------------------------------------


def test_staff_add_with_password_and_prompt(runner, db):
    result = runner("staff", "add", "lead@acme.test", "--password", "a long password")
    assert result.exit_code == 0
    assert result.output == "Created staff account lead@acme.test (admin)\n"
    stored = db.execute("SELECT password_hash FROM staff_users").fetchone()[0]
    assert stored.startswith("scrypt:") and "a long password" not in stored
    result = runner("staff", "add", "lead@acme.test", input="another secret\nanother secret\n")
    assert result.exit_code == 0
    assert "Updated the password of staff account lead@acme.test" in result.output
    assert users.authenticate(db, "LEAD@acme.test", "another secret")["email"] == \
        "lead@acme.test"
    assert users.authenticate(db, "lead@acme.test", "a long password") is None


@pytest.mark.parametrize("args, message", [
    (["not-an-email", "--password", "a long password"],
     'Error: "not-an-email" is not an email address\n'),
    (["a@acme.test", "--password", "short"],
     "Error: the password is too short: use at least 10 characters\n"),
])
def test_staff_add_rejects_bad_input(runner, args, message):
    result = runner("staff", "add", *args)
    assert result.exit_code == 1
    assert result.stderr == message if hasattr(result, "stderr") else message in result.output


# Login, logout, permissions ----------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_every_page_needs_login(client, db, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/staff/login?next=")


@pytest.mark.parametrize("path", POSTS + ["/staff/logout"])
def test_every_post_needs_login(client, db, path):
    assert client.post(path, data={}).status_code == 400  # CSRF is checked first
    token = csrf_token(client.get("/staff/login").text)
    response = client.post(path, data={"csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/staff/login")


@pytest.mark.parametrize("path", PAGES)
def test_every_page_opens_when_logged_in(staff_client, answered, path):
    path = path.replace("/followups/1", f"/followups/{answered['ana']}")
    response = staff_client.get(path)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_no_inline_style_or_script_in_staff_pages(staff_client, answered):
    for path in PAGES[:5]:
        html = staff_client.get(path.replace("/1", f"/{answered['ana']}")).text
        assert "<script" not in html and "style=" not in html and "<style" not in html, path


def test_login_goes_to_next_page(client, staff_user):
    response = login(client, next_="/staff/followups?status=new")
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/followups?status=new"
    assert client.get("/staff/followups").status_code == 200


@pytest.mark.parametrize("next_", ["//evil.test/x", "https://evil.test/staff/",
                                   "/survey/elsewhere", "/staff/\\evil"])
def test_login_never_redirects_elsewhere(client, staff_user, next_):
    response = login(client, next_=next_)
    assert response.headers["Location"] == "/staff/"


@pytest.mark.parametrize("email, password", [(EMAIL, "wrong password"),
                                             ("nobody@acme.test", PASSWORD)])
def test_login_refuses_wrong_credentials(client, staff_user, email, password):
    response = login(client, email, password)
    assert response.status_code == 401
    assert "That email and password do not match an account." in response.text
    assert client.get("/staff/").status_code == 302


def test_login_without_csrf_token_is_refused(client, staff_user):
    response = client.post("/staff/login", data={"email": EMAIL, "password": PASSWORD})
    assert response.status_code == 400
    assert "Please send the form again" in response.text
    assert client.get("/staff/").status_code == 302


def test_logout_needs_post_with_csrf(staff_client):
    assert staff_client.get("/staff/logout").status_code == 405
    staff_client.post("/staff/logout", data={"csrf_token": "forged"})
    assert staff_client.get("/staff/").status_code == 200  # still logged in
    html = staff_client.get("/staff/").text
    response = staff_client.post("/staff/logout", data={"csrf_token": csrf_token(html)})
    assert response.headers["Location"] == "/staff/login"
    assert "You have logged out." in staff_client.get("/staff/login").text
    assert staff_client.get("/staff/").status_code == 302


def test_session_ends_after_its_lifetime(staff_client, app):
    assert app.config["PERMANENT_SESSION_LIFETIME"].total_seconds() == 8 * 3600
    with staff_client.session_transaction() as session:
        assert session.permanent
        session["login_at"] = datetime.now(UTC).timestamp() - 9 * 3600
    response = staff_client.get("/staff/followups")
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/login?next=/staff/followups"
    assert staff_client.get("/staff/").status_code == 302


def test_session_length_is_a_setting(settings, db, staff_user, monkeypatch):
    monkeypatch.setenv("SURVEY_STAFF_SESSION_HOURS", "0.5")
    app = create_app({"TESTING": True, "RATELIMIT_ENABLED": False})
    assert app.config["PERMANENT_SESSION_LIFETIME"].total_seconds() == 1800
    client = app.test_client()
    login(client)
    with client.session_transaction() as session:
        session["login_at"] = datetime.now(UTC).timestamp() - 25 * 60
    assert client.get("/staff/").status_code == 200  # 25 minutes in: still on
    with client.session_transaction() as session:
        session["login_at"] = datetime.now(UTC).timestamp() - 31 * 60
    assert client.get("/staff/").status_code == 302  # 31 minutes: logged out


def test_session_cookie_is_secure_outside_development(settings, db, staff_user):
    app = create_app({"TESTING": True, "RATELIMIT_ENABLED": False,
                      "SURVEY_BASE_URL": "https://nps.acme.test"})
    client = app.test_client()
    response = login(client)
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_login_attempts_are_rate_limited(settings, db, staff_user):
    app = create_app({"TESTING": True, "RATELIMIT_ENABLED": True})
    client = app.test_client()
    token = csrf_token(client.get("/staff/login").text)
    # Eleven emails: the per-address limit, apart from the per-email lock (test_auth.py).
    statuses = [client.post("/staff/login", data={"csrf_token": token, "password": "wrong",
                                                  "email": f"a{n}@acme.test"}).status_code
                for n in range(11)]
    assert statuses == [401] * 10 + [429]


# Dashboard ---------------------------------------------------------------------------------


def test_dashboard_shows_nps_margin_rate_and_charts(staff_client, answered):
    html = staff_client.get("/staff/").text
    # 1 promoter, 2 detractors of 4: NPS -25.0; 4 of 4 sent answered.
    assert '<span class="nps neg">-25.0</span>' in html
    assert "± 81.3 (95% margin of error)" in html
    assert "100.0%" in html and "of 4 emails sent" in html
    assert html.count("<svg") >= 3
    assert 'class="chart distribution"' in html and 'class="chart trend"' in html
    assert "<title>3: 1 (25%)</title>" in html  # one bar per score, readable without JS
    assert 'fill="#c62828"' in html and 'fill="#f9a825"' in html and 'fill="#2e7d32"' in html
    assert ">Acme</th>" in html and ">Globex</th>" in html  # default breakdown: company
    assert ">Q4</a></th>" in html  # the campaign, linked to its own view


@pytest.mark.parametrize("by, expected", [
    ("language", [">es</th>", ">fr</th>", ">sv</th>"]),
    ("attribute:plan", [">pro</th>", ">free</th>", "Attribute: plan"]),
    ("campaign", [">Q4</th>"]),
])
def test_dashboard_breakdowns(staff_client, answered, by, expected):
    html = staff_client.get(f"/staff/?by={by}").text
    for fragment in expected:
        assert fragment in html


def test_dashboard_ignores_unknown_breakdown(staff_client, answered):
    html = staff_client.get("/staff/?by=attribute:nope').--").text
    assert "<h2>By Company</h2>" in html


def test_dashboard_for_one_campaign(staff_client, answered):
    html = staff_client.get(f"/staff/?campaign={answered['campaign']}").text
    assert "<h1>Q4</h1>" in html
    assert 'class="selected"' in html


def _move_to_quarter(db, response_ids, stamp):
    db.execute(f"UPDATE responses SET created_at = ? WHERE id IN "
               f"({','.join('?' * len(response_ids))})", [stamp, *response_ids])
    db.conn.commit()


def test_change_is_flagged_only_beyond_the_margin(staff_client, db, answered):
    _move_to_quarter(db, [answered["ana"], answered["bob"]], "2026-04-10 10:00:00.000000")
    _move_to_quarter(db, [answered["chloe"], answered["sven"]], "2026-07-10 10:00:00.000000")
    html = staff_client.get("/staff/").text
    # Four answers: a 50-point move is well within chance.
    assert "2026-Q2 to 2026-Q3: +50.0 points, within the" in html
    assert "not a significant change" in html


def test_big_change_on_many_answers_is_flagged(db, staff_client, tmp_path, runner):
    rows = "\n".join(f"p{i}@example.com,P{i},Big,en" for i in range(400))
    path = tmp_path / "many.csv"
    path.write_text("email,name,company,language\n" + rows + "\n")
    assert runner("contacts", "import", str(path)).exit_code == 0
    out = runner("campaign", "create", "--name", "Big", "--subject", "s", "--sender",
                 "a@acme.test").output
    campaign = int(out.strip().splitlines()[-1])
    assert runner("campaign", "send", str(campaign)).exit_code == 0
    ids = list(deliveries(db, campaign).values())
    first = [answer(db, d, 3) for d in ids[:200]]
    second = [answer(db, d, 10) for d in ids[200:]]
    _move_to_quarter(db, first, "2026-01-10 10:00:00.000000")
    _move_to_quarter(db, second, "2026-04-10 10:00:00.000000")
    html = staff_client.get("/staff/").text
    assert "Up +200.0 points" in html and "so a real change" in html


# Follow-up cases ---------------------------------------------------------------------------


def test_followups_list_counted_detractors_newest_first(staff_client, answered):
    html = staff_client.get("/staff/followups").text
    assert html.index("Sven Ek") < html.index("Ana García")  # Sven answered last
    assert "Bob Smith" not in html and "Chloé" not in html
    assert "Too slow to load" in html
    assert html.count('<span class="status new">new</span>') == 2


def _update_case(client, response_id, **data):
    html = client.get(f"/staff/followups/{response_id}").text
    return client.post(f"/staff/followups/{response_id}",
                       data={"csrf_token": csrf_token(html), "assignee": "", "note": "",
                             **data})


def test_case_moves_to_contacted_with_note(staff_client, answered, staff_user):
    case = answered["ana"]
    html = staff_client.get(f"/staff/followups/{case}").text
    assert 'href="mailto:ana@example.com?subject=About%20your%20feedback%3A%20Q4"' in html
    assert "Yes, they agreed" in html
    response = _update_case(staff_client, case, status="contacted",
                            assignee=str(staff_user), note="Called her, fix on its way")
    assert response.status_code == 303
    html = staff_client.get(response.headers["Location"]).text
    assert ("Case updated: status new -&gt; contacted, assigned to agent@acme.test, "
            "note added.") in html
    assert re.search(r"agent@acme.test · <time[^>]*>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ</time>", html)
    assert "Called her, fix on its way" in html
    listing = staff_client.get("/staff/followups?status=contacted").text
    assert "Ana García" in listing and "Sven Ek" not in listing
    assert "Ana García" in staff_client.get(f"/staff/followups?assignee={staff_user}").text
    assert "Ana García" not in staff_client.get("/staff/followups?assignee=none").text
    assert "Sven Ek" in staff_client.get("/staff/followups?status=new").text
    other = staff_client.get("/staff/followups?campaign=999").text
    assert "No cases match." in other


def test_case_update_without_csrf_is_refused(staff_client, answered, db):
    response = staff_client.post(f"/staff/followups/{answered['ana']}",
                                 data={"status": "resolved", "assignee": "", "note": "x"})
    assert response.status_code == 400
    assert db.execute("SELECT count(*) FROM cases").fetchone()[0] == 0


def test_promoter_is_not_a_case(staff_client, answered):
    assert staff_client.get(f"/staff/followups/{answered['chloe']}").status_code == 404


def test_case_update_rejects_unknown_status(staff_client, answered):
    response = _update_case(staff_client, answered["ana"], status="closed")
    assert response.status_code == 400
    assert "Status: Not a valid choice" in response.text


# Testimonials ------------------------------------------------------------------------------


def _moderate(client, response_id, action, name):
    html = client.get("/staff/testimonials?status=all").text
    return client.post(f"/staff/testimonials/{response_id}",
                       data={"csrf_token": csrf_token(html),
                             f"t{response_id}-display_name": name,
                             f"t{response_id}-action": action})


def test_testimonials_moderation_publishes_only_approved(staff_client, answered, client):
    html = staff_client.get("/staff/testimonials").text
    assert "Love it" in html and 'value="Chloé M."' in html
    assert "Too slow" not in html and "Fine" not in html  # only consenting promoters
    assert client.get("/testimonials.json").json == {"testimonials": []}
    assert "Love it" not in client.get("/testimonials/widget").text

    response = _moderate(staff_client, answered["chloe"], "approve", "Chloé from Globex")
    assert response.status_code == 303
    assert "Approved and published." in staff_client.get(response.headers["Location"]).text
    items = client.get("/testimonials.json").json["testimonials"]
    assert [(t["name"], t["quote"], t["score"]) for t in items] == \
        [("Chloé from Globex", "Love it", 10)]
    assert "Chloé from Globex" in client.get("/testimonials/widget").text

    _moderate(staff_client, answered["chloe"], "reject", "Chloé from Globex")
    assert client.get("/testimonials.json").json == {"testimonials": []}


def test_full_name_is_never_offered_as_the_public_name(staff_client, db, sent_campaign):
    # Consent without a typed name is refused on the landing page now; answers saved before
    # that rule (or through the library) must not show the contact's full name to approve.
    delivery = deliveries(db, sent_campaign)["chloe@example.com"]
    response_id = answer(db, delivery, 10, "Love it", display_name="",
                         testimonial_consent=True)
    html = staff_client.get("/staff/testimonials").text
    assert "Love it" in html
    field = re.search(rf'<input[^>]*name="t{response_id}-display_name"[^>]*>', html).group(0)
    assert 'value=""' in field and "Chloé Martin" not in field


def test_words_changed_after_approval_wait_for_approval(staff_client, answered, db, client):
    _moderate(staff_client, answered["chloe"], "approve", "Chloé")
    delivery = db.execute("SELECT delivery_id FROM responses WHERE id = ?",
                          [answered["chloe"]]).fetchone()[0]
    answer(db, delivery, 10, "Changed words", display_name="C", testimonial_consent=True)
    assert client.get("/testimonials.json").json["testimonials"][0]["quote"] == "Love it"
    html = staff_client.get("/staff/testimonials?status=approved").text
    assert "Changed by its author since approval" in html
    answer(db, delivery, 10, "Changed words", testimonial_consent=False)  # consent withdrawn
    assert client.get("/testimonials.json").json == {"testimonials": []}


def test_moderation_without_csrf_is_refused(staff_client, answered, client):
    response = staff_client.post(f"/staff/testimonials/{answered['chloe']}",
                                 data={f"t{answered['chloe']}-action": "approve"})
    assert response.status_code == 400
    assert client.get("/testimonials.json").json == {"testimonials": []}


def test_public_testimonials_have_cors_and_caching(staff_client, answered, client):
    _moderate(staff_client, answered["chloe"], "approve", "Chloé")
    for path in ("/testimonials.json", "/testimonials/widget"):
        response = client.get(path)
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert response.headers["Cache-Control"] == "public, max-age=300"
        etag = response.headers["ETag"]
        again = client.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304
    widget = client.get("/testimonials/widget")
    assert "frame-ancestors *" in widget.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in widget.headers


# Responses, CSV, filtered clicks -------------------------------------------------------------


def test_responses_search(staff_client, answered):
    html = staff_client.get("/staff/responses?q=slow").text
    assert "Too slow to load" in html and "Love it" not in html
    html = staff_client.get("/staff/responses?q=globex").text
    assert "Love it" in html and "Too slow" not in html
    assert "No responses match." in staff_client.get("/staff/responses?q=%25_").text


def test_csv_export_has_the_cli_columns(staff_client, answered, runner):
    response = staff_client.get("/staff/responses.csv")
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="responses.csv"' in response.headers["Content-Disposition"]
    cli_rows = list(csv.DictReader(io.StringIO(runner("export", "responses").output)))
    web_rows = list(csv.DictReader(io.StringIO(response.text)))
    assert web_rows == cli_rows and len(web_rows) == 4
    assert list(web_rows[0]) == list(responses.EXPORT_COLUMNS)


@pytest.mark.parametrize("query, emails", [
    ("q=slow", ["ana@example.com"]),
    ("company=globex", ["chloe@example.com", "sven@example.com"]),
    ("segment=detractor", ["ana@example.com", "sven@example.com"]),
    ("segment=passive", ["bob@example.com"]),
    ("score=10", ["chloe@example.com"]),
    ("segment=detractor&company=acme", ["ana@example.com"]),
    ("since=2000-01-01&until=2999-12-31", ["ana@example.com", "bob@example.com",
                                          "chloe@example.com", "sven@example.com"]),
    ("until=2000-01-01", []),
])
def test_the_csv_download_follows_the_filters(staff_client, answered, query, emails):
    """The page and its download show the same responses (issue 10, item 13)."""
    page = staff_client.get(f"/staff/responses?{query}").text
    link = re.search(r'href="(/staff/responses\.csv[^"]*)"', page).group(1)
    rows = list(csv.DictReader(io.StringIO(staff_client.get(link.replace("&amp;", "&")).text)))
    assert sorted(r["email"] for r in rows) == emails
    for email in ("ana@example.com", "bob@example.com", "chloe@example.com",
                  "sven@example.com"):
        assert (f"{email}</span>" in page) == (email in emails)


def test_a_bad_date_filter_is_said_and_left_out(staff_client, answered):
    page = staff_client.get("/staff/responses?since=yesterday").text
    assert "&#34;yesterday&#34; is not a date: write it as YYYY-MM-DD; that date was left " \
           "out." in page
    assert page.count('<span class="score-pill') == 4


def test_a_testimonial_without_a_name_it_was_given_is_not_published(staff_client, db,
                                                                     sent_campaign, client):
    """The contact's full name is never offered, nor published, as the public name."""
    ids = deliveries(db, sent_campaign)
    response_id = answer(db, ids["chloe@example.com"], 10, "Love it", testimonial_consent=True)
    html = staff_client.get("/staff/testimonials").text
    assert "Love it" in html and f'name="t{response_id}-display_name" type="text" value=""' in html
    refused = _moderate(staff_client, response_id, "approve", "")
    assert "Not published: a testimonial is published only under a name" in \
        staff_client.get(refused.headers["Location"]).text
    assert client.get("/testimonials.json").json == {"testimonials": []}


def test_csv_export_defuses_formulas(staff_client, db, sent_campaign):
    ids = deliveries(db, sent_campaign)
    answer(db, ids["ana@example.com"], 2, '=HYPERLINK("http://evil.test","x")')
    rows = list(csv.DictReader(io.StringIO(staff_client.get("/staff/responses.csv").text)))
    assert rows[0]["comment"] == "'=HYPERLINK(\"http://evil.test\",\"x\")"


def test_filtered_clicks_shown_apart_and_restored(staff_client, db, sent_campaign):
    found = responses.delivery(db, deliveries(db, sent_campaign)["bob@example.com"])
    for score in (0, 5, 10):  # a scanner's burst: every button within a second
        humans.record_click(db, found, score, method="GET", user_agent="Mozilla/5.0")
    dashboard = staff_client.get("/staff/").text
    assert '<a href="/staff/responses?filtered=1">1</a>' in dashboard
    html = staff_client.get("/staff/responses?filtered=1").text
    assert '<span class="status filtered" title="Flagged as automated">filtered</span>' in html
    response_id = db.execute("SELECT id FROM responses").fetchone()[0]
    response = staff_client.post(f"/staff/responses/{response_id}/restore",
                                 data={"csrf_token": csrf_token(html)})
    assert response.status_code == 303
    row = db.execute("SELECT confirmed, confirmed_by FROM responses").fetchone()
    assert tuple(row) == (1, "staff:agent@acme.test")
    assert "it now counts" in staff_client.get("/staff/responses").text


def test_restore_without_csrf_is_refused(staff_client, answered):
    response = staff_client.post(f"/staff/responses/{answered['bob']}/restore")
    assert response.status_code == 400


# XSS: markup from respondents is text everywhere ---------------------------------------------


def test_markup_is_escaped_everywhere(staff_client, db, client, tmp_path, runner):
    from staff_support import XSS

    path = tmp_path / "x.csv"
    quoted = '"' + XSS.replace('"', '""') + '"'
    path.write_text(f"email,name,company\nx@example.com,Eve,{quoted}\ny@example.com,Yan,Acme\n")
    assert runner("contacts", "import", str(path)).exit_code == 0
    out = runner("campaign", "create", "--name", "X", "--subject", "s", "--sender",
                 "a@acme.test").output
    campaign = int(out.strip().splitlines()[-1])
    runner("campaign", "send", str(campaign))
    ids = deliveries(db, campaign)
    detractor = answer(db, ids["x@example.com"], 1, XSS)
    promoter = answer(db, ids["y@example.com"], 10, XSS, display_name=XSS,
                      testimonial_consent=True)
    _moderate(staff_client, promoter, "approve", XSS)
    pages = {
        "dashboard": staff_client.get("/staff/").text,
        "followups": staff_client.get("/staff/followups").text,
        "case": staff_client.get(f"/staff/followups/{detractor}").text,
        "testimonials": staff_client.get("/staff/testimonials?status=all").text,
        "responses": staff_client.get("/staff/responses").text,
        "widget": client.get("/testimonials/widget").text,
        "json": client.get("/testimonials.json").text,
    }
    for name, text in pages.items():
        assert "<script>" not in text and "<img src=x" not in text, name
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in pages["case"]
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages["widget"]
    assert "\\u003cscript\\u003e" in pages["json"]
    assert client.get("/testimonials.json").json["testimonials"][0]["name"] == XSS


def test_staff_pages_and_the_api_fold_the_click_log_first(staff_client, db, sent_campaign,
                                                        settings, runner):
    # A click only appends to the click log; whatever shows responses folds it first.
    link = score_links(outbox(settings)["ana@example.com"])[2]
    assert staff_client.get(link, headers={"User-Agent": "Mozilla/5.0"}).status_code == 303
    assert db.execute("SELECT count(*) FROM responses").fetchone()[0] == 0
    html = staff_client.get("/staff/").text
    # Folded: a response, filtered until its page is seen in a browser tab.
    assert db.execute("SELECT count(*) FROM responses").fetchone()[0] == 1
    assert '<a href="/staff/responses?filtered=1">1</a>' in html
    key = runner("api-key", "create", "--name", "site").output.strip().splitlines()[-1]
    staff_client.get(score_links(outbox(settings)["bob@example.com"])[10],
                     headers={"User-Agent": "Mozilla/5.0"})
    stats = staff_client.get("/api/v1/stats", headers={"Authorization": f"Bearer {key}"})
    assert (stats.json["responses"], stats.json["filtered_automated"]) == (0, 2)


# API keys -----------------------------------------------------------------------------------


def test_stats_api_needs_a_bearer_key(client, answered, runner):
    assert client.get("/api/v1/stats").status_code == 401
    assert client.get("/api/v1/stats",
                      headers={"Authorization": "Bearer nope"}).status_code == 401
    result = runner("api-key", "create", "--name", "website")
    key = result.output.strip().splitlines()[-1]
    assert key.startswith("sm_")
    response = client.get("/api/v1/stats?by=language",
                          headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    data = response.json
    assert (data["nps"], data["responses"], data["sent"]) == (-25.0, 4, 4)
    assert {g["key"] for g in data["groups"]} == {"en", "es", "fr", "sv"}
    bad = client.get("/api/v1/stats?by=nonsense", headers={"Authorization": f"Bearer {key}"})
    assert bad.status_code == 400
    assert "cannot group by" in bad.json["error"]


def test_api_keys_are_listed_and_revoked(client, answered, runner):
    key = runner("api-key", "create", "--name", "website").output.strip().splitlines()[-1]
    listed = runner("api-key", "list").output.splitlines()
    assert len(listed) == 1
    assert listed[0].startswith(f"1\twebsite\t{key[:7]}...\tcreated ")
    assert listed[0].endswith("never used")
    auth = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/stats", headers=auth).status_code == 200
    assert "\tlast used " in runner("api-key", "list").output
    assert key not in runner("api-key", "list", "--format", "json").output
    assert runner("api-key", "revoke", "1").output == "API key 1 is revoked\n"
    assert client.get("/api/v1/stats", headers=auth).status_code == 401
    assert runner("api-key", "revoke", "1").output == "API key 1 was already revoked\n"
    result = runner("api-key", "revoke", "9")
    assert (result.exit_code, result.output) == (1, 'Error: API key "9" does not exist\n')
