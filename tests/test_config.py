"""The settings registry: defaults, validation, no default secret, documented in README."""

import re
from pathlib import Path

import pytest

from landing import create_app
from survey_mailer import config as config_
from survey_mailer.errors import ConfigError

README = Path(__file__).resolve().parent.parent / "README.md"


def test_defaults(monkeypatch):
    for s in config_.SETTINGS:
        monkeypatch.delenv(s.name, raising=False)
    config = config_.load()
    assert config["SURVEY_DATABASE"] == "instance/survey.db"
    assert config["SURVEY_ENV"] == "production"
    assert config["SURVEY_BASE_URL"] == "http://127.0.0.1:5000"
    assert config["SURVEY_MAIL_BACKEND"] == "outbox"
    assert config["SURVEY_OUTBOX_DIR"] == "instance/outbox"
    assert (config["SURVEY_SMTP_HOST"], config["SURVEY_SMTP_PORT"]) == ("localhost", 25)
    assert config["SURVEY_SMTP_SECURITY"] == "none"
    assert config["SURVEY_SEND_RATE"] is None
    assert config["SURVEY_RESURVEY_DAYS"] == 90
    assert config["SURVEY_SCORE_POLICY"] == "balanced"
    assert config["SURVEY_SECRET_KEY"] is None


def test_every_spec_setting_is_registered():
    names = {s.name for s in config_.SETTINGS}
    assert {
        "SURVEY_DATABASE", "SURVEY_SECRET_KEY", "SURVEY_ENV", "SURVEY_BASE_URL",
        "SURVEY_MAIL_BACKEND", "SURVEY_OUTBOX_DIR", "SURVEY_SMTP_HOST", "SURVEY_SMTP_PORT",
        "SURVEY_SMTP_USERNAME", "SURVEY_SMTP_PASSWORD", "SURVEY_SMTP_SECURITY",
        "SURVEY_SEND_RATE", "SURVEY_SES_CONFIGURATION_SET", "SURVEY_SUPPORT_EMAIL",
        "SURVEY_RESURVEY_DAYS", "SURVEY_SCORE_POLICY",
    } <= names
    assert all(s.help for s in config_.SETTINGS)


def test_readme_documents_every_setting():
    documented = set(re.findall(r"^\| `(SURVEY_[A-Z0-9_]+)` \|", README.read_text(), re.M))
    assert documented == {s.name for s in config_.SETTINGS}


@pytest.mark.parametrize(("name", "value", "message"), [
    ("SURVEY_MAIL_BACKEND", "pigeon",
     "SURVEY_MAIL_BACKEND='pigeon' is not valid: use one of outbox, smtp, ses"),
    ("SURVEY_SCORE_POLICY", "lenient",
     "SURVEY_SCORE_POLICY='lenient' is not valid: use one of balanced, strict"),
    ("SURVEY_RESURVEY_DAYS", "ninety",
     "SURVEY_RESURVEY_DAYS='ninety' is not a number: "
     "a contact is not surveyed again within this many days"),
    ("SURVEY_SEND_RATE", "-1", "SURVEY_SEND_RATE='-1' must not be negative"),
    ("SURVEY_STAFF_SESSION_HOURS", "0", "SURVEY_STAFF_SESSION_HOURS='0' must be more than 0"),
])
def test_bad_values_name_the_value(settings, monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        config_.load()
    assert str(info.value) == message


def test_bad_value_on_the_command_line_is_one_line(runner, monkeypatch):
    monkeypatch.setenv("SURVEY_MAIL_BACKEND", "pigeon")
    result = runner("campaign", "list")
    assert result.exit_code == 1
    assert result.output == ("Error: SURVEY_MAIL_BACKEND='pigeon' is not valid: "
                             "use one of outbox, smtp, ses\n")


MISSING_SECRET = ("SURVEY_SECRET_KEY is not set: set it to a long random string "
                  "(or SURVEY_ENV=development for a local trial)")


def test_app_refuses_to_start_without_secret(settings, monkeypatch):
    monkeypatch.delenv("SURVEY_SECRET_KEY")
    with pytest.raises(ConfigError) as info:
        create_app()
    assert str(info.value) == MISSING_SECRET


def test_send_refuses_without_secret(runner, contacts_csv, monkeypatch):
    runner("contacts", "import", str(contacts_csv))  # needs no secret
    runner("campaign", "create", "--name", "Q", "--subject", "S", "--sender", "a@b.example")
    monkeypatch.delenv("SURVEY_SECRET_KEY")
    result = runner("campaign", "send", "1")
    assert result.exit_code == 1
    assert result.output == f"Error: {MISSING_SECRET}\n"


def test_development_generates_and_keeps_a_random_key(settings, monkeypatch, tmp_path):
    monkeypatch.delenv("SURVEY_SECRET_KEY")
    monkeypatch.setenv("SURVEY_ENV", "development")
    first = config_.load().secret_keys
    assert len(first) == 1 and len(first[0]) >= 32
    assert config_.load().secret_keys == first  # kept beside the database
    assert (tmp_path / "development-secret-key").exists()


def test_rotation_list_newest_last(settings, monkeypatch):
    monkeypatch.setenv("SURVEY_SECRET_KEY", "old, new")
    assert config_.load().secret_keys == ["old", "new"]
    app = create_app({"TESTING": True})
    assert app.config["SECRET_KEY"] == "new"
    assert app.config["SECRET_KEY_FALLBACKS"] == ["old"]
