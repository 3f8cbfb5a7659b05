"""The themes page, hand tags on a case, and theme counts on the dashboard (SPEC 13)."""
# ruff: noqa: F811  (fixtures imported from staff_support are parameters here)

from __future__ import annotations

from conftest import csrf_token
from staff_support import answer, deliveries, staff_client, staff_user  # noqa: F401

from survey_mailer import config as config_
from survey_mailer import themes
from survey_mailer.worker import Worker


def test_a_rule_from_the_page_tags_old_comments_on_the_next_round(sent_campaign, db,
                                                                  staff_client):
    ids = deliveries(db, sent_campaign)
    ana = answer(db, ids["ana@example.com"], 2, "La aplicación es muy LENTA")
    sven = answer(db, ids["sven@example.com"], 6, "Appen är långsam")
    bob = answer(db, ids["bob@example.com"], 10, "Quick and friendly")
    page = staff_client.get("/staff/themes")
    saved = staff_client.post("/staff/themes", data={
        "csrf_token": csrf_token(page.text), "name": "Speed",
        "words": "lent*\nlångsam, slow*"})
    assert saved.status_code == 303
    assert "Rules changed: the worker's next round tags every comment again" in staff_client.get(
        "/staff/themes").text
    Worker(db, config_.load()).round()
    assert themes.of_responses(db, [ana, sven, bob]) == {ana: ["Speed"], sven: ["Speed"]}
    listing = staff_client.get("/staff/themes").text
    assert "2 comments" in listing and "(2 detractors, 0 passives, 0 promoters)" in listing
    dashboard = staff_client.get("/staff/?themes=30").text
    assert "Themes in comments" in dashboard
    assert ('<td data-label="Theme">Speed</td><td data-label="Detractors">2</td>'
            in dashboard)


def test_a_theme_without_a_name_or_with_nonsense_is_refused(staff_client):
    page = staff_client.get("/staff/themes")
    refused = staff_client.post("/staff/themes", data={
        "csrf_token": csrf_token(page.text), "name": "Noise", "words": "!!!"})
    assert refused.status_code == 400
    assert "&#34;!!!&#34; has no letters or digits to match" in refused.text
    empty = staff_client.post("/staff/themes", data={"csrf_token": csrf_token(page.text),
                                                     "name": "", "words": "x"})
    assert empty.status_code == 400


def test_staff_tag_a_case_by_hand(sent_campaign, db, staff_client):
    ana = answer(db, deliveries(db, sent_campaign)["ana@example.com"], 3, "Invoices wrong")
    billing = themes.save(db, "Billing", "invoice*")
    pricing = themes.save(db, "Pricing", "price")
    page = staff_client.get(f"/staff/followups/{ana}")
    tagged = staff_client.post(f"/staff/followups/{ana}/themes", data={
        "csrf_token": csrf_token(page.text), "theme": str(pricing)})
    assert tagged.status_code == 303
    Worker(db, config_.load()).round()  # the rules re-tag; the hand tag stays
    assert themes.of_responses(db, [ana]) == {ana: ["Billing", "Pricing"]}
    staff_client.post(f"/staff/followups/{ana}/themes", data={
        "csrf_token": csrf_token(page.text), "theme": str(billing), "on": "0"})
    assert themes.of_responses(db, [ana]) == {ana: ["Pricing"]}
    bad = staff_client.post(f"/staff/followups/{ana}/themes", data={
        "csrf_token": csrf_token(page.text), "theme": "999"})
    assert bad.status_code == 303
    assert "Choose a theme to tag." in staff_client.get(f"/staff/followups/{ana}").text


def test_deleting_a_theme_twice_is_friendly(staff_client, db):
    speed = themes.save(db, "Speed", "slow*")
    page = staff_client.get("/staff/themes")
    for expected in ("Theme deleted with its tags.", "That theme was deleted already."):
        done = staff_client.post(f"/staff/themes/{speed}/delete",
                                 data={"csrf_token": csrf_token(page.text)})
        assert done.status_code == 303
        assert expected in staff_client.get("/staff/themes").text
    assert themes.list_themes(db) == []
