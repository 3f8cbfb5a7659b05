"""Commands not covered elsewhere: init, preview; and the translation catalogues."""

import re
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

TRANSLATIONS = Path(__file__).resolve().parent.parent / "landing" / "translations"


def test_init_is_idempotent(runner, settings):
    first = runner("init")
    assert first.exit_code == 0
    assert first.output.startswith(f"Database {settings['SURVEY_DATABASE']}: applied m001_")
    second = runner("init")
    assert second.output == f"Database {settings['SURVEY_DATABASE']} is up to date\n"


def test_preview_writes_html_for_a_language(runner, db, tmp_path):
    runner("campaign", "create", "--name", "Q", "--subject", "S",
           "--sender", "Acme <nps@acme.test>")
    out = tmp_path / "preview.html"
    result = runner("campaign", "preview", "1", "--language", "fr", "--output", str(out))
    assert result.output == f"Wrote {out}\n"
    html = out.read_text(encoding="utf-8")
    assert "Quelle est la probabilité que vous recommandiez Acme" in html
    assert "@@" not in html  # no placeholder left


def test_preview_rejects_unknown_language(runner, db):
    result = runner("campaign", "preview", "1", "--language", "de")
    assert result.exit_code == 2
    assert "'de' is not one of 'en', 'es', 'fr', 'sv'" in result.output


@pytest.mark.parametrize("language", ["es", "fr", "sv"])
def test_compiled_catalogues_match_their_sources(language):
    folder = TRANSLATIONS / language / "LC_MESSAGES"
    with (folder / "messages.po").open("rb") as f:
        po = {m.id: m.string for m in read_po(f) if m.id}
    with (folder / "messages.mo").open("rb") as f:
        mo = {m.id: m.string for m in read_mo(f) if m.id}
    assert mo == po, "run `make translations` to recompile the .mo files"
    assert all(po.values()), "every message needs a translation"


def test_a_file_that_is_not_a_database_is_one_line(runner, settings, monkeypatch, tmp_path):
    bogus = tmp_path / "notes.txt"
    bogus.write_text("these are my notes, not a database " * 50)
    monkeypatch.setenv("SURVEY_DATABASE", str(bogus))
    result = runner("contacts", "list")
    assert result.exit_code == 1
    assert result.output == (f"Error: database {bogus}: file is not a database (check "
                             "SURVEY_DATABASE and that the file is a survey database, then run "
                             "survey-mailer init)\n")


# Rough edges a new user hit (issue 10, items 14 and 15) ---------------------------------


def test_a_closed_pipe_ends_quietly(settings, contacts_csv):
    """`contacts list | head -1`: no "Broken pipe" error, exit status 0."""
    import os
    import subprocess
    import sys

    cli = str(Path(sys.executable).parent / "survey-mailer")
    many = Path(settings["SURVEY_DATABASE"]).parent / "many.csv"
    many.write_text("email\n" + "".join(f"p{i}@example.com\n" for i in range(5000)))
    subprocess.run([cli, "contacts", "import", str(many)], check=True, capture_output=True)
    result = subprocess.run(f"'{cli}' contacts list | head -1", shell=True,
                            capture_output=True, text=True, env=dict(os.environ),
                            executable="/bin/bash")
    assert result.stdout.startswith("p0@example.com\t")
    assert result.stderr == ""


def test_an_unknown_attribute_is_named(runner, db, contacts_csv):
    runner("contacts", "import", str(contacts_csv))
    created = runner("campaign", "create", "--name", "N", "--subject", "S",
                     "--sender", "nps@acme.test", "--segment", "nosuch=1")
    assert created.exit_code == 1
    assert created.output == ('Error: no contact has the attribute "nosuch": use company, '
                              "language, name or an attribute column of the imported "
                              "contacts\n")
    assert runner("campaign", "create", "--name", "N", "--subject", "S", "--sender",
                  "nps@acme.test", "--segment", "plan=pro").exit_code == 0
    report = runner("report", "--by", "attribute:nosuch")
    assert report.exit_code == 1
    assert report.output == ('Error: no contact has the attribute "nosuch": group by an '
                             "attribute column of the imported contacts\n")


def test_a_campaign_without_postal_address_is_refused(runner, db, contacts_csv, settings,
                                                      monkeypatch):
    monkeypatch.delenv("SURVEY_POSTAL_ADDRESS")
    runner("contacts", "import", str(contacts_csv))
    runner("campaign", "create", "--name", "N", "--subject", "S", "--sender", "nps@acme.test")
    result = runner("campaign", "send", "1")
    assert result.exit_code == 1
    assert result.output == ("Error: campaign 1 has no postal address for the email's footer: "
                             "set SURVEY_POSTAL_ADDRESS, or create the campaign with "
                             "--postal-address\n")
    assert not Path(settings["SURVEY_OUTBOX_DIR"]).exists() or \
        not list(Path(settings["SURVEY_OUTBOX_DIR"]).glob("*.eml"))
    monkeypatch.setenv("SURVEY_POSTAL_ADDRESS", "9 Rue Neuve, Lyon")
    assert runner("campaign", "send", "1").exit_code == 0
    body = next(Path(settings["SURVEY_OUTBOX_DIR"]).glob("*.eml")).read_text()
    assert "9 Rue Neuve, Lyon" in body


def test_a_loopback_base_url_in_production_is_warned(runner, db, contacts_csv, monkeypatch):
    runner("contacts", "import", str(contacts_csv))
    runner("campaign", "create", "--name", "N", "--subject", "S", "--sender", "nps@acme.test")
    monkeypatch.setenv("SURVEY_BASE_URL", "http://localhost:5000")
    result = runner("campaign", "send", "1", "--dry-run")
    assert result.stderr.startswith("Warning: SURVEY_BASE_URL is http://localhost:5000, a "
                                    "loopback address: recipients' clicks will not reach")
    monkeypatch.setenv("SURVEY_ENV", "development")
    assert runner("campaign", "send", "1", "--dry-run").stderr == ""


def test_nps_is_signed_and_campaigns_named(runner, db, sent_campaign):
    from survey_mailer import humans, responses

    for email, score in (("ana@example.com", 10), ("bob@example.com", 3),
                         ("chloe@example.com", 10)):
        delivery_id = db.execute("SELECT d.id FROM deliveries d JOIN contacts c ON "
                                 "c.id = d.contact_id WHERE c.email = ?", [email]).fetchone()[0]
        responses.save_answer(db, responses.delivery(db, delivery_id), score=score)
    humans.fold(db)
    table = runner("report", "--by", "campaign").output.splitlines()
    assert table[1].split()[:2] == ["all", "+33.3"]
    assert table[2].split()[:3] == [str(sent_campaign), "Q4", "+33.3"]
    single = runner("report", "--campaign", str(sent_campaign)).output.splitlines()
    assert single[1].split()[:2] == ["Q4", "+33.3"]
    import json

    data = json.loads(runner("report", "--by", "campaign", "--format", "json").output)
    assert data["groups"][0]["name"] == "Q4" and data["nps"] == 33.3


def test_progress_shows_time_left(settings, contacts_csv, tmp_path):
    """On a terminal, the progress bar says how long the rest will take."""
    import os
    import subprocess
    import sys

    cli = str(Path(sys.executable).parent / "survey-mailer")
    env = dict(os.environ, SURVEY_SEND_RATE="4")
    subprocess.run([cli, "contacts", "import", str(contacts_csv)], check=True, env=env,
                   capture_output=True)
    subprocess.run([cli, "campaign", "create", "--name", "N", "--subject", "S", "--sender",
                    "nps@acme.test"], check=True, env=env, capture_output=True)
    typescript = tmp_path / "typescript"
    subprocess.run(["script", "-qec", f"'{cli}' campaign send 1", str(typescript)], env=env,
                   check=True, capture_output=True)
    shown = typescript.read_text(errors="replace")
    assert re.search(r"1 sent, 0 failed, [\d.]+/s, \d+s left", shown), shown
