"""Commands not covered elsewhere: init, preview; and the translation catalogues."""

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
