"""The whole path over real HTTP: CLI import and send, links from .eml files, gunicorn, report."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
import requests
from conftest import csrf_token, outbox

pytestmark = pytest.mark.slow

# A person's browser; the landing pages treat the form submission as the human signal.
BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like "
                         "Gecko) Chrome/120.0 Safari/537.36"}


def links_of(message, base_url: str) -> dict[int, str]:
    """Return {score: URL} from a message's plain-text part."""
    text = message.get_body(("plain",)).get_content()
    found = re.findall(rf"({re.escape(base_url)}/r/[^/\s]+/(\d+))", text)
    return {int(score): url for url, score in found}


def answer(base_url: str, message, score: int, page: str, form: dict) -> str:
    """Click a score link, open its landing page, post the form; return the thank-you HTML."""
    url = links_of(message, base_url)[score]
    token = url.split("/")[-2]
    with requests.Session() as session:
        session.headers.update(BROWSER)
        click = session.get(url, allow_redirects=False, timeout=10)
        assert click.status_code == 303
        assert click.headers["Location"] == f"/{page}/{token}"
        landing = session.get(f"{base_url}/{page}/{token}", timeout=10)
        assert landing.status_code == 200
        # The form comes with the clicked score chosen.
        assert f'<input checked id="score-{score}" name="score"' in landing.text
        posted = session.post(f"{base_url}/{page}/{token}", timeout=10,
                              data={"csrf_token": csrf_token(landing.text), **form})
        assert posted.status_code == 200
        return posted.text


def test_contacts_to_report_over_http(live_server, runner, contacts_csv, settings):
    # live_server first: it points SURVEY_BASE_URL at itself, so the emails link to it.
    imported = runner("contacts", "import", str(contacts_csv))
    assert imported.output == "4 added, 0 updated\n"
    created = runner("campaign", "create", "--name", "Q4", "--subject", "A quick question",
                     "--sender", "Acme <nps@acme.test>", "--postal-address", "1 Main St")
    campaign_id = created.output.strip().splitlines()[-1]
    sent = runner("campaign", "send", campaign_id)
    assert sent.stdout == "4 sent, 0 failed, 0 skipped, 0 left to send\n"
    assert "a loopback address" in sent.stderr  # production on 127.0.0.1: warned
    emails = outbox(settings)
    assert sorted(emails) == ["ana@example.com", "bob@example.com", "chloe@example.com",
                              "sven@example.com"]

    # A detractor with a comment, in Spanish.
    thanks = answer(live_server, emails["ana@example.com"], 2, "feedback",
                    {"score": "2", "comment": "Demasiado caro", "contact_ok": "y"})
    assert "Gracias por su respuesta" in thanks
    # A promoter leaves a testimonial, in English.
    thanks = answer(live_server, emails["bob@example.com"], 10, "testimonial",
                    {"score": "10", "comment": "Saved us hours.", "display_name": "Bob S.",
                     "testimonial_consent": "y"})
    assert "Thank you for your answer" in thanks
    # A passive clicks 7, then changes their mind to 8 on the page (still passive).
    answer(live_server, emails["chloe@example.com"], 7, "comment",
           {"score": "8", "comment": "Plus de rapports"})
    # Sven never answers.

    report = json.loads(runner("report", "--format", "json").output)
    # p = d = 1/3, n = 3: NPS 0, margin 1.96 * 100 * sqrt((2/3 - 0) / 3) = 92.4
    assert {k: report[k] for k in ("nps", "margin_of_error", "responses", "promoters",
                                   "passives", "detractors", "sent", "response_rate",
                                   "filtered_automated")} == {
        "nps": 0.0, "margin_of_error": 92.4, "responses": 3, "promoters": 1, "passives": 1,
        "detractors": 1, "sent": 4, "response_rate": 0.75, "filtered_automated": 0}

    exported = list(csv.DictReader(io.StringIO(runner("export", "responses").output)))
    assert sorted((r["email"], r["score"], r["segment"], r["comment"],
                   r["testimonial_consent"]) for r in exported) == [
        ("ana@example.com", "2", "detractor", "Demasiado caro", "0"),
        ("bob@example.com", "10", "promoter", "Saved us hours.", "1"),
        ("chloe@example.com", "8", "passive", "Plus de rapports", "0"),
    ]
