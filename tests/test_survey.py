"""The public pages: score links, segment pages, thank-you, unsubscribe, friendly errors."""

import pytest
from conftest import BASE_URL, csrf_token, outbox, score_links
from itsdangerous import timed

from survey_mailer import humans


@pytest.fixture
def mail(settings, sent_campaign):
    return outbox(settings)


def links_of(mail, email):
    return score_links(mail[email])


def count(db, table):
    humans.fold(db)  # responses are folded from the click log by whoever reads them
    return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def response(db, email):
    humans.fold(db)
    row = db.execute("SELECT r.* FROM responses r JOIN contacts c ON c.id = r.contact_id "
                     "WHERE c.email = ?", [email]).fetchone()
    return dict(row) if row else None


@pytest.mark.parametrize(("score", "page"), [(0, "feedback"), (6, "feedback"),
                                             (7, "comment"), (8, "comment"),
                                             (9, "testimonial"), (10, "testimonial")])
def test_score_link_records_and_redirects_to_segment_page(client, db, mail, score, page):
    path = links_of(mail, "bob@example.com")[score]
    token = path.split("/")[2]
    r = client.get(path)
    assert r.status_code == 303
    assert r.headers["Location"] == f"/{page}/{token}"
    assert response(db, "bob@example.com")["score"] == score
    assert count(db, "clicks") == 1


def test_latest_click_wins_one_response_per_delivery(client, db, mail):
    links = links_of(mail, "bob@example.com")
    client.get(links[3])
    client.get(links[9])
    assert count(db, "responses") == 1
    assert response(db, "bob@example.com")["score"] == 9
    assert count(db, "clicks") == 2


def test_landing_pages_in_the_contacts_language(client, mail):
    r = client.get(links_of(mail, "ana@example.com")[2], follow_redirects=True)
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    assert '<html lang="es">' in html and "¿Qué podríamos hacer mejor?" in html
    r = client.get(links_of(mail, "chloe@example.com")[7], follow_redirects=True)
    assert "Qu’est-ce qui en ferait un 9 ou un 10 ?" in r.get_data(as_text=True)
    r = client.get(links_of(mail, "sven@example.com")[10], follow_redirects=True)
    assert "Tack!" in r.get_data(as_text=True)
    r = client.get(links_of(mail, "bob@example.com")[10], follow_redirects=True)
    assert "Would you share a few words that we may publish?" in r.get_data(as_text=True)


def test_form_has_preset_score_comment_and_unticked_consent(client, mail):
    html = client.get(links_of(mail, "bob@example.com")[10],
                      follow_redirects=True).get_data(as_text=True)
    assert '<input checked id="score-10" name="score" required type="radio" value="10">' in html
    assert html.count('name="score" required type="radio"') == 11
    assert '<textarea id="comment" maxlength="5000" name="comment" rows="5">' in html
    assert 'name="display_name"' in html
    consent = html[html.index('name="testimonial_consent"') - 80:]
    assert "checked" not in consent[:consent.index(">")]


def submit(client, path, **data):
    page = client.get(path)
    assert page.status_code == 200, page.status_code
    return client.post(path, data={"csrf_token": csrf_token(page.get_data(as_text=True)),
                                   **data})


def test_post_saves_comment_confirms_and_thanks(client, db, mail):
    path = client.get(links_of(mail, "ana@example.com")[4]).headers["Location"]
    r = submit(client, path, score="4", comment="  Too slow  ", contact_ok="y")
    assert r.status_code == 200
    assert "Gracias por su respuesta" in r.get_data(as_text=True)
    row = response(db, "ana@example.com")
    assert (row["score"], row["comment"], row["contact_ok"], row["confirmed"]) == \
        (4, "Too slow", 1, 1)


def test_changed_score_moves_to_new_segment(client, db, mail):
    path = client.get(links_of(mail, "bob@example.com")[6]).headers["Location"]
    r = submit(client, path, score="9", comment="Actually great")
    assert r.status_code == 303  # to the promoter's page (see the test below)
    assert response(db, "bob@example.com")["score"] == 9
    token = path.split("/")[2]
    again = client.get(path)
    assert again.status_code == 303 and again.headers["Location"] == f"/testimonial/{token}"


def test_testimonial_consent(client, db, mail):
    path = client.get(links_of(mail, "bob@example.com")[10]).headers["Location"]
    submit(client, path, score="10", comment="Love it", display_name="Bob S.",
           testimonial_consent="y")
    row = response(db, "bob@example.com")
    assert (row["display_name"], row["testimonial_consent"]) == ("Bob S.", 1)


@pytest.mark.parametrize("name", ["", "   "])
def test_consent_needs_a_name_the_promoter_typed(client, db, mail, name):
    path = client.get(links_of(mail, "bob@example.com")[10]).headers["Location"]
    r = submit(client, path, score="10", comment="Love it", display_name=name,
               testimonial_consent="y")
    assert r.status_code == 400
    html = r.get_data(as_text=True)
    assert ('<p class="error" id="display_name-error">Type the name we may show with your '
            'words, or leave the box below unticked.</p>') in html
    assert 'aria-invalid="true"' in html and "Love it" in html  # nothing typed is lost
    row = response(db, "bob@example.com")
    assert (row["comment"], row["display_name"], row["testimonial_consent"]) == ("", "", 0)


@pytest.mark.parametrize(("first", "changed", "page", "shown"), [
    (8, 10, "testimonial", "Your name as it may appear"),  # a passive picks 10
    (9, 3, "feedback", "You may contact me about my answer"),  # a promoter picks 3
    (7, 0, "feedback", "You may contact me about my answer"),
])
def test_changed_segment_without_javascript_opens_its_page(client, db, mail, first, changed,
                                                           page, shown):
    path = client.get(links_of(mail, "bob@example.com")[first]).headers["Location"]
    token = path.split("/")[2]
    r = submit(client, path, score=str(changed), comment="My words")
    # Saved at once (score and words), then asked what the new segment's page asks.
    assert r.status_code == 303 and r.headers["Location"] == f"/{page}/{token}"
    row = response(db, "bob@example.com")
    assert (row["score"], row["comment"], row["testimonial_consent"]) == (changed, "My words", 0)
    html = client.get(r.headers["Location"]).get_data(as_text=True)
    assert (f'<p class="note" role="status">Thank you: your answer is saved, with a score of '
            f'{changed}.</p>') in html
    assert f'<form method="post" id="answer" action="/{page}/{token}"' in html
    visible = html[:html.index(shown)]
    assert "hidden" not in visible[visible.rindex("<fieldset"):]
    assert "My words</textarea>" in html


def test_changed_to_passive_without_javascript_thanks(client, db, mail):
    path = client.get(links_of(mail, "bob@example.com")[10]).headers["Location"]
    r = submit(client, path, score="8", comment="Needs exports", display_name="Bob",
               testimonial_consent="y")
    assert r.status_code == 200
    assert "Your idea goes straight to the people who can make it happen." in r.text
    row = response(db, "bob@example.com")
    # Consent was given on the promoter's page, for a score the person then took back.
    assert (row["score"], row["comment"], row["display_name"], row["testimonial_consent"]) == \
        (8, "Needs exports", "", 0)


def test_each_page_holds_every_segment_and_shows_its_own(client, mail):
    html = client.get(links_of(mail, "bob@example.com")[8],
                      follow_redirects=True).get_data(as_text=True)
    assert '<span data-segment="passive">What would make it a 9 or 10?</span>' in html
    assert '<span data-segment="promoter" hidden>Your words</span>' in html
    assert '<h1 data-text-detractor="What could we do better?" ' in html
    assert '<label class="score s9" data-shows="promoter"><input id="score-9"' in html
    assert '<fieldset data-segment="promoter" class="fields" hidden disabled>' in html
    assert '<script src="/static/segment.js" defer></script>' in html


def test_post_without_csrf_is_refused_and_saves_nothing(client, db, mail):
    path = client.get(links_of(mail, "bob@example.com")[5]).headers["Location"]
    r = client.post(path, data={"score": "5", "comment": "x"})
    assert r.status_code == 400
    assert "Please send the form again" in r.get_data(as_text=True)
    assert response(db, "bob@example.com")["comment"] == ""


def test_post_with_score_out_of_range_is_refused(client, db, mail):
    path = client.get(links_of(mail, "bob@example.com")[5]).headers["Location"]
    r = submit(client, path, score="11", comment="x")
    assert r.status_code == 400
    assert response(db, "bob@example.com")["comment"] == ""


def tamper(path):
    # Change a character inside the signature: the last base64 character carries
    # padding bits, so changing it alone may decode to the same bytes.
    token = path.split("/")[2]
    i = len(token) - 5
    return path.replace(token, token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:])


@pytest.mark.parametrize(("make_path", "status", "title"), [
    (tamper, 404, "This link does not work"),
    (lambda p: "/r/not-a-token/3", 404, "This link does not work"),
    (lambda p: p.rsplit("/", 1)[0] + "/11", 404, "That score is not on the scale"),
    (lambda p: p.rsplit("/", 1)[0] + "/-1", 404, "That score is not on the scale"),
    (lambda p: p.rsplit("/", 1)[0] + "/seven", 404, "That score is not on the scale"),
    (lambda p: tamper(p).replace("/r/", "/feedback/").rsplit("/", 1)[0], 404,
     "This link does not work"),
])
def test_bad_links_get_a_friendly_page_and_record_nothing(client, db, mail, make_path,
                                                          status, title):
    r = client.get(make_path(links_of(mail, "bob@example.com")[3]))
    assert r.status_code == status
    html = r.get_data(as_text=True)
    assert f"<h1>{title}</h1>" in html and "Traceback" not in html
    assert count(db, "clicks") == 0 and count(db, "responses") == 0


def test_expired_link(client, db, mail, monkeypatch):
    real = timed.time.time
    monkeypatch.setattr(timed.time, "time", lambda: real() + 181 * 86400)
    r = client.get(links_of(mail, "bob@example.com")[3])
    assert r.status_code == 410
    assert "<h1>This link has expired</h1>" in r.get_data(as_text=True)
    assert count(db, "clicks") == 0 and count(db, "responses") == 0


def test_head_records_nothing(client, db, mail):
    r = client.head(links_of(mail, "bob@example.com")[3])
    assert r.status_code == 303
    assert count(db, "clicks") == 0 and count(db, "responses") == 0


def unsubscribe_path(msg):
    return msg["List-Unsubscribe"].strip("<>").removeprefix(BASE_URL)


def test_get_unsubscribe_only_asks(client, db, mail):
    path = unsubscribe_path(mail["bob@example.com"])
    for _ in range(3):
        r = client.get(path)
        assert r.status_code == 200
        assert "Unsubscribe bob@example.com?" in r.get_data(as_text=True)
    client.head(path)
    assert count(db, "unsubscribes") == 0


def test_one_click_unsubscribe_needs_no_csrf(client, db, mail):
    path = unsubscribe_path(mail["bob@example.com"])
    r = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200
    assert db.execute("SELECT unsubscribed_at IS NOT NULL FROM contacts "
                      "WHERE email = 'bob@example.com'").fetchone()[0] == 1
    assert db.execute("SELECT method FROM unsubscribes").fetchone()[0] == "one-click"


def test_unsubscribe_form_needs_csrf(client, db, mail):
    path = unsubscribe_path(mail["sven@example.com"])
    assert client.post(path, data={"confirm": "yes"}).status_code == 400
    assert count(db, "unsubscribes") == 0
    html = client.get(path).get_data(as_text=True)
    r = client.post(path, data={"csrf_token": csrf_token(html), "confirm": "yes"})
    assert r.status_code == 200
    assert "Din prenumeration är avslutad" in r.get_data(as_text=True)
    assert count(db, "unsubscribes") == 1


def test_unsubscribe_with_a_score_token_is_refused(client, db, mail):
    token = links_of(mail, "bob@example.com")[0].split("/")[2]
    r = client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 404
    assert count(db, "unsubscribes") == 0


def test_security_headers_and_health(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.get_json() == {"status": "ok"}
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"


def test_unknown_page_is_friendly(client):
    r = client.get("/nope")
    assert r.status_code == 404 and "<h1>Page not found</h1>" in r.get_data(as_text=True)


def test_favicon(client):
    r = client.get("/favicon.ico")
    assert r.status_code == 301 and r.headers["Location"] == "/static/favicon.svg"
    with client.get("/static/favicon.svg") as icon:
        assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    link = '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'
    assert link in client.get("/nope").get_data(as_text=True)  # public pages
    assert link in client.get("/staff/login").get_data(as_text=True)  # staff pages
