"""Fixtures: settings on a temporary database and outbox, the app, the CLI, helpers."""

from __future__ import annotations

import contextlib
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
        "SURVEY_POSTAL_ADDRESS": "1 Test Street, Testville",
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


BROWSER_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
              "Gecko) Chrome/131.0.0.0 Safari/537.36")


def person_click(client, path: str, *, ua: str = BROWSER_UA, ip: str = "198.51.100.7"):
    """A person's click on a score link: the browser follows it to the landing page and
    shows it in a visible tab (`show`). Return the landing page."""
    reply = client.get(path, headers={"User-Agent": ua}, environ_base={"REMOTE_ADDR": ip})
    assert reply.status_code == 303
    return show(client, reply.headers["Location"], ua=ua, ip=ip)


def show(client, landing: str, *, ua: str = BROWSER_UA, ip: str = "198.51.100.7"):
    """Open a landing page in a visible, focused tab: its "page seen" beacon goes, as
    human.js sends it. Return the page."""
    environ = {"REMOTE_ADDR": ip}
    page = client.get(landing, headers={"User-Agent": ua}, environ_base=environ)
    assert page.status_code == 200
    seen, score = re.search(r'data-seen="([^"]+)" data-score="(\d+)"',
                            page.get_data(as_text=True)).groups()
    reply = client.post(seen, data={"score": score}, headers={"User-Agent": ua},
                        environ_base=environ)
    assert reply.status_code == 204
    return page


def csrf_token(html: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


# Real servers: started in fixtures, stopped by their own process id ---------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, process, timeout: float = 20.0) -> None:
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def stop_process(process) -> None:
    import os
    import signal

    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except Exception:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)


# The tests run as root, whom file modes do not stop. A command run behind this prefix is
# still root (so it reaches the checkout and its venv wherever CI cloned them) but has lost
# CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH: a 444 file or a 555 folder stops it, as it
# stops any user.
RESPECT_FILE_MODES = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


class Gunicorn:
    """The app under a real gunicorn with 2 sync workers on a free loopback port.

    `url` is its base URL (its SURVEY_BASE_URL), `process` the arbiter (its children are
    the workers), `log` the file gunicorn writes to. `bound_by_file_modes` runs it without
    the capabilities that let root ignore file modes (RESPECT_FILE_MODES).
    """

    def __init__(self, env: dict[str, str], log: Path, bound_by_file_modes: bool = False):
        import subprocess
        import sys

        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        env = {**env, "SURVEY_BASE_URL": self.url}
        prefix = RESPECT_FILE_MODES if bound_by_file_modes else []
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [*prefix, str(Path(sys.executable).parent / "gunicorn"), "--bind",
                 f"127.0.0.1:{port}", "--workers", "2", "--chdir",
                 str(Path(__file__).resolve().parent.parent), "wsgi:app"],
                stdout=out, stderr=subprocess.STDOUT, env=env)

    def workers(self) -> list[int]:
        """Return the live worker processes' ids: the arbiter's children, as the kernel lists
        them, but for those dead and not yet reaped."""
        children = []
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            try:
                children += map(int, (task / "children").read_text().split())
            except FileNotFoundError:  # a thread that just ended
                pass
        live = []
        for pid in children:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
            except FileNotFoundError:  # reaped meanwhile
                continue
            if state not in ("Z", "X"):
                live.append(pid)
        return live

    def stop(self) -> None:
        stop_process(self.process)


@pytest.fixture
def live_server(settings, db, tmp_path):
    """Run the app under a real gunicorn (2 workers) on a free loopback port.

    Yields the base URL. The settings fixture's environment is the server's, with
    SURVEY_BASE_URL pointing at the server so links in sent emails work against it.
    """
    with gunicorn_server(settings, tmp_path) as server:
        yield server.url


@contextlib.contextmanager
def gunicorn_server(settings, tmp_path, bound_by_file_modes: bool = False):
    """Start gunicorn on the test's settings; SURVEY_BASE_URL becomes its URL. Yield it
    once it answers /healthz (or at once when `bound_by_file_modes`: it may not be
    healthy)."""
    import os

    server = Gunicorn(dict(os.environ), tmp_path / "gunicorn.log", bound_by_file_modes)
    os.environ["SURVEY_BASE_URL"] = server.url  # monkeypatched by `settings`: undone after
    settings["SURVEY_BASE_URL"] = server.url
    try:
        if not bound_by_file_modes:
            wait_for_http(server.url + "/healthz", server.process)
        yield server
    finally:
        server.stop()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium driven by Playwright (never `playwright install`)."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: `make test` installs it (apt-get install "
                    "chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                    headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def artifacts(tmp_path_factory) -> Path:
    """A folder under pytest's temp dir for screenshots kept as test artifacts."""
    path = tmp_path_factory.getbasetemp() / "screenshots"
    path.mkdir(exist_ok=True)
    return path


def send_campaign(db, sender, campaign_id: int, **options):
    """Send a campaign through a sender built by the test, as `campaign send` does."""
    from survey_mailer import campaigns

    return campaigns.send(db, sender, config_.load(), campaign_id, **options)
