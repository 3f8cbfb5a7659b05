"""Roles on every staff route (SPEC 12), the team page and API keys in the browser."""

from __future__ import annotations

import pytest
from conftest import csrf_token
from staff_support import PASSWORD, XSS, login

from landing import create_app
from survey_mailer import api_keys, users

ADMIN, MARKETER, SUPPORT = "admin@acme.test", "marketer@acme.test", "support@acme.test"
# What each role may open: every GET page of the workspace, by the role it needs.
PAGES = {"/staff/": "support", "/staff/followups": "support",
         "/staff/testimonials": "support", "/staff/responses": "support",
         "/staff/responses.csv": "support", "/staff/contacts": "marketer",
         "/staff/campaigns": "marketer", "/staff/campaigns/new": "marketer",
         "/staff/accounts": "support", "/staff/themes": "support",
         "/staff/team": "admin", "/staff/api-keys": "admin"}


@pytest.fixture
def accounts(db) -> dict[str, int]:
    return {email: users.add_user(db, email, PASSWORD, role)[0]
            for email, role in ((ADMIN, "admin"), (MARKETER, "marketer"),
                                (SUPPORT, "support"))}


def client_for(email: str):
    client = create_app({"TESTING": True, "RATELIMIT_ENABLED": False}).test_client()
    assert login(client, email).status_code == 302
    return client


def test_every_staff_route_names_its_role(app):
    open_routes = {"staff.login", "staff.logout", "staff.static"}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/staff/") and rule.endpoint not in open_routes:
            view = app.view_functions[rule.endpoint]
            assert getattr(view, "required_role", None) in users.ROLES, rule.rule


@pytest.mark.parametrize("email, role", [(ADMIN, "admin"), (MARKETER, "marketer"),
                                         (SUPPORT, "support")])
def test_each_role_opens_its_pages_and_is_refused_the_others(accounts, email, role):
    client = client_for(email)
    for path, needed in PAGES.items():
        reply = client.get(path)
        if users.allows(role, needed):
            assert reply.status_code == 200, (email, path)
        else:
            assert reply.status_code == 403, (email, path)
            assert "This page is for the" in reply.text and "Team page" in reply.text
    nav = client.get("/staff/").text
    assert ('href="/staff/contacts"' in nav) == users.allows(role, "marketer")
    assert ('href="/staff/team"' in nav) == users.allows(role, "admin")


def test_a_refused_post_changes_nothing(accounts, db):
    client = client_for(SUPPORT)
    token = csrf_token(client.get("/staff/").text)
    reply = client.post("/staff/team", data={"csrf_token": token, "email": "x@acme.test",
                                             "role": "admin", "password": PASSWORD})
    assert reply.status_code == 403
    reply = client.post(f"/staff/team/{accounts[SUPPORT]}/role",
                        data={"csrf_token": token, f"u{accounts[SUPPORT]}-role": "admin"})
    assert reply.status_code == 403
    assert [tuple(r) for r in db.execute("SELECT email, role FROM staff_users ORDER BY id")] == [
        (ADMIN, "admin"), (MARKETER, "marketer"), (SUPPORT, "support")]


def test_forms_without_csrf_are_refused(accounts, db):
    client = client_for(ADMIN)
    for path, data in (("/staff/team", {"email": "x@acme.test", "role": "admin",
                                        "password": PASSWORD}),
                       (f"/staff/team/{accounts[SUPPORT]}/remove", {}),
                       ("/staff/api-keys", {"name": "k"}),
                       ("/staff/contacts", {})):
        assert client.post(path, data=data).status_code == 400, path
    assert db.execute("SELECT count(*) FROM staff_users").fetchone()[0] == 3
    assert db.execute("SELECT count(*) FROM api_keys").fetchone()[0] == 0


def test_staff_add_takes_a_role_and_the_first_account_is_an_admin(runner, db):
    result = runner("staff", "add", "first@acme.test", "--password", PASSWORD, "--role",
                    "support")
    assert result.output == "Created staff account first@acme.test (admin)\n"
    result = runner("staff", "add", "second@acme.test", "--password", PASSWORD)
    assert result.output == "Created staff account second@acme.test (support)\n"
    result = runner("staff", "add", "third@acme.test", "--password", PASSWORD, "--role",
                    "boss")
    assert result.exit_code == 2
    assert "'boss' is not one of 'support', 'marketer', 'admin'" in result.output
    listed = runner("staff", "list").output.splitlines()
    assert [line.split("\t")[:2] for line in listed] == [
        ["first@acme.test", "admin"], ["second@acme.test", "support"]]


def test_an_admin_adds_changes_and_removes_accounts(accounts, db):
    client = client_for(ADMIN)
    page = client.get("/staff/team").text
    reply = client.post("/staff/team", data={"csrf_token": csrf_token(page),
                                             "email": "new@acme.test", "role": "marketer",
                                             "password": PASSWORD})
    assert reply.status_code == 303
    assert users.authenticate(db, "new@acme.test", PASSWORD)["role"] == "marketer"
    new_id = db.execute("SELECT id FROM staff_users WHERE email = 'new@acme.test'"
                        ).fetchone()[0]
    token = csrf_token(client.get("/staff/team").text)
    reply = client.post(f"/staff/team/{new_id}/role",
                        data={"csrf_token": token, f"u{new_id}-role": "support"})
    assert reply.status_code == 303
    assert db.execute("SELECT role FROM staff_users WHERE id = ?", [new_id]).fetchone()[0] \
        == "support"
    assert client.post(f"/staff/team/{new_id}/remove",
                       data={"csrf_token": token}).status_code == 303
    assert db.execute("SELECT count(*) FROM staff_users WHERE id = ?", [new_id]
                      ).fetchone()[0] == 0
    # Never yourself, never the last admin.
    client.post(f"/staff/team/{accounts[ADMIN]}/remove", data={"csrf_token": token})
    assert "you cannot remove your own account" in client.get("/staff/team").text
    client.post(f"/staff/team/{accounts[ADMIN]}/role",
                data={"csrf_token": token, f"u{accounts[ADMIN]}-role": "support"})
    assert "the workspace needs an admin" in client.get("/staff/team").text
    assert db.execute("SELECT role FROM staff_users WHERE id = ?", [accounts[ADMIN]]
                      ).fetchone()[0] == "admin"


def test_a_bad_new_account_is_a_400_naming_the_problem(accounts, db):
    client = client_for(ADMIN)
    token = csrf_token(client.get("/staff/team").text)
    reply = client.post("/staff/team", data={"csrf_token": token, "email": XSS,
                                             "role": "admin", "password": "short"})
    assert reply.status_code == 400
    assert XSS not in reply.text
    assert "Field must be between 10 and 200 characters long." in reply.text
    assert db.execute("SELECT count(*) FROM staff_users").fetchone()[0] == 3


def test_an_admin_creates_and_revokes_api_keys(accounts, db, sent_campaign, client):
    admin = client_for(ADMIN)
    token = csrf_token(admin.get("/staff/api-keys").text)
    reply = admin.post("/staff/api-keys", data={"csrf_token": token, "name": XSS,
                                                "campaign": str(sent_campaign)})
    assert reply.status_code == 201
    assert XSS not in reply.text
    key = reply.text.split('<code class="key">')[1].split("</code>")[0]
    assert api_keys.check_api_key(db, key)["campaign_id"] == sent_campaign
    assert key not in admin.get("/staff/api-keys").text  # shown once
    key_id = api_keys.check_api_key(db, key)["id"]
    assert admin.post(f"/staff/api-keys/{key_id}/revoke",
                      data={"csrf_token": token}).status_code == 303
    assert api_keys.check_api_key(db, key) is None
    reply = admin.post("/staff/api-keys", data={"csrf_token": token, "name": "x",
                                                "campaign": "999"})
    assert reply.status_code == 400
    assert admin.post("/staff/api-keys/999/revoke", data={"csrf_token": token}
                      ).status_code == 404


def test_support_cannot_change_contacts_or_campaigns(accounts, db, sent_campaign):
    client = client_for(SUPPORT)
    token = csrf_token(client.get("/staff/").text)
    before = [tuple(r) for r in db.execute("SELECT * FROM campaigns")]
    contact = db.execute("SELECT id FROM contacts LIMIT 1").fetchone()[0]
    for path, data in (
            ("/staff/campaigns/new", {"name": "X", "subject": "Y",
                                      "sender": "Acme <nps@acme.test>"}),
            (f"/staff/campaigns/{sent_campaign}/schedule", {"action": "now"}),
            (f"/staff/campaigns/{sent_campaign}/pause", {}),
            (f"/staff/campaigns/{sent_campaign}/test", {"language": "en"}),
            (f"/staff/contacts/{contact}/unsubscribe", {}),
            (f"/staff/contacts/{contact}/erase", {"sure": "y"})):
        assert client.post(path, data={**data, "csrf_token": token}).status_code == 403, path
    assert [tuple(r) for r in db.execute("SELECT * FROM campaigns")] == before
    assert db.execute("SELECT count(*) FROM contacts WHERE unsubscribed_at IS NOT NULL"
                      " OR erased_at IS NOT NULL").fetchone()[0] == 0
