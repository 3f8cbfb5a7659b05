"""CSV files: contacts as spreadsheets save them, exports that spreadsheets will not run."""

from __future__ import annotations

import csv
import io
import json
import struct
import zlib

import pytest
from staff_support import answer, deliveries

CONTACTS = ("email,name,company\nchloe@example.com,Chloé,Société Générale\n"
            "asa@example.se,Åsa,Ström AB\n")


def import_bytes(runner, tmp_path, data: bytes, name="contacts.csv"):
    path = tmp_path / name
    path.write_bytes(data)
    return runner("contacts", "import", str(path)), path


def names(runner):
    return [(c["email"], c["name"], c["company"])
            for c in json.loads(runner("contacts", "list", "--format", "json").output)]


IMPORTED = [("chloe@example.com", "Chloé", "Société Générale"),
            ("asa@example.se", "Åsa", "Ström AB")]


# Reading what spreadsheets save ---------------------------------------------------------------


@pytest.mark.parametrize("data", [
    CONTACTS.encode("utf-8"),
    CONTACTS.encode("utf-8-sig"),  # Excel's "CSV UTF-8"
    CONTACTS.replace("\n", "\r\n").encode("utf-16"),  # Python's codec: a BOM, then LE
    b"\xfe\xff" + CONTACTS.replace("\n", "\r\n").encode("utf-16-be"),
    CONTACTS.replace("\n", "\r\n").encode("cp1252"),  # Excel's plain "CSV" on Windows
    CONTACTS.replace(",", ";").encode("cp1252"),  # ... where the decimal mark is a comma
    CONTACTS.replace(",", "\t").encode("utf-16"),  # Excel's "Unicode text"
    CONTACTS.replace(",", ";").replace("\n", "\r").encode("utf-8"),  # old Mac line ends
], ids=["utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "cp1252", "cp1252-semicolon",
        "utf-16-tab", "utf-8-semicolon-cr"])
def test_contacts_import_reads_what_spreadsheets_save(runner, db, tmp_path, data):
    result, _ = import_bytes(runner, tmp_path, data)
    assert result.output == "2 added, 0 updated\n"
    assert names(runner) == IMPORTED


def test_the_first_bytes_decide_nothing_alone(runner, db, tmp_path):
    # A long ASCII start and one Windows-1252 byte at the very end: the whole file counts.
    rows = "".join(f"p{i}@example.com,Person {i},Acme\n" for i in range(2000))
    result, _ = import_bytes(runner, tmp_path, (f"email,name,company\n{rows}"
                                                "zoe@example.com,Zoë,Acme\n").encode("cp1252"))
    assert result.output == "2001 added, 0 updated\n"
    assert names(runner)[-1] == ("zoe@example.com", "Zoë", "Acme")


def test_quoted_semicolons_and_commas(runner, db, tmp_path):
    result, _ = import_bytes(runner, tmp_path, (
        'email;name;company\n"ana@example.com";"García, Ana";"Acme; Inc"\n').encode())
    assert result.output == "1 added, 0 updated\n"
    assert names(runner) == [("ana@example.com", "García, Ana", "Acme; Inc")]


def test_a_semicolon_file_reports_its_real_problems(runner, db, tmp_path):
    result, path = import_bytes(runner, tmp_path, b"email;name\nnot-an-email;X\n")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        'line 2: "not-an-email" is not a valid email address',
        f"Error: 1 problem in {path}; nothing was imported"]


def png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))
    pixels = zlib.compress(b"".join(b"\x00" + bytes(range(48)) for _ in range(16)))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))


@pytest.mark.parametrize("data", [png(), CONTACTS.encode("utf-16-le")[:-1], bytes(range(256))],
                         ids=["png", "odd-utf-16", "all-bytes"])
def test_a_file_that_is_not_text_is_one_clear_line(runner, db, tmp_path, data):
    result, path = import_bytes(runner, tmp_path, data)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "line 1: the file is not CSV text (UTF-8, UTF-16 or Windows-1252); if it is a "
        "spreadsheet, save it as CSV and import that",
        f"Error: 1 problem in {path}; nothing was imported"]
    assert names(runner) == []


# Writing cells a spreadsheet will not run -----------------------------------------------------


@pytest.fixture
def formulas(runner, tmp_path, settings, db):
    """Two answered contacts whose name, company and comment start like formulas."""
    path = tmp_path / "formulas.csv"
    path.write_text("email,name,company\nana@example.com,+1 555 0100,=1+1\n"
                    "bob@example.com,Bob,-Acme\n", encoding="utf-8")
    assert runner("contacts", "import", str(path)).exit_code == 0
    created = runner("campaign", "create", "--name", "Q4", "--subject", "A question",
                     "--sender", "Acme <nps@acme.test>", "--postal-address", "1 Main St")
    campaign_id = int(created.output.splitlines()[-1])
    assert runner("campaign", "send", str(campaign_id)).exit_code == 0
    ids = deliveries(db, campaign_id)
    answer(db, ids["ana@example.com"], 2, '=HYPERLINK("http://evil.test","x")')
    answer(db, ids["bob@example.com"], 3, "@SUM(A1:A9)")
    return campaign_id


def test_export_responses_defuses_formulas(runner, formulas, tmp_path):
    out = tmp_path / "r.csv"
    assert runner("export", "responses", "--output", str(out)).exit_code == 0
    for text in (out.read_text(encoding="utf-8"), runner("export", "responses").output):
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [(r["name"], r["company"], r["comment"], r["score"]) for r in rows] == [
            ("'+1 555 0100", "'=1+1", "'=HYPERLINK(\"http://evil.test\",\"x\")", "2"),
            ("Bob", "'-Acme", "'@SUM(A1:A9)", "3")]


def test_report_csv_defuses_formulas_but_keeps_negative_numbers(runner, formulas):
    output = runner("report", "--format", "csv", "--by", "company").output
    rows = list(csv.DictReader(io.StringIO(output)))
    assert [(r["key"], r["nps"]) for r in rows] == [
        ("all", "-100.0"), ("'-Acme", "-100.0"), ("'=1+1", "-100.0")]
