"""A campaign's logo and accent colour (SPEC 12): in the email, on the landing pages, and
refused with a clear reason when unfit."""

# ruff: noqa: F811  (fixtures imported from staff_support are parameters here)

from __future__ import annotations

import base64
import io
import re

import pytest
from conftest import csrf_token, outbox, score_links
from staff_support import marketer  # noqa: F401

from survey_mailer import branding
from survey_mailer.errors import SurveyError

# A 1x1 PNG.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhf"
                       "DwAChwGA60e6kgAAAABJRU5ErkJggg==")


@pytest.mark.parametrize("value, expected", [
    ("", ""), ("#1A7F37", "#1a7f37"), ("#036", "#003366"), (" #0969da ", "#0969da")])
def test_an_accent_dark_enough_for_white_text_is_kept(value, expected):
    assert branding.check_accent(value) == expected


@pytest.mark.parametrize("value, message", [
    ("#ffff00", "accent colour #ffff00 is too light: white text on it has a contrast of "
                "1.1:1, and buttons need 4.5:1 (WCAG AA); choose a darker colour"),
    ("green", 'accent colour "green" is not a colour like #1a7f37'),
    ("#12345g", 'accent colour "#12345g" is not a colour like #1a7f37'),
])
def test_an_unfit_accent_is_refused_saying_why(value, message):
    with pytest.raises(SurveyError) as raised:
        branding.check_accent(value)
    assert str(raised.value) == message


def upload(client, campaign_id: int, data: bytes, name: str = "logo.png"):
    token = csrf_token(client.get(f"/staff/campaigns/{campaign_id}").text)
    return client.post(f"/staff/campaigns/{campaign_id}/logo",
                       data={"csrf_token": token, "logo": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def test_logo_and_accent_in_the_email_and_on_the_pages(marketer, db, runner, settings, client):
    created = runner("campaign", "create", "--name", "Q4", "--subject", "A quick question",
                     "--sender", "Acme <nps@acme.test>", "--postal-address", "1 Main St")
    campaign_id = int(created.output.strip().splitlines()[-1])
    token = csrf_token(marketer.get(f"/staff/campaigns/{campaign_id}/edit").text)
    reply = marketer.post(f"/staff/campaigns/{campaign_id}/edit", data={
        "csrf_token": token, "name": "Q4", "subject": "A quick question",
        "sender": "Acme <nps@acme.test>", "postal_address": "1 Main St", "accent": "#1A7F37"})
    assert reply.status_code == 303
    assert upload(marketer, campaign_id, PNG).status_code == 303
    path = branding.logo_path(db, campaign_id)
    assert re.fullmatch(rf"/logo/{campaign_id}/[0-9a-f]{{16}}\.png", path)
    served = client.get(path)
    assert (served.status_code, served.mimetype, served.data) == (200, "image/png", PNG)
    assert "immutable" in served.headers["Cache-Control"]
    assert client.get(f"/logo/{campaign_id}/0000000000000000.png").status_code == 404
    assert runner("campaign", "send", str(campaign_id)).exit_code == 0
    msg = outbox(settings)["bob@example.com"]
    html = msg.get_body(("html",)).get_content()
    assert f'src="http://survey.test{path}"' in html and 'alt="Acme"' in html
    assert "border-top:4px solid #1a7f37" in html
    # The landing page: the logo, and the accent as a style sheet (no inline style).
    page = client.get(score_links(msg)[9], follow_redirects=True).text
    assert f'<img class="logo" src="{path}" alt="Acme">' in page
    css = client.get("/accent/1a7f37.css")
    assert css.mimetype == "text/css" and "--accent: #1a7f37;" in css.text
    assert '<link rel="stylesheet" href="/accent/1a7f37.css">' in page
    assert client.get("/accent/ffff00.css").status_code == 404  # too light: never served


@pytest.mark.parametrize("data, name, message", [
    (b"GIF89a....", "logo.gif", "No logo: the logo is not a PNG or JPEG image."),
    (PNG + b"0" * (201 * 1024), "big.png", "No logo: the logo is 201 KB: keep it under 200 KB"),
])
def test_an_unfit_logo_is_refused_saying_why(marketer, db, runner, data, name, message):
    created = runner("campaign", "create", "--name", "Q4", "--subject", "Hi",
                     "--sender", "Acme <nps@acme.test>")
    campaign_id = int(created.output.strip().splitlines()[-1])
    assert upload(marketer, campaign_id, data, name).status_code == 303
    assert message in marketer.get(f"/staff/campaigns/{campaign_id}").text
    assert branding.logo_path(db, campaign_id) is None


def test_a_too_light_accent_in_the_form_is_a_400(marketer, db, runner):
    token = csrf_token(marketer.get("/staff/campaigns/new").text)
    reply = marketer.post("/staff/campaigns/new", data={
        "csrf_token": token, "name": "Q4", "subject": "Hi", "sender": "Acme <nps@acme.test>",
        "accent": "#ffff00"})
    assert reply.status_code == 400 and "is too light" in reply.text
