"""Compose survey emails: compile once per campaign and language, then personalise fast.

`mjml2html` and building a MIME message cost milliseconds, far over the per-recipient
budget, so a `Skeleton` does both once: it renders the MJML template, builds the whole
message with the `email` package around placeholders, serialises it, and splits the bytes
at the placeholders. Personalising is then two signatures and one `bytes.join`.

The HTML part is kept ASCII (non-ASCII as character references) and 7bit, so it needs no
per-recipient transfer encoding; the short plain-text part is base64-encoded per recipient.
"""

from __future__ import annotations

import base64
import html
import json
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate
from functools import cache
from pathlib import Path

import jinja2
from mjml import mjml2html

from .addresses import clean_text, format_address, parse_mailbox
from .clock import utcnow
from .contacts import LANGUAGES
from .links import Links

TEMPLATES = Path(__file__).resolve().parent.parent / "email_templates"
COLOURS = (
    [{"bg": "#c62828", "fg": "#ffffff"}] * 7   # 0-6 detractors: red
    + [{"bg": "#f9a825", "fg": "#1f2328"}] * 2  # 7-8 passives: yellow, dark text for contrast
    + [{"bg": "#2e7d32", "fg": "#ffffff"}] * 2  # 9-10 promoters: green
)
# Placeholders: never produced by escaping, base64 or header folding.
TOKEN, UNSUBSCRIBE, GREETING, TEXT, TO, MESSAGE_ID, DATE = (
    "@@T@@", "@@U@@", "@@G@@", "@@X@@", "@@TO@@", "@@M@@", "@@D@@")
PLACEHOLDER_RE = re.compile(rb"(@@(?:T|U|G|X|TO|M|D)@@)")
# Break lines before block tags so no line nears SMTP's 998-octet limit; whitespace between
# these tags does not render (MJML sets font-size:0 where it would). Not before the Outlook
# padding inside a score button's link, where it would be a space beside the digit.
BLOCK_TAG_RE = re.compile(r">\s*(?=<(?:/?(?:table|tbody|tr|td|div|p|head|body|style|meta|title|"
                          r"link|html)\b|!--(?!\[if mso\]><i )))")

_jinja = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=jinja2.select_autoescape(["mjml", "html"]),
    keep_trailing_newline=True,
)
_jinja_text = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=False,
                                 keep_trailing_newline=True)


@cache
def strings(language: str) -> dict[str, str]:
    """Return the email strings of one language."""
    return json.loads((TEMPLATES / "strings" / f"{language}.json").read_text("utf-8"))


def subject_for(campaign: dict, language: str) -> str:
    """The campaign's subject in a contact's language: its own, else the English one."""
    return campaign.get(f"subject_{language}") or campaign["subject"]


def _context(campaign: dict, language: str, links: Links) -> dict:
    s = strings(language)
    return {
        "s": s,
        "lang": language,
        # Every link from the one builder, with the recipient's tokens as placeholders.
        "score_url": lambda score: links.score_url(TOKEN, score),
        "view_url": links.view_url(TOKEN),
        "logo_url": links.base_url + campaign["logo_path"] if campaign.get("logo_path")
        else "",
        "accent": campaign.get("accent") or "",
        "honeypot_url": links.honeypot_url(TOKEN),
        "unsubscribe_url": links.unsubscribe_url(UNSUBSCRIBE),
        "brand": campaign["brand"],
        "subject": subject_for(campaign, language),
        "question": s["question"].format(brand=campaign["brand"]),
        "reason": s["reason"].format(brand=campaign["brand"]),
        "postal_address": campaign.get("postal_address") or "",
        "colours": COLOURS,
    }


def render_html(campaign: dict, language: str, links: Links) -> str:
    """Compile the campaign's MJML for one language (placeholders left in)."""
    mjml = _jinja.get_template("survey.mjml").render(_context(campaign, language, links))
    result = mjml2html(mjml)
    return BLOCK_TAG_RE.sub(">\n", result)


def preview_html(campaign: dict, language: str, links: Links) -> str:
    """The campaign's email in one language as a recipient sees it, with inert links and the
    greeting of a contact without a name (campaign preview, the staff preview page)."""
    html = Composer(campaign, links).skeleton(language).html
    greeting = strings(language)["greeting_anonymous"]
    for placeholder, value in ((TOKEN, "preview"), (UNSUBSCRIBE, "preview"),
                               (GREETING, greeting)):
        html = html.replace(placeholder, value)
    return html


def render_text(campaign: dict, language: str, links: Links) -> str:
    """Render the plain-text part for one language (placeholders left in)."""
    return _jinja_text.get_template("survey.txt").render(_context(campaign, language, links))


@dataclass(frozen=True)
class Personal:
    """What changes per recipient."""

    delivery_id: int
    email: str
    name: str = ""


class Skeleton:
    """A campaign's message in one language, serialised once, with slots per recipient."""

    def __init__(self, campaign: dict, language: str, links: Links):
        if language not in LANGUAGES:
            raise ValueError(f"unknown language {language!r}")
        self.campaign = campaign
        self.language = language
        self.links = links
        self._strings = strings(language)
        self._sender = parse_mailbox(campaign["sender"])
        self._domain = self._sender.domain
        self.html = render_html(campaign, language, links)
        text = render_text(campaign, language, links).replace("\r\n", "\n")
        self._text_parts = _split(text.replace("\n", "\r\n").encode("utf-8"))
        self._parts = _split(self._message_bytes())
        self._date = (0, "")

    def _message_bytes(self) -> bytes:
        campaign, links = self.campaign, self.links
        msg = EmailMessage(policy=SMTP)
        # Header objects of the email package, which fold and encode them; the subject is
        # cleaned again here, whatever path it took into the database.
        msg["From"] = self._sender
        msg["Subject"] = clean_text(subject_for(campaign, self.language))
        msg["List-Unsubscribe"] = f"<{links.unsubscribe_url(UNSUBSCRIBE)}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg["X-Survey-Campaign"] = str(campaign["id"])
        msg.set_content("placeholder")
        msg.add_alternative(
            self.html.encode("ascii", "xmlcharrefreplace").decode("ascii"),
            subtype="html", cte="7bit")
        text_part = msg.get_payload()[0]
        text_part.set_payload(TEXT)
        text_part.replace_header("Content-Transfer-Encoding", "base64")
        text_part.set_param("charset", "utf-8")
        # The headers that differ per recipient go first; To: is formatted and folded by
        # addresses.format_address, which no name can break out of.
        return (f"To: {TO}\r\nDate: {DATE}\r\nMessage-ID: <{MESSAGE_ID}>\r\n".encode("ascii")
                + msg.as_bytes())

    def _now(self) -> str:
        # formatdate costs a few microseconds; one Date string per second is exact enough.
        second = int(utcnow().timestamp())
        if self._date[0] != second:
            self._date = (second, formatdate(second, usegmt=True))
        return self._date[1]

    def values(self, person: Personal) -> dict[bytes, bytes]:
        """Return the per-recipient bytes for each placeholder."""
        token = self.links.token("score", person.delivery_id).encode("ascii")
        unsubscribe = self.links.token("unsubscribe", person.delivery_id).encode("ascii")
        s = self._strings
        greeting = s["greeting"].format(name=person.name) if person.name else s[
            "greeting_anonymous"]
        text_values = {b"@@T@@": token, b"@@U@@": unsubscribe,
                       b"@@G@@": greeting.encode("utf-8")}
        text = _fill(self._text_parts, text_values)
        return {
            b"@@T@@": token,
            b"@@U@@": unsubscribe,
            b"@@G@@": html.escape(greeting).encode("ascii", "xmlcharrefreplace"),
            b"@@X@@": _base64_lines(text),
            b"@@TO@@": format_address(person.name, person.email).encode("ascii"),
            b"@@M@@": f"survey.{self.campaign['id']}.{person.delivery_id}@{self._domain}"
            .encode("ascii"),
            b"@@D@@": self._now().encode("ascii"),
        }

    def personalise(self, person: Personal) -> bytes:
        """Return the whole RFC 5322 message for one recipient."""
        return _fill(self._parts, self.values(person))


def _split(data: bytes) -> list[bytes]:
    # Odd indexes hold placeholders; rebuilt by substituting them and joining.
    return PLACEHOLDER_RE.split(data)


def _fill(parts: list[bytes], values: dict[bytes, bytes]) -> bytes:
    # Substitute every placeholder (odd indexes) in one C-level map, then join once: a
    # generator over all the parts costs more than a signature (see bench/bench_compose.py).
    filled = parts.copy()
    filled[1::2] = map(values.__getitem__, parts[1::2])
    return b"".join(filled)


def _base64_lines(data: bytes) -> bytes:
    encoded = base64.b64encode(data)
    return b"\r\n".join([encoded[i:i + 76] for i in range(0, len(encoded), 76)])


class Composer:
    """Personalise a campaign's emails, compiling one skeleton per language on first use."""

    def __init__(self, campaign: dict, links: Links):
        self.campaign = campaign
        self.links = links
        self._skeletons: dict[str, Skeleton] = {}

    def skeleton(self, language: str) -> Skeleton:
        if language not in self._skeletons:
            self._skeletons[language] = Skeleton(self.campaign, language, self.links)
        return self._skeletons[language]

    def compose(self, delivery_id: int, email: str, name: str, language: str) -> bytes:
        """Return the message for one delivery."""
        return self.skeleton(language).personalise(Personal(delivery_id, email, name))
