"""Staff sessions end at logout and on a new password; failed logins lock an email a while."""
# ruff: noqa: F811  (fixtures imported from staff_support are parameters here)

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
from conftest import csrf_token
from flask_login.utils import encode_cookie
from staff_support import EMAIL, PASSWORD, login, staff_client, staff_user  # noqa: F401

from landing import create_app
from survey_mailer import clock, users
from survey_mailer import db as db_
from survey_mailer.migrations import migrations

OTHER = "colleague@acme.test"
LOCKED = "Too many failed logins with this email. Please try again in 15 minutes."
WRONG = "That email and password do not match an account."


def _session_cookie(client) -> str:
    return client.get_cookie("session").value


def _logout(client):
    html = client.get("/staff/").text
    return client.post("/staff/logout", data={"csrf_token": csrf_token(html)})


def _opens_dashboard(client) -> bool:
    response = client.get("/staff/")
    if response.status_code == 302:
        assert response.headers["Location"].startswith("/staff/login")
        return False
    assert response.status_code == 200
    return True


# Item 5: logging out (or a new password) ends every earlier session -------------------------


def test_a_cookie_saved_before_logout_no_longer_opens_the_workspace(staff_client):
    saved = _session_cookie(staff_client)
    assert _logout(staff_client).headers["Location"] == "/staff/login"
    staff_client.set_cookie("session", saved)
    response = staff_client.get("/staff/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/login?next=%2Fstaff%2F"


def test_logout_ends_the_accounts_other_sessions_but_not_other_accounts(app, db, staff_user):
    users.add_user(db, OTHER, "another long password")
    laptop, phone, colleague = app.test_client(), app.test_client(), app.test_client()
    assert login(laptop).status_code == 302
    assert login(phone).status_code == 302
    assert login(colleague, OTHER, "another long password").status_code == 302
    _logout(laptop)
    assert not _opens_dashboard(phone)
    assert _opens_dashboard(colleague)
    assert login(laptop).status_code == 302  # a fresh login works again
    assert _opens_dashboard(laptop)


def test_a_new_password_from_the_command_line_ends_every_session(app, db, runner, staff_user):
    users.add_user(db, OTHER, "another long password")
    mine, colleague = app.test_client(), app.test_client()
    login(mine)
    login(colleague, OTHER, "another long password")
    saved = _session_cookie(mine)
    result = runner("staff", "add", EMAIL, "--password", "a brand new password")
    assert result.output == f"Updated the password of staff account {EMAIL} (admin)\n"
    assert not _opens_dashboard(mine)
    mine.set_cookie("session", saved)
    assert not _opens_dashboard(mine)
    assert _opens_dashboard(colleague)
    assert login(mine, EMAIL, "a brand new password").status_code == 302
    assert _opens_dashboard(mine)


def test_a_remember_cookie_saved_before_logout_is_refused(app, staff_client):
    # The workspace sets no remember-me cookie today; one made by Flask-Login from the same
    # session id must end with the session all the same.
    with staff_client.session_transaction() as session:
        session_id = session["_user_id"]
    with app.test_request_context():
        remember = encode_cookie(session_id)
    before = app.test_client()
    before.set_cookie("remember_token", remember)
    assert _opens_dashboard(before)  # the cookie is genuine
    _logout(staff_client)
    after = app.test_client()
    after.set_cookie("remember_token", remember)
    assert not _opens_dashboard(after)


def test_accounts_from_before_the_upgrade_get_a_token_each(tmp_path):
    database = db_.connect(tmp_path / "old.db")
    migrations.apply(database, stop_before="m012_staff_sessions_and_lockout")
    for email in ("a@acme.test", "b@acme.test"):
        database.execute("INSERT INTO staff_users (email, password_hash, created_at)"
                         " VALUES (?, 'scrypt:x', '2026-01-01 00:00:00.000000')", [email])
    db_.migrate(database)
    tokens = [r[0] for r in database.execute("SELECT session_token FROM staff_users")]
    assert len(set(tokens)) == 2 and all(len(t) == 32 for t in tokens)
    database.execute("UPDATE staff_users SET session_token = '' WHERE id = 1")
    assert users.from_session(database, "1:") is None  # an empty token is never a session
    database.close()


def test_a_session_from_before_the_upgrade_is_refused(staff_client, staff_user):
    # Sessions used to name the bare account id: they carry no token, so they end.
    with staff_client.session_transaction() as session:
        session["_user_id"] = str(staff_user)
    assert not _opens_dashboard(staff_client)


# Item 7: failed logins counted per email in the database -------------------------------------


def _attempt(client, email, password):
    token = csrf_token(client.get("/staff/login").text)
    return client.post("/staff/login", data={"csrf_token": token, "email": email,
                                             "password": password})


@pytest.mark.parametrize("email", [EMAIL, "nobody@acme.test"])
def test_five_failures_lock_the_email_even_for_the_right_password(client, staff_user, email):
    for _ in range(5):
        response = _attempt(client, email, "wrong password")
        assert response.status_code == 401
        assert WRONG in response.text
    response = _attempt(client, email, PASSWORD)
    assert response.status_code == 429
    assert LOCKED in response.text and WRONG not in response.text
    assert response.headers["Retry-After"] == "900"
    assert not _opens_dashboard(client)


def test_the_lock_is_keyed_on_the_email_ignoring_case_and_spaces(client, staff_user):
    for typed in ["Agent@ACME.test", " agent@acme.TEST", "AGENT@ACME.TEST", EMAIL, EMAIL]:
        assert _attempt(client, typed, "wrong password").status_code == 401
    assert _attempt(client, EMAIL, PASSWORD).status_code == 429
    other = _attempt(client, "colleague@acme.test", "wrong password")
    assert other.status_code == 401  # another email is not locked


def test_the_lock_ends_after_fifteen_minutes(client, staff_user):
    start = datetime.now(UTC)
    with clock.frozen(start):
        for _ in range(5):
            _attempt(client, EMAIL, "wrong password")
    with clock.frozen(start + timedelta(minutes=10)):
        response = _attempt(client, EMAIL, PASSWORD)
        assert response.status_code == 429
        assert "Please try again in 5 minutes." in response.text
        assert response.headers["Retry-After"] == "300"
    with clock.frozen(start + timedelta(minutes=14, seconds=30)):
        assert "Please try again in 1 minute." in _attempt(client, EMAIL, PASSWORD).text
    with clock.frozen(start + timedelta(minutes=15, seconds=1)):
        assert _attempt(client, EMAIL, PASSWORD).status_code == 302
        assert _opens_dashboard(client)


def test_failures_outside_the_window_do_not_add_up(client, staff_user):
    start = datetime.now(UTC)
    with clock.frozen(start):
        for _ in range(4):
            assert _attempt(client, EMAIL, "wrong password").status_code == 401
    with clock.frozen(start + timedelta(minutes=16)):
        for _ in range(4):
            assert _attempt(client, EMAIL, "wrong password").status_code == 401
        assert _attempt(client, EMAIL, PASSWORD).status_code == 302


def test_a_successful_login_resets_the_count(client, staff_user, db):
    for _ in range(4):
        _attempt(client, EMAIL, "wrong password")
    assert _attempt(client, EMAIL, PASSWORD).status_code == 302
    _logout(client)
    assert db.execute("SELECT count(*) FROM staff_login_failures").fetchone()[0] == 0
    for _ in range(4):
        assert _attempt(client, EMAIL, "wrong password").status_code == 401
    assert _attempt(client, EMAIL, PASSWORD).status_code == 302


@pytest.mark.slow
def test_the_lock_holds_across_gunicorn_workers_and_restarts(live_server, db, staff_user,
                                                              settings):
    def attempt(password):
        # A new connection each time (no keep-alive), so either worker may answer.
        page = requests.get(f"{live_server}/staff/login", timeout=10,
                            headers={"Connection": "close"})
        return requests.post(
            f"{live_server}/staff/login", timeout=30, allow_redirects=False,
            cookies=page.cookies, headers={"Connection": "close"},
            data={"csrf_token": csrf_token(page.text), "email": EMAIL, "password": password})

    statuses = []
    while not statuses or statuses[-1] == 401:
        assert len(statuses) < 20, statuses  # two per-worker counters would allow 10
        statuses.append(attempt("wrong password").status_code)
    assert statuses == [401] * 5 + [429]
    refused = attempt(PASSWORD)
    assert refused.status_code == 429
    assert LOCKED in refused.text
    # A restart (a new process, memory empty) still refuses: the lock is in the database.
    restarted = create_app({"TESTING": True, "RATELIMIT_ENABLED": False}).test_client()
    response = _attempt(restarted, EMAIL, PASSWORD)
    assert response.status_code == 429 and LOCKED in response.text
