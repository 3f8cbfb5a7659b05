"""The email: one compiled skeleton per campaign and language, personalised per recipient."""

import email
import email.policy
import html as html_lib
import re

import pytest
from itsdangerous import timed

from survey_mailer.compose import COLOURS, Composer, strings
from survey_mailer.links import Links

CAMPAIGN = {"id": 7, "brand": "Acmé & <Co>", "subject": "Une question rapide ✓",
            "sender": "Acme <nps@acme.example>", "postal_address": "1 Main St, Springfield"}
LINKS = Links(["k"], "https://s.example")


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


@pytest.fixture(autouse=True)
def frozen_time(monkeypatch):
    # Tokens carry their signing second: freeze it, so a token recomputed here for the
    # comparison is the one composed into the message even across a second boundary.
    monkeypatch.setattr(timed.time, "time", lambda: 1_800_000_000)


@pytest.fixture(scope="module")
def composer():
    return Composer(CAMPAIGN, LINKS)


def test_headers(composer):
    raw = composer.compose(42, "ana@example.com", "Ána García", "es")
    msg = parse(raw)
    token = LINKS.token("unsubscribe", 42)
    assert msg["To"].addresses[0].display_name == "Ána García"
    assert msg["To"].addresses[0].addr_spec == "ana@example.com"
    assert msg["From"] == "Acme <nps@acme.example>"
    assert msg["Subject"] == "Une question rapide ✓"
    assert msg["Message-ID"] == "<survey.7.42@acme.example>"
    assert msg["Date"].datetime is not None
    assert msg["List-Unsubscribe"] == f"<https://s.example/unsubscribe/{token}>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg.get_content_type() == "multipart/alternative"
    assert not msg.defects and all(not p.defects for p in msg.walk())


def test_lines_fit_smtp_and_use_crlf(composer):
    raw = composer.compose(42, "ana@example.com", "Ána", "fr")
    lines = raw.split(b"\r\n")
    assert max(len(line) for line in lines) < 998
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert raw.isascii()


@pytest.mark.parametrize("language", ["en", "es", "fr", "sv"])
def test_eleven_coloured_links_question_and_footer(composer, language):
    msg = parse(composer.compose(3, "x@example.com", "", language))
    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    token = LINKS.token("score", 3)
    hrefs = re.findall(r'href="(https://s\.example/r/[^"]+)"', html)
    assert hrefs[:11] == [f"https://s.example/r/{token}/{n}" for n in range(11)]
    for n, colour in enumerate(COLOURS):
        assert re.search(rf'bgcolor="{colour["bg"]}"[^>]*>\s*<a href="[^"]+/{n}"', html)
    s = strings(language)
    question = s["question"].format(brand="Acmé & <Co>")
    assert question in text
    for label in (question, s["not_likely"], s["very_likely"], s["unsubscribe"]):
        assert label in html_lib.unescape(html)
    assert "1 Main St, Springfield" in html and "1 Main St, Springfield" in text
    assert f"https://s.example/unsubscribe/{LINKS.token('unsubscribe', 3)}" in html
    assert text.count("https://s.example/r/") == 11  # no honeypot in the text part
    assert f'<html lang="{language}"' in html


class ElsewhereLinks(Links):
    """Links built another way: the email must follow the one builder, not its own idea."""

    def score_url(self, token, score):
        return f"https://votes.example/{score}?t={token}"

    def honeypot_url(self, token):
        return f"https://votes.example/trap?t={token}"

    def view_url(self, token):
        return f"https://votes.example/web?t={token}"

    def unsubscribe_url(self, token):
        return f"https://votes.example/leave?t={token}"


def test_every_link_comes_from_the_one_builder():
    links = ElsewhereLinks(["k"], "https://s.example")
    msg = parse(Composer(CAMPAIGN, links).compose(3, "x@example.com", "", "en"))
    score, leave = links.token("score", 3), links.token("unsubscribe", 3)
    html = html_lib.unescape(msg.get_body(("html",)).get_content())
    text = msg.get_body(("plain",)).get_content()
    wanted = {*(links.score_url(score, n) for n in range(11)), links.honeypot_url(score),
              links.unsubscribe_url(leave), links.view_url(score)}
    assert set(re.findall(r'href="([^"]+)"', html)) == wanted
    assert set(re.findall(r"https://\S+", text)) == wanted - {links.honeypot_url(score)}
    assert msg["List-Unsubscribe"] == f"<{links.unsubscribe_url(leave)}>"
    assert "//s.example" not in html + text


def test_brand_is_escaped_in_html(composer):
    html = parse(composer.compose(3, "x@example.com", "<b>Eve</b>", "en")).get_body(
        ("html",)).get_content()
    assert "<Co>" not in html and "&lt;Co&gt;" in html
    assert "<b>Eve</b>" not in html and "&lt;b&gt;Eve&lt;/b&gt;" in html


def test_honeypot_is_hidden(composer):
    html = parse(composer.compose(3, "x@example.com", "", "en")).get_body(
        ("html",)).get_content()
    token = LINKS.token("score", 3)
    tag = re.search(rf'<a href="https://s\.example/r/{re.escape(token)}/hp"[^>]*>', html)
    assert tag
    assert 'aria-hidden="true"' in tag.group(0) and 'tabindex="-1"' in tag.group(0)
    assert "display:none" in tag.group(0)


def test_only_links_and_names_change_between_recipients(composer):
    a = composer.compose(1, "a@example.com", "Ann", "en")
    b = composer.compose(2, "b@example.com", "Bea", "en")
    html_a = parse(a).get_body(("html",)).get_content()
    html_b = parse(b).get_body(("html",)).get_content()
    for delivery, html in ((1, html_a), (2, html_b)):
        for purpose in ("score", "unsubscribe"):
            html = html.replace(LINKS.token(purpose, delivery), "TOKEN")
        if delivery == 1:
            normal_a = html.replace("Ann", "NAME")
        else:
            normal_b = html.replace("Bea", "NAME")
    assert normal_a == normal_b


def test_greeting_without_a_name(composer):
    text = parse(composer.compose(1, "a@example.com", "", "sv")).get_body(
        ("plain",)).get_content()
    assert [line for line in text.splitlines() if line][1] == "Hej!"
    text = parse(composer.compose(1, "a@example.com", "Sven", "sv")).get_body(
        ("plain",)).get_content()
    assert [line for line in text.splitlines() if line][1] == "Hej Sven!"


@pytest.mark.parametrize("language", ["en", "es", "fr", "sv"])
def test_the_first_link_of_each_part_is_never_a_score(language):
    """Link previews and unfurls fetch a message's first URL (SPEC 7): the web version."""
    msg = parse(Composer(CAMPAIGN, LINKS).compose(3, "x@example.com", "Ana", language))
    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    view = LINKS.view_url(LINKS.token("score", 3))
    assert re.search(r'href="([^"]+)"', html).group(1) == view
    assert re.search(r"https?://\S+", text).group(0) == view
    assert strings(language)["view_online"] in html_lib.unescape(html)


def test_compiles_once_per_language(monkeypatch):
    import survey_mailer.compose as compose

    calls = []
    original = compose.mjml2html
    monkeypatch.setattr(compose, "mjml2html", lambda s: calls.append(1) or original(s))
    composer = Composer(CAMPAIGN, LINKS)
    for i in range(20):
        composer.compose(i, f"u{i}@example.com", "", ["en", "fr"][i % 2])
    assert len(calls) == 2


def test_whole_button_is_the_link_in_outlook(composer):
    # Outlook for Windows ignores padding on links: only the digit would be clickable. The
    # padding is inside each link there (em spaces widened by mso-font-width, the text
    # raised by mso-text-raise), in markup only Outlook reads; the cell has none of its own.
    html = parse(composer.compose(3, "x@example.com", "", "en")).get_body(
        ("html",)).get_content()
    cells = re.findall(r'<td class="nps-\w+"([^>]*)>\s*(<a .*?</a>)\s*</td>', html, re.S)
    assert len(cells) == 11
    for n, (cell, link) in enumerate(cells):
        assert "padding" not in cell
        side = "100%" if n == 10 else "130%"
        assert re.fullmatch(
            rf'<a href="https://s\.example/r/[^"]+/{n}" [^>]*mso-padding-alt:0;[^>]*>'
            rf'<!--\[if mso\]><i style="mso-font-width:{side};mso-text-raise:15pt;" hidden>'
            rf'&emsp;</i><span style="mso-text-raise:7.5pt;"><!\[endif\]-->{n}'
            rf'<!--\[if mso\]></span><i style="mso-font-width:{side};" hidden>&emsp;&#8203;'
            rf'</i><!\[endif\]--></a>', link), link


def test_each_language_gets_its_own_subject_or_the_english_one():
    campaign = {**CAMPAIGN, "subject": "A quick question", "subject_es": "Una pregunta",
                "subject_fr": "", "subject_sv": ""}
    composer = Composer(campaign, LINKS)
    assert parse(composer.compose(1, "a@example.com", "", "es"))["Subject"] == "Una pregunta"
    assert parse(composer.compose(2, "b@example.com", "", "fr"))["Subject"] == \
        "A quick question"
    assert "<title>Una pregunta</title>" in parse(composer.compose(
        3, "c@example.com", "", "es")).get_body(("html",)).get_content()
