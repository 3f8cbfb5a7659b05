"""Contact import: all or nothing, with `line N: reason` for every bad row."""

import json

import pytest


def write(tmp_path, text, name="c.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def contacts(db):
    return [dict(r) for r in db.execute(
        "SELECT email, name, company, language, attributes FROM contacts ORDER BY id")]


def test_import_adds_then_updates_case_insensitively(runner, db, tmp_path):
    first = write(tmp_path, "email,name,company,language,plan\n"
                            "ana@example.com,Ana,Acme,es,pro\nbob@example.com,Bob,,,\n")
    result = runner("contacts", "import", first)
    assert result.exit_code == 0
    assert result.output == "2 added, 0 updated\n"
    second = write(tmp_path, "Email,Name,seats\nANA@example.com,Ana G.,12\n"
                             "new@example.com,New,3\n", "d.csv")
    result = runner("contacts", "import", second)
    assert result.output == "1 added, 1 updated\n"
    rows = contacts(db)
    assert [r["email"] for r in rows] == ["ana@example.com", "bob@example.com",
                                          "new@example.com"]
    assert rows[0]["name"] == "Ana G."
    assert json.loads(rows[0]["attributes"]) == {"plan": "pro", "seats": "12"}
    assert rows[1]["language"] == "en"  # default


@pytest.mark.parametrize(
    ("body", "messages"),
    [
        ("email,name\nnot-an-email,X\n",
         ['line 2: "not-an-email" is not a valid email address']),
        ("email,language\na@example.com,de\n",
         ['line 2: unknown language "de" (use one of en, es, fr, sv)']),
        ("email,name\n,Nobody\n", ["line 2: email is empty"]),
        ("email,name\na@example.com,A\nA@EXAMPLE.com,B\n",
         ['line 3: "A@EXAMPLE.com" already appears on line 2']),
        ("email,name\na@example.com,A,extra\n", ["line 2: 3 fields, the header has 2"]),
        ("name,company\nAna,Acme\n",
         ['line 1: no "email" column in the header (name, company)']),
        ("", ["line 1: the file is empty; a header row with an email column is required"]),
        ("email,name\nok@example.com,Ok\nbad@,Bad\n\nx@example.com,X,y\n",
         ['line 3: "bad@" is not a valid email address', "line 5: 3 fields, the header has 2"]),
    ],
)
def test_bad_rows_are_reported_and_nothing_is_imported(runner, db, tmp_path, body, messages):
    result = runner("contacts", "import", write(tmp_path, body))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[:-1] == messages
    noun = "problem" if len(messages) == 1 else "problems"
    assert lines[-1] == f"Error: {len(messages)} {noun} in {tmp_path / 'c.csv'}; " \
                        "nothing was imported"
    assert contacts(db) == []


def test_a_quoted_multiline_field_counts_file_lines(runner, db, tmp_path):
    # An attribute may hold a line break (it never reaches a header); a name may not.
    path = write(tmp_path, 'email,note\na@example.com,"two\nlines"\nbad,X\n'
                           'b@example.com,"three\nmore\nlines"\nworse,Y\n')
    result = runner("contacts", "import", path)
    assert result.output.splitlines()[:2] == [
        'line 4: "bad" is not a valid email address',
        'line 8: "worse" is not a valid email address']


def test_missing_file_is_a_usage_error(runner, tmp_path):
    result = runner("contacts", "import", str(tmp_path / "nope.csv"))
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_unsubscribe_and_list(runner, db, contacts_csv):
    runner("contacts", "import", str(contacts_csv))
    result = runner("contacts", "unsubscribe", "BOB@example.com")
    assert result.output == "bob@example.com is unsubscribed\n"
    assert runner("contacts", "unsubscribe", "bob@example.com").output == \
        "bob@example.com was already unsubscribed\n"
    listed = json.loads(runner("contacts", "list", "--format", "json").output)
    assert [c["email"] for c in listed] == ["ana@example.com", "bob@example.com",
                                            "chloe@example.com", "sven@example.com"]
    assert [bool(c["unsubscribed_at"]) for c in listed] == [False, True, False, False]
    assert listed[0]["attributes"] == {"plan": "pro"}
    assert db.execute("SELECT method FROM unsubscribes").fetchall()[0][0] == "cli"


def test_unsubscribe_unknown_email(runner, db):
    result = runner("contacts", "unsubscribe", "ghost@example.com")
    assert result.exit_code == 1
    assert result.output == 'Error: contact "ghost@example.com" does not exist\n'
