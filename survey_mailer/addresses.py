"""Email addresses and header text: the one place that validates, cleans and formats them.

Anything that ends up in a message header goes through here: contact names, companies and
addresses on import, a campaign's name, subject, sender, brand and postal address when it is
created, and the `To:`/`Reply-To:` of every message. A line break in a header value starts a
new header (`Bcc:`, `Reply-To:`...), so control characters are refused or cleaned on input,
and cleaned again when a header is built, whatever path a value took into the database.
"""

from __future__ import annotations

import re
from email.charset import Charset
from email.headerregistry import Address
from email.policy import SMTP
from email.utils import quote

# Deliberately simple, and exactly what a header can carry unquoted: a dot-atom before the @
# (RFC 5322 atext, no leading, trailing or double dot) and a DNS name after it, ASCII only
# (messages are built without SMTPUTF8). Mail servers decide the rest.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
EMAIL_RE = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@(?:{_LABEL}\.)+[A-Za-z][A-Za-z0-9-]*[A-Za-z0-9]")
# C0 and C1 controls (CR, LF, tab, NUL, ESC...) and the Unicode line and paragraph separators:
# every character Python's str.splitlines, and so the email package, breaks a line at.
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
LINE_BREAKS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
# A display name written as it is: atoms and single spaces, no "=" or "?" (which could read
# as an RFC 2047 encoded word) and nothing that needs quoting.
_PLAIN_NAME_RE = re.compile(r"[A-Za-z0-9!#$%&'*+/^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/^_`{|}~-]+)*")
_UTF8 = Charset("utf-8")
_LINE = 78  # RFC 5322's recommended line length, which the SMTP policy folds to
_ENCODED_WORD = 75  # RFC 2047's longest encoded word
# A display name is cosmetic and no real one is this long; an unbroken run of over 998
# characters could not be folded at all (SMTP's hard line limit).
MAX_NAME = 256


def valid_email(email: str) -> bool:
    """Tell whether a string is an address this product can send to and put in a header."""
    return (len(email) <= 254 and EMAIL_RE.fullmatch(email) is not None
            and email.index("@") <= 64)


def non_ascii_problem(email: str) -> str | None:
    """Say why a non-ASCII address cannot be sent to; None for an ASCII one.

    Messages are built without SMTPUTF8 (neither SES nor most relays take it), so an
    address must be ASCII: a domain can be written in its IDNA (xn--) form, a mailbox name
    cannot.
    """
    if email.isascii() or "@" not in email:
        return None  # ASCII, or not an address at all (valid_email says so)
    local, _, domain = email.rpartition("@")
    if local.isascii() and local:
        try:
            ascii_domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            pass
        else:
            return f'"{email}" has a non-ASCII domain: write it as {local}@{ascii_domain}'
    return f'"{shown(email)}" has non-ASCII characters before the @, which cannot be sent to'


def email_problem(email: str) -> str | None:
    """Say why a string cannot be a recipient's or sender's address; None when it can."""
    problem = non_ascii_problem(email)
    if problem is None and not valid_email(email):
        problem = f'"{shown(email)}" is not a valid email address'
    return problem


def shown(value: str) -> str:
    """Return a value for an error message: control characters written as escapes (\\r\\n)."""
    return CONTROL_RE.sub(lambda m: repr(m.group())[1:-1], value)


def text_problem(label: str, value: str) -> str | None:
    """Say why a text cannot go into an email header (a control character); None if it can."""
    found = CONTROL_RE.search(value)
    if found is None:
        return None
    what = "a line break" if found.group() in LINE_BREAKS else "a control character"
    return (f'{label} "{shown(value)}" contains {what} ({shown(found.group())}), '
            f"which cannot go into an email header")


def clean_text(value: str) -> str:
    """Return a text with each control character as a space: safe in any header."""
    if CONTROL_RE.search(value):
        value = CONTROL_RE.sub(" ", value)
    return value.strip()


def address(name: str, email: str) -> Address:
    """Return the email package's Address for a person, the name cleaned for a header."""
    return Address(display_name=clean_text(name), addr_spec=email)


def parse_mailbox(value: str) -> Address:
    """Parse one "Name <address>" or bare address, as in From:; raise ValueError if it is not."""
    if text_problem("", value) is not None:
        raise ValueError(f'"{shown(value)}" contains a control character')
    header = SMTP.header_factory("From", value)
    addresses = header.addresses
    if header.defects or len(addresses) != 1 or not valid_email(addresses[0].addr_spec):
        raise ValueError(f'"{value}" is not one email address')
    return addresses[0]


def format_address(name: str, email: str, field: str = "To") -> str:
    """Return the value of an address header for one person, folded for SMTP.

    What the SMTP policy would write for `address(name, email)`: a plain name as it is, an
    ASCII name with specials quoted, any other name RFC 2047-encoded. Building a header
    object costs about 0.5 ms, ten times the budget of a whole personalised email (SPEC 9),
    so a name that fits one line takes the email package's own quoting and encoding
    (email.utils.quote, Charset.header_encode) directly; longer ones are folded by the
    policy itself.
    """
    if not valid_email(email):
        raise ValueError(f'"{shown(email)}" is not a valid email address')
    name = clean_text(name)[:MAX_NAME]
    if not name:
        return email
    if _PLAIN_NAME_RE.fullmatch(name):
        phrase = name
    elif name.isascii() and "=?" not in name:
        phrase = f'"{quote(name)}"'
    else:
        phrase = _UTF8.header_encode(name)
    room = _LINE - len(field) - 2  # after "To: "
    if len(phrase) > min(room, _ENCODED_WORD):
        return _folded(field, address(name, email))
    if len(phrase) + len(email) + 3 <= room:
        return f"{phrase} <{email}>"
    return f"{phrase}\r\n <{email}>"  # the address on a continuation line


def _folded(field: str, value: Address) -> str:
    folded = SMTP.header_factory(field, value).fold(policy=SMTP)
    folded = folded[len(field) + 1:].removesuffix("\r\n")
    return folded.removeprefix(" ")
