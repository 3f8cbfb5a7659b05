"""Header injection: no name, company, subject or sender can add a header to a message."""

from __future__ import annotations

import email
import email.policy
import json
from email.header import decode_header, make_header
from email.utils import parseaddr
from pathlib import Path

import pytest
from conftest import outbox
from staff_support import answer, deliveries

from survey_mailer import addresses, notify
from survey_mailer import config as config_

EVIL = "Eve\r\nBcc: x@evil.test\r\nReply-To: x@evil.test\r\n\r\nPay here"
SUPPORT = "support@acme.test"


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def import_csv(runner, tmp_path, data: bytes):
    path = tmp_path / "c.csv"
    path.write_bytes(data)
    return runner("contacts", "import", str(path)), path


# Refused or cleaned at input ----------------------------------------------------------------


def test_a_csv_name_with_a_line_break_is_refused_with_its_line(runner, tmp_path):
    result, path = import_csv(runner, tmp_path, (
        b'email,name,company\r\nana@example.com,Ana,Acme\r\n'
        b'eve@example.com,"Eve\r\nBcc: x@evil.test",Evil\r\n'
        b'mal@example.com,Mal,"Evil\x1b[31m"\r\n'))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        r'line 3: name "Eve\r\nBcc: x@evil.test" contains a line break (\r), which cannot go'
        r" into an email header",
        r'line 5: company "Evil\x1b[31m" contains a control character (\x1b), which cannot '
        r"go into an email header",
        f"Error: 2 problems in {path}; nothing was imported",
    ]
    assert json.loads(runner("contacts", "list", "--format", "json").output) == []


def test_a_tab_in_a_name_is_cleaned_to_a_space(runner, tmp_path):
    result, _ = import_csv(runner, tmp_path,
                           "email,name,company\nana@example.com,Ana\tGarcía,\tAcme\n".encode())
    assert result.output == "1 added, 0 updated\n"
    [contact] = json.loads(runner("contacts", "list", "--format", "json").output)
    assert (contact["name"], contact["company"]) == ("Ana García", "Acme")


def test_an_address_with_a_control_character_is_refused(runner, tmp_path):
    result, _ = import_csv(runner, tmp_path, b"email\r\nana@exa\x07mple.com\r\n")
    assert result.stderr.splitlines()[0] == r'line 2: "ana@exa\x07mple.com" is not a valid ' \
                                            r"email address"


OK = ["--name", "Q4", "--subject", "A question", "--sender", "Acme <nps@acme.test>"]


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--subject", "Hi\r\nBcc: x@evil.test",
     r'the campaign subject "Hi\r\nBcc: x@evil.test" contains a line break (\r), which '
     r"cannot go into an email header"),
    ("--name", "Q4\tpilot",
     r'the campaign name "Q4\tpilot" contains a control character (\t), which cannot go '
     r"into an email header"),
    ("--sender", "Acme <nps@acme.test>\nBcc: x@evil.test",
     r'the campaign sender "Acme <nps@acme.test>\nBcc: x@evil.test" contains a line break '
     r"(\n), which cannot go into an email header"),
    ("--brand", "Acme\u2028Evil",
     r'the campaign brand "Acme\u2028Evil" contains a line break (\u2028), which cannot go '
     r"into an email header"),
    ("--postal-address", "1 Main St\x00",
     r'the postal address "1 Main St\x00" contains a control character (\x00), which cannot'
     r" go into an email header"),
    ("--sender", "Acme <nps@acme.test>, Evil <x@evil.test>",
     'sender "Acme <nps@acme.test>, Evil <x@evil.test>" is not an email address (for '
     'example "Acme <nps@acme.com>")'),
])
def test_campaign_create_refuses_control_characters(runner, db, option, value, message):
    args = [*OK]
    if option in args:
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    result = runner("campaign", "create", *args)
    assert result.exit_code == 1
    assert result.output == f"Error: {message}\n"
    assert runner("campaign", "list", "--format", "json").output == "[]\n"


def test_a_postal_address_on_several_lines_is_joined(runner, db):
    result = runner("campaign", "create", *OK, "--postal-address",
                    "Acme Ltd\r\n1 Main St \n\nSpringfield\t12345\n")
    assert result.exit_code == 0
    [campaign] = json.loads(runner("campaign", "list", "--format", "json").output)
    assert campaign["postal_address"] == "Acme Ltd, 1 Main St, Springfield 12345"


# Whatever reaches the database: one To header, nothing added --------------------------------


def test_a_name_put_in_the_database_cannot_add_headers(runner, db, contacts_csv, settings):
    runner("contacts", "import", str(contacts_csv))
    with db.conn:  # as if written by another path than the CSV import
        db.execute("UPDATE contacts SET name = ? WHERE email = 'bob@example.com'", [EVIL])
    created = runner("campaign", "create", *OK, "--postal-address", "1 Main St")
    campaign_id = created.output.splitlines()[-1]
    assert runner("campaign", "send", campaign_id).exit_code == 0
    [path] = [p for p in Path(settings["SURVEY_OUTBOX_DIR"]).glob("*.eml")
              if b"bob@example.com" in p.read_bytes()]
    msg = parse(path.read_bytes())
    assert [k for k in msg.keys() if k.lower() in ("to", "bcc", "reply-to", "cc")] == ["To"]
    [to] = msg["To"].addresses
    assert to.addr_spec == "bob@example.com"
    assert to.display_name == "Eve  Bcc: x@evil.test  Reply-To: x@evil.test    Pay here"
    assert "Pay here" not in msg.get_body(("plain",)).get_content().splitlines()[0]
    assert msg.get_content_type() == "multipart/alternative" and not msg.defects
    assert set(outbox(settings)) == {"ana@example.com", "bob@example.com",
                                     "chloe@example.com", "sven@example.com"}


def test_an_alert_for_such_a_name_has_one_reply_to(db, sent_campaign, settings, monkeypatch):
    monkeypatch.setenv("SURVEY_SUPPORT_EMAIL", SUPPORT)
    with db.conn:
        db.execute("UPDATE contacts SET name = ?, company = ? WHERE email = 'ana@example.com'",
                   [EVIL, "Acme\nBcc: y@evil.test"])
    answer(db, deliveries(db, sent_campaign)["ana@example.com"], 2, "Bad")
    assert notify.dispatch(db, config_.load()) == {"sent": 1, "retry": 0, "failed": 0,
                                                   "unknown": 0}
    [path] = Path(settings["SURVEY_OUTBOX_DIR"]).glob("alert-*.eml")
    msg = parse(path.read_bytes())
    assert [k for k in msg.keys() if k.lower() in ("to", "bcc", "reply-to", "cc")] == [
        "To", "Reply-To"]
    assert [a.addr_spec for a in msg["To"].addresses] == [SUPPORT]
    [reply_to] = msg["Reply-To"].addresses
    assert reply_to.addr_spec == "ana@example.com"
    assert reply_to.display_name == "Eve  Bcc: x@evil.test  Reply-To: x@evil.test    Pay here"
    assert msg["Subject"] == ("Detractor: Eve  Bcc: x@evil.test  Reply-To: x@evil.test    "
                              "Pay here (Acme Bcc: y@evil.test) scored 2")


# Formatting an address ----------------------------------------------------------------------


NAMES = ["", "Bob Smith", "Ana García", "Jean-Luc O. Smith", 'A "quoted", name', "Smith, John",
         "O'Brien", "a\\b", "(comment) <evil@x.test>", "=?utf-8?q?Bcc?=", "李小龙",
         "Ωμέγα Ελληνικά Ονόματα Πολύ Μακριά", "Åsa " * 30, "x" * 200, "é" * 2000,
         "Ana\tGarcía", EVIL, "Eve\x00x", "a\u2028b", "Zoë\x85"]
EMAILS = ["a@b.co", "very.long.local.part.for.the.folding@subdomain.customer-domain.example"]


@pytest.mark.parametrize("mail", EMAILS)
@pytest.mark.parametrize("name", NAMES)
def test_format_address_gives_one_mailbox_for_any_name(name, mail):
    value = addresses.format_address(name, mail)
    raw = f"To: {value}\r\nSubject: x\r\n\r\nbody\r\n".encode("ascii")  # ASCII, RFC 2047
    msg = parse(raw)
    assert msg.keys() == ["To", "Subject"] and not msg["To"].defects
    assert [a.addr_spec for a in msg["To"].addresses] == [mail]
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    # The name, as a reader decodes it. (Python 3.11's own parser puts a space between
    # adjacent encoded words of a long name, so the RFC 2047 decoder of email.header is used.)
    decoded = str(make_header(decode_header(value.replace("\r\n ", " "))))
    expected = addresses.clean_text(name)[:addresses.MAX_NAME]
    assert parseaddr(decoded) == (expected, mail)


def test_format_address_refuses_a_bad_address():
    with pytest.raises(ValueError, match=r'"a@b.co\\r\\nBcc: x@evil.test" is not a valid'):
        addresses.format_address("Ana", "a@b.co\r\nBcc: x@evil.test")


@pytest.mark.parametrize(("address", "valid"), [
    ("a@b.co", True), ("o'brien+tag@mail.example.ie", True), ("x@xn--p1ai.xn--p1ai", True),
    ("a@b.com\n", False), ("a..b@c.com", False), (".a@b.com", False), ("a@b", False),
    ("a@b.c", False), ("a@1.2.3.4", False), ("a@-b.com", False), ("a b@c.com", False),
    ('"a b"@c.com', False), ("a@b.com>", False), ("åsa@example.se", False),
    ("x" * 65 + "@example.com", False), ("a@" + "b" * 250 + ".com", False),
])
def test_valid_email(address, valid):
    assert addresses.valid_email(address) is valid
