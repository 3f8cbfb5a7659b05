"""`survey-mailer backup FILE`: a consistent copy of the live database, and restoring it."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from landing import create_app

# A second process that keeps writing while the backup runs: one contact a transaction.
WRITER = """
import sys
from survey_mailer import db as db_
db = db_.connect(sys.argv[1])
n = 0
while True:
    n += 1
    with db_.write(db) as conn:
        conn.execute("INSERT INTO contacts (email, name, created_at, updated_at) "
                     "VALUES (?, ?, ?, ?)",
                     [f"w{n}@example.com", "Writer " + "x" * 200, "2026-12-04 00:00:00",
                      "2026-12-04 00:00:00"])
"""


def contacts(path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT count(*) FROM contacts").fetchone()[0]


def test_a_backup_while_another_process_writes_is_consistent(runner, settings, db, tmp_path):
    writer = subprocess.Popen([sys.executable, "-c", WRITER, settings["SURVEY_DATABASE"]])
    try:
        while contacts(settings["SURVEY_DATABASE"]) < 2000:
            assert writer.poll() is None, "the writer stopped"
            time.sleep(0.05)
        before = contacts(settings["SURVEY_DATABASE"])
        result = runner("backup", str(tmp_path / "copy.db"))
        after = contacts(settings["SURVEY_DATABASE"])
    finally:
        writer.kill()
        writer.wait()
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Backed up {settings['SURVEY_DATABASE']} to ")
    copy = sqlite3.connect(tmp_path / "copy.db")
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one file
    # The database as of one moment while the writer ran: every contact committed before
    # the backup began, none beyond those committed when it ended, and no gap.
    count, last = copy.execute("SELECT count(*), max(rowid) FROM contacts").fetchone()
    assert before <= count <= after and last == count
    assert not list(tmp_path.glob(".copy.db.partial"))


def test_a_restored_backup_serves_the_same_survey(runner, settings, sent_campaign, tmp_path):
    report = runner("report", "--format", "json").output
    listed = runner("contacts", "list", "--format", "json").output
    assert runner("backup", str(tmp_path / "copy.db")).exit_code == 0
    assert runner("contacts", "unsubscribe", "ana@example.com").exit_code == 0  # after it
    # Restore as the README says: stop the services, put the copy in place, start them.
    live = Path(settings["SURVEY_DATABASE"])
    for stale in (live, Path(f"{live}-wal"), Path(f"{live}-shm")):
        stale.unlink(missing_ok=True)
    shutil.copy(tmp_path / "copy.db", live)
    assert runner("report", "--format", "json").output == report
    assert runner("contacts", "list", "--format", "json").output == listed  # as backed up
    client = create_app({"TESTING": True, "RATELIMIT_ENABLED": False}).test_client()
    assert client.get("/healthz").json == {"status": "ok"}


def test_backup_refuses_to_overwrite_and_names_the_file(runner, db, settings, tmp_path):
    target = tmp_path / "copy.db"
    target.write_text("keep me")
    result = runner("backup", str(target))
    assert result.exit_code == 1
    assert result.output == f"Error: {target} exists; choose another name or add --force\n"
    assert target.read_text() == "keep me"
    assert runner("backup", str(target), "--force").exit_code == 0
    assert runner("backup", settings["SURVEY_DATABASE"], "--force").output == (
        f"Error: {settings['SURVEY_DATABASE']} is the database itself\n")
    result = runner("backup", str(tmp_path / "no" / "such" / "folder" / "copy.db"))
    assert result.exit_code == 1 and result.output.startswith("Error: ")
    assert "Traceback" not in result.output
