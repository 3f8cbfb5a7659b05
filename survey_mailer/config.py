"""One registry of settings: each has a name, a default and a help line.

Settings come from environment variables. The README's table is checked against
`SETTINGS` by a test, so a setting added here must be documented there too.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ConfigError
from .scores import POLICIES


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None
    help: str
    choices: tuple[str, ...] = ()
    kind: type = str
    positive: bool = False  # numbers only: zero is refused too
    check: Callable[[str], object] | None = None  # raises ValueError for a bad value


SETTINGS = [
    Setting("SURVEY_DATABASE", "instance/survey.db", "path of the SQLite file"),
    Setting(
        "SURVEY_SECRET_KEY",
        None,
        "signing key; a comma-separated list rotates keys (oldest first, the last one signs); "
        "required unless SURVEY_ENV=development",
    ),
    Setting("SURVEY_ENV", "production", "production or development",
            ("production", "development")),
    Setting("SURVEY_BASE_URL", "http://127.0.0.1:5000", "public URL that links in emails point to"),
    Setting("SURVEY_PROXY_HOPS", "0",
            "how many reverse proxies stand in front of gunicorn: their X-Forwarded-For and "
            "X-Forwarded-Proto are trusted (werkzeug's ProxyFix), so scanner networks, IP "
            "hashes and rate limits see the real client; 0 ignores forwarded headers",
            kind=int),
    Setting("SURVEY_MAIL_BACKEND", "outbox", "outbox, smtp or ses", ("outbox", "smtp", "ses")),
    Setting("SURVEY_OUTBOX_DIR", "instance/outbox",
            "where the outbox backend writes one .eml file per message"),
    Setting("SURVEY_SMTP_HOST", "localhost", "SMTP server host"),
    Setting("SURVEY_SMTP_PORT", "25", "SMTP server port", kind=int),
    Setting("SURVEY_SMTP_USERNAME", None, "SMTP login user (no login when unset)"),
    Setting("SURVEY_SMTP_PASSWORD", None, "SMTP login password"),
    Setting("SURVEY_SMTP_SECURITY", "none", "none, starttls or ssl", ("none", "starttls", "ssl")),
    Setting("SURVEY_SEND_RATE", None,
            "most messages per second; unset with SES: the account's quota", kind=float),
    Setting("SURVEY_SES_CONFIGURATION_SET", None,
            "SES configuration set (bounce/complaint events)"),
    Setting("SURVEY_SNS_TOPIC_ARNS", None,
            "SNS topic ARNs (comma-separated) whose notifications /hooks/ses accepts "
            "(unset: it refuses all)"),
    Setting("SURVEY_SUPPORT_EMAIL", None,
            "where detractor and overdue-case alerts go, and the address replies from a case "
            "come from (unset: no email alert, no replies)"),
    Setting("SURVEY_WEBHOOK_URLS", None,
            "URLs (comma-separated) that get a JSON POST, Slack-compatible, for each counted "
            "response (response.counted), each later change to it (response.updated) and "
            "each follow-up case update (case.updated) (unset: no webhooks)"),
    Setting("SURVEY_WEBHOOK_SECRET", None,
            "key of the X-Survey-Signature header (sha256=HMAC-SHA256 of the body) on webhooks"),
    Setting("SURVEY_RESURVEY_DAYS", "90",
            "a contact is not surveyed again within this many days", kind=int),
    Setting("SURVEY_SCORE_POLICY", "balanced",
            "balanced (also count unflagged single clicks) or strict (only confirmed ones)",
            POLICIES),
    Setting("SURVEY_LINK_MAX_AGE_DAYS", "180", "days a link in an email stays valid", kind=int),
    Setting("SURVEY_SITE_URL", None, "website offered to promoters on their page (optional)"),
    Setting("SURVEY_REVIEW_URL", None,
            "public review page offered on the promoters' page (optional)"),
    Setting("SURVEY_POSTAL_ADDRESS", "",
            "sender's postal address shown in every email's footer (campaign default)"),
    Setting("SURVEY_BURST_SECONDS", "10",
            "different scores for one email within this many seconds are a scanner's burst; "
            "also how long a response waits before alerts", kind=float),
    Setting("SURVEY_STAFF_SESSION_HOURS", "8",
            "a staff login ends after this many hours, active or not", kind=float,
            positive=True),
    Setting("SURVEY_ACCOUNT_WINDOW_DAYS", "90",
            "days of answers an account's NPS covers (report --by account, the accounts "
            "page); its change compares them with the days before", kind=int, positive=True),
    Setting("SURVEY_ACCOUNT_NPS", "account",
            "how accounts count: responses (every counted response), account (one vote "
            "per account: the mean of its contacts' latest scores) or decision-maker (the "
            "mean of its contacts with role=decision-maker when any answered)",
            ("responses", "account", "decision-maker")),
    Setting("SURVEY_RENEWAL_WINDOW_DAYS", "90",
            "an unhappy account renewing within this many days is at risk", kind=int),
    Setting("SURVEY_CASE_SLA_HOURS", "48",
            "a follow-up case still new after this many hours is overdue (0: at once)",
            kind=float),
    Setting("SURVEY_DIGEST_EMAILS", None,
            "addresses (comma-separated) that get the digest email (unset: no digest)"),
    Setting("SURVEY_DIGEST_EVERY", "week", "how often the digest goes: week or month",
            ("week", "month")),
    Setting("SURVEY_TIMEZONE", "UTC",
            "IANA time zone of schedules (campaign schedule --at) and recurring periods",
            check=lambda name: _zone(name)),
    Setting("SURVEY_WORKER_INTERVAL", "5", "seconds between the worker's rounds",
            kind=float, positive=True),
    Setting("SURVEY_API_RATE_LIMIT", "600 per minute",
            "requests each API key may make (Flask-Limiter notation: 600 per minute, "
            "10 per second; several separated by ;), then 429 with Retry-After",
            check=lambda text: _rate_limit(text)),
    Setting("SURVEY_SCANNER_USER_AGENTS", None,
            "extra files (comma-separated) of scanner user-agent substrings, one a line"),
    Setting("SURVEY_SCANNER_NETWORKS", None,
            "extra files (comma-separated) of scanner IP networks (CIDR), one a line"),
]

BY_NAME = {s.name: s for s in SETTINGS}


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("not an IANA time zone name (like Europe/Stockholm or UTC)") from None


def _rate_limit(text: str) -> None:
    from limits import parse_many  # Flask-Limiter's own notation, so it reads it the same

    try:
        limits = parse_many(text)
    except ValueError:
        raise ValueError("not a rate limit (like 600 per minute or 10/second)") from None
    if any(limit.amount < 1 for limit in limits):
        raise ValueError("a rate limit of 0 would refuse every request")


def _parse(setting: Setting, raw: str | None) -> Any:
    if raw is None or raw == "":
        if setting.default is None:
            return None
        raw = setting.default
    if setting.choices and raw not in setting.choices:
        raise ConfigError(
            f"{setting.name}={raw!r} is not valid: use one of {', '.join(setting.choices)}"
        )
    if setting.check is not None:
        try:
            setting.check(raw)
        except ValueError as e:
            raise ConfigError(f"{setting.name}={raw!r} is not valid: {e}") from None
    if setting.kind is not str:
        try:
            value = setting.kind(raw)
        except ValueError:
            raise ConfigError(
                f"{setting.name}={raw!r} is not a number: {setting.help}"
            ) from None
        if value < 0:
            raise ConfigError(f"{setting.name}={raw!r} must not be negative")
        if setting.positive and value == 0:
            raise ConfigError(f"{setting.name}={raw!r} must be more than 0")
        return value
    return raw


def default(name: str) -> Any:
    """Return a setting's default value, parsed as when it is unset."""
    return _parse(BY_NAME[name], None)


class Config(dict):
    """Settings by name, validated; attribute access for brevity."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self["SURVEY_" + name.upper()]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def secret_keys(self) -> list[str]:
        """Return the signing keys, oldest first; raise ConfigError when there are none."""
        raw = self["SURVEY_SECRET_KEY"]
        if not raw:
            if not self.development:
                raise ConfigError(
                    "SURVEY_SECRET_KEY is not set: set it to a long random string "
                    "(or SURVEY_ENV=development for a local trial)"
                )
            raw = self["SURVEY_SECRET_KEY"] = _development_secret(Path(self["SURVEY_DATABASE"]))
        return [k.strip() for k in raw.split(",") if k.strip()]

    @property
    def development(self) -> bool:
        return self["SURVEY_ENV"] == "development"


def load(environ: dict[str, str] | None = None, **overrides: Any) -> Config:
    """Read and validate every setting from the environment (and overrides).

    The secret key is checked when first needed (`Config.secret_keys`), so commands that
    sign nothing, like a contact import, run without one.
    """
    environ = dict(os.environ if environ is None else environ)
    environ.update({k: str(v) for k, v in overrides.items() if v is not None})
    config = Config(
        (s.name, _parse(s, environ.get(s.name))) for s in SETTINGS
    )
    config["SURVEY_BASE_URL"] = config["SURVEY_BASE_URL"].rstrip("/")
    return config


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "0.0.0.0", "[::1]")


def base_url_problem(config: Config) -> str | None:
    """Say why SURVEY_BASE_URL cannot work for recipients in production; None when it can."""
    from urllib.parse import urlsplit

    host = (urlsplit(config["SURVEY_BASE_URL"]).hostname or "").lower()
    if config.development or not (host in LOOPBACK_HOSTS or host.startswith("127.")):
        return None
    return (f"SURVEY_BASE_URL is {config['SURVEY_BASE_URL']}, a loopback address: "
            f"recipients' clicks will not reach this server. Set it to the public URL "
            f"(https://survey.example.com)")


def _development_secret(database: Path) -> str:
    # A random key kept beside the development database, so links in the outbox keep
    # working across restarts; there is no built-in secret to forget to change.
    path = database.parent / "development-secret-key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    path.write_text(key + "\n")
    return key
