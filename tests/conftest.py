"""Fixtures: settings on a temporary database and outbox, the app, the CLI, helpers."""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from landing import create_app
from survey_mailer import config as config_
from survey_mailer import db as db_
from survey_mailer import links as links_
from survey_mailer.cli import cli

SECRET = "test-secret-key-0123456789abcdef"
BASE_URL = "http://survey.test"


@pytest.fixture
def settings(tmp_path, monkeypatch) -> dict[str, str]:
    """Point every setting at the test's own files; production mode with a test key."""
    values = {
        "SURVEY_DATABASE": str(tmp_path / "survey.db"),
        "SURVEY_OUTBOX_DIR": str(tmp_path / "outbox"),
        "SURVEY_SECRET_KEY": SECRET,
        "SURVEY_ENV": "production",
        "SURVEY_BASE_URL": BASE_URL,
        "SURVEY_MAIL_BACKEND": "outbox",
    }
    for setting in config_.SETTINGS:
        monkeypatch.delenv(setting.name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def config(settings):
    return config_.load()


@pytest.fixture
def db(settings):
    database = db_.connect(settings["SURVEY_DATABASE"])
    db_.migrate(database)
    yield database
    database.close()


@pytest.fixture
def links(config):
    return links_.from_config(config)


@pytest.fixture
def app(settings, db):
    app = create_app({"TESTING": True, "RATELIMIT_ENABLED": False})
    yield app


@pytest.fixture
def client(app):
    return app.test_client()


class Runner:
    """Invoke `survey-mailer` in-process; return the click Result."""

    def __init__(self):
        self._runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None):
        return self._runner.invoke(cli, list(args), input=input, catch_exceptions=False)


@pytest.fixture
def runner(settings):
    return Runner()


@pytest.fixture
def contacts_csv(tmp_path) -> Path:
    path = tmp_path / "contacts.csv"
    path.write_text(
        "email,name,company,language,plan\n"
        "ana@example.com,Ana García,Acme,es,pro\n"
        "bob@example.com,Bob Smith,Acme,en,free\n"
        "chloe@example.com,Chloé Martin,Globex,fr,pro\n"
        "sven@example.com,Sven Ek,Globex,sv,free\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def sent_campaign(runner, contacts_csv, settings) -> int:
    """Import four contacts (one per language), create a campaign, send it to the outbox."""
    assert runner("contacts", "import", str(contacts_csv)).exit_code == 0
    result = runner("campaign", "create", "--name", "Q4", "--subject", "A quick question",
                    "--sender", "Acme <nps@acme.test>", "--postal-address", "1 Main St")
    campaign_id = int(result.output.strip().splitlines()[-1])
    assert runner("campaign", "send", str(campaign_id)).exit_code == 0
    return campaign_id


def outbox(settings) -> dict[str, email.message.EmailMessage]:
    """Return the outbox's messages by recipient address."""
    messages = {}
    for path in sorted(Path(settings["SURVEY_OUTBOX_DIR"]).glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        messages[msg["To"].addresses[0].addr_spec] = msg
    return messages


def score_links(msg) -> list[str]:
    """Return the eleven score links of a message's plain-text part, as paths."""
    text = msg.get_body(("plain",)).get_content()
    return re.findall(rf"{re.escape(BASE_URL)}(/r/[^/\s]+/\d+)", text)


def csrf_token(html: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
