"""Counting only humans (SPEC 7): scanners replayed, people counted, what `report` shows."""

from __future__ import annotations

import json
import re

import pytest
from conftest import BROWSER_UA, outbox, person_click, score_links, show

from landing import create_app
from survey_mailer import clock as clock_
from survey_mailer import config as config_
from survey_mailer import db as db_
from survey_mailer import humans, responses
from survey_mailer.errors import ConfigError, NotFound
from survey_mailer.migrations import migrations


@pytest.fixture
def clock() -> clock_.Stopped:
    frozen = clock_.Stopped()
    with clock_.frozen(frozen):
        yield frozen


@pytest.fixture
def bob(sent_campaign, settings) -> list[str]:
    """Bob's eleven score links, as paths."""
    return score_links(outbox(settings)["bob@example.com"])


def token_of(path: str) -> str:
    return path.split("/")[2]


def click(client, path: str, *, ua: str = BROWSER_UA, ip: str = "198.51.100.7", **kwargs):
    return client.get(path, headers={"User-Agent": ua, **kwargs.pop("headers", {})},
                      environ_base={"REMOTE_ADDR": ip}, **kwargs)


def report(runner, monkeypatch, policy: str = "balanced") -> dict:
    monkeypatch.setenv("SURVEY_SCORE_POLICY", policy)
    result = runner("report", "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def counts(runner, monkeypatch, policy: str = "balanced") -> tuple[int, int]:
    """Return (responses counted, filtered_automated) as `survey-mailer report` prints them."""
    data = report(runner, monkeypatch, policy)
    return data["responses"], data["filtered_automated"]


def fold(db) -> None:
    """Fold the click log into responses, as every reader of them does first."""
    humans.fold(db)


def clicks(db) -> list[dict]:
    fold(db)
    return [dict(r) for r in db.execute(
        "SELECT score, kind, method, user_agent, ip_hash, automated, reason FROM clicks"
        " ORDER BY id")]


def response(db) -> dict:
    fold(db)
    rows = [dict(r) for r in db.execute("SELECT * FROM responses")]
    assert len(rows) == 1
    return rows[0]


# The click log --------------------------------------------------------------------------


def test_a_single_click_is_logged_and_counted(client, db, bob, runner, monkeypatch):
    reply = click(client, bob[9])
    assert reply.status_code == 303
    assert reply.headers["Location"] == f"/testimonial/{token_of(bob[9])}"
    [logged] = clicks(db)
    assert logged == {"score": 9, "kind": "score", "method": "GET", "user_agent": BROWSER_UA,
                      "ip_hash": logged["ip_hash"], "automated": 0, "reason": None}
    assert re.fullmatch(r"[0-9a-f]{16}", logged["ip_hash"])
    raw = "198.51.100.7"
    assert not any(raw in str(v) for row in db.execute("SELECT * FROM clicks") for v in row)
    # A bare fetch of the link, whose page no browser showed, is no vote (SPEC 7)...
    assert counts(runner, monkeypatch) == (0, 1)
    assert counts(runner, monkeypatch, "strict") == (0, 1)
    # ...until the page says it was shown in a visible tab.
    show(client, reply.headers["Location"])
    assert counts(runner, monkeypatch) == (1, 0)
    assert report(runner, monkeypatch)["promoters"] == 1
    assert counts(runner, monkeypatch, "strict") == (0, 0)  # waits for a touch instead


@pytest.mark.parametrize("method, headers", [
    ("HEAD", {}),
    ("GET", {"Sec-Purpose": "prefetch"}),
    ("GET", {"Sec-Purpose": "prefetch;prerender"}),
    ("GET", {"Purpose": "prefetch"}),
])
def test_head_and_prefetch_record_nothing(client, db, bob, method, headers, runner,
                                          monkeypatch):
    token = token_of(bob[3])
    reply = client.open(bob[3], method=method, headers={"User-Agent": BROWSER_UA, **headers})
    assert reply.status_code == 303
    assert reply.headers["Location"] == f"/feedback/{token}"
    honeypot = client.open(f"/r/{token}/hp", method=method, headers=headers)
    assert honeypot.status_code == 204
    assert clicks(db) == []
    assert db.execute("SELECT count(*) FROM responses").fetchone()[0] == 0
    assert counts(runner, monkeypatch) == (0, 0)


def test_the_score_route_only_logs_and_readers_fold(client, db, bob, runner, monkeypatch):
    click(client, bob[7])
    # The route's whole write is the click; the response comes when something reads it,
    assert db.execute("SELECT count(*) FROM responses").fetchone()[0] == 0
    # but the landing page already shows the score just clicked,
    page = client.get(f"/comment/{token_of(bob[7])}").get_data(as_text=True)
    assert re.search(r'<input[^>]*checked[^>]*value="7"|<input[^>]*value="7"[^>]*checked', page)
    # and every reader folds first: here `report` (filtered until the page is seen).
    assert report(runner, monkeypatch)["filtered_automated"] == 1
    assert (response(db)["score"], response(db)["automated"]) == (7, 0)
    show(client, f"/comment/{token_of(bob[7])}")
    assert report(runner, monkeypatch)["passives"] == 1
    assert (response(db)["score"], response(db)["automated"]) == (7, 0)


def test_folding_a_batch_equals_folding_each_click(db, sent_campaign, clock, tmp_path):
    """The same clicks folded one by one and in one batch leave the same rows behind."""
    import sqlite3

    copy_path = tmp_path / "copy.db"
    with sqlite3.connect(copy_path) as target:
        db.conn.backup(target)
    batch = db_.connect(copy_path)
    bob_id, ana_id = [db.execute(
        "SELECT d.id FROM deliveries d JOIN contacts c ON c.id = d.contact_id"
        " WHERE c.email = ?", [email]).fetchone()[0]
        for email in ("bob@example.com", "ana@example.com")]
    steps = [  # (delivery, score, kind, reason, seconds to the next step)
        (bob_id, 9, "score", None, 2), (ana_id, 4, "score", None, 0),
        (bob_id, 3, "score", None, 30),  # a burst with bob's 9
        (bob_id, 7, "score", "user-agent", 1), (bob_id, 8, "score", None, 20),
        (ana_id, None, "honeypot", None, 1), (ana_id, 10, "score", None, 0),
        (bob_id, 5, "score", None, 100), (ana_id, 6, "score", None, 0),
        (bob_id, 6, "score", None, 0), (bob_id, 6, "score", None, 3),
        (ana_id, 2, "score", None, 0),  # a burst with ana's 6: her human 4 comes back
    ]
    for delivery_id, score, kind, reason, seconds in steps:
        click = {"method": "GET", "kind": kind, "reason": reason, "user_agent": BROWSER_UA}
        humans.record_click(db, delivery_id, score, **click)  # log and fold at once
        humans.log_click(batch, delivery_id, score, **click)  # only log
        clock.advance(seconds)
    assert humans.fold(batch) == len(steps)

    def rows(database, table):
        # Every column but updated_at: when the row was written, which a later fold is.
        return [tuple(v for k, v in dict(r).items() if k != "updated_at")
                for r in database.execute(f"SELECT * FROM {table} ORDER BY id")]

    for table in ("clicks", "responses", "clicks_folded"):
        assert rows(batch, table) == rows(db, table)
    flags = {r[0]: (r[1], r[2]) for r in db.execute(
        "SELECT delivery_id, score, automated FROM responses")}
    assert flags == {bob_id: (6, 0), ana_id: (4, 0)}  # the checks above compared something


def test_a_backlog_folds_in_batches(client, db, bob, clock, monkeypatch):
    for path in bob:
        click(client, path)
        clock.advance(0.05)
    transactions = []
    write = db_.write

    def counted(database):
        transactions.append(1)
        return write(database)

    monkeypatch.setattr(humans, "FOLD_BATCH", 3)
    monkeypatch.setattr(db_, "write", counted)
    assert humans.fold(db) == 11
    assert len(transactions) == 4  # 3 + 3 + 3 + 2: the write lock is let go in between
    assert humans.fold(db) == 0 and len(transactions) == 4  # nothing left: no lock taken
    monkeypatch.undo()
    assert {(c["automated"], c["reason"]) for c in clicks(db)} == {(1, "burst")}


def test_clicks_logged_before_the_upgrade_are_not_folded_again(tmp_path):
    database = db_.connect(tmp_path / "old.db")
    migrations.apply(database, stop_before="m011_clicks_folded")
    assert "clicks_folded" not in database.table_names()
    database.execute("PRAGMA foreign_keys=OFF")  # a click alone, no delivery behind it
    database.execute("INSERT INTO clicks (delivery_id, score, method, clicked_at)"
                     " VALUES (1, 5, 'GET', '2026-01-01 00:00:00.000000')")
    database.execute("PRAGMA foreign_keys=ON")
    db_.migrate(database)
    assert database.execute("SELECT until_id FROM clicks_folded").fetchone()[0] == 1
    assert humans.fold(database) == 0


# Scanners -------------------------------------------------------------------------------


def test_all_eleven_links_within_a_second_are_a_burst(client, db, bob, clock, runner,
                                                      monkeypatch):
    for path in bob:  # what Safe Links or Mimecast does on delivery
        assert click(client, path).status_code == 303
        clock.advance(0.05)
    logged = clicks(db)
    assert len(logged) == 11
    assert {(c["automated"], c["reason"]) for c in logged} == {(1, "burst")}
    assert response(db)["automated"] == 1
    assert counts(runner, monkeypatch) == (0, 1)
    assert counts(runner, monkeypatch, "strict") == (0, 1)


def test_a_burst_unmarks_a_response_counted_a_moment_before(client, db, bob, clock, runner,
                                                            monkeypatch):
    click(client, bob[9])
    show(client, f"/testimonial/{token_of(bob[9])}")  # a sandbox no test can tell apart
    assert counts(runner, monkeypatch) == (1, 0)
    clock.advance(2)
    click(client, bob[3])
    assert [c["automated"] for c in clicks(db)] == [1, 1]
    assert counts(runner, monkeypatch) == (0, 1)


def test_a_slow_scanner_is_still_a_burst_click_by_click(client, db, bob, clock, runner,
                                                        monkeypatch):
    for path in bob:  # eleven clicks over 40 s, each within the window of the one before
        click(client, path)
        clock.advance(4)
    assert {c["automated"] for c in clicks(db)} == {1}
    assert counts(runner, monkeypatch) == (0, 1)


def test_the_same_score_twice_is_not_a_burst(client, db, bob, clock, runner, monkeypatch):
    # Time-of-click scanners fetch the link the person clicked, then the person arrives.
    click(client, bob[10])
    clock.advance(0.3)
    person_click(client, bob[10])
    assert [c["automated"] for c in clicks(db)] == [0, 0]
    assert counts(runner, monkeypatch) == (1, 0)


@pytest.mark.parametrize("order", ["honeypot first", "honeypot after"])
def test_a_honeypot_hit_marks_the_clicks_around_it(client, db, bob, clock, order, runner,
                                                   monkeypatch):
    honeypot = f"/r/{token_of(bob[7])}/hp"
    if order == "honeypot first":
        assert click(client, honeypot).status_code == 204
        clock.advance(3)
        click(client, bob[7])
    else:
        person_click(client, bob[7])
        assert counts(runner, monkeypatch) == (1, 0)
        clock.advance(3)
        assert click(client, honeypot).status_code == 204
    assert {(c["kind"], c["automated"], c["reason"]) for c in clicks(db)} == {
        ("honeypot", 1, "honeypot"), ("score", 1, "honeypot")}
    assert counts(runner, monkeypatch) == (0, 1)


def test_a_honeypot_hit_long_before_leaves_a_later_click_alone(client, db, bob, clock, runner,
                                                               monkeypatch):
    click(client, f"/r/{token_of(bob[8])}/hp")
    clock.advance(60)
    person_click(client, bob[8])
    assert counts(runner, monkeypatch) == (1, 0)


@pytest.mark.parametrize("ua", [
    "Mozilla/5.0 (compatible; BingPreview/1.0b) AppleWebKit/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/131.0.0.0 Safari",
    "python-requests/2.32.3",
    "",
])
def test_a_listed_user_agent_is_automated(client, db, bob, ua, runner, monkeypatch):
    click(client, bob[6], ua=ua)
    assert [(c["automated"], c["reason"]) for c in clicks(db)] == [(1, "user-agent")]
    assert counts(runner, monkeypatch) == (0, 1)


@pytest.mark.parametrize("ip", ["40.92.13.7", "148.163.130.1", "2a01:111:f400::25",
                                "::ffff:40.107.2.9"])
def test_a_listed_network_is_automated(client, db, bob, ip, runner, monkeypatch):
    click(client, bob[6], ip=ip)
    [logged] = clicks(db)
    assert (logged["automated"], logged["reason"]) == (1, "network")
    assert ip not in logged["ip_hash"]
    assert counts(runner, monkeypatch) == (0, 1)


def test_operators_extend_the_lists_with_their_own_files(settings, db, bob, tmp_path,
                                                         monkeypatch, runner):
    agents = tmp_path / "agents.txt"
    agents.write_text("# our gateway\nAcmeGuard\n")
    networks = tmp_path / "networks.txt"
    networks.write_text("203.0.113.0/24\n")
    monkeypatch.setenv("SURVEY_SCANNER_USER_AGENTS", str(agents))
    monkeypatch.setenv("SURVEY_SCANNER_NETWORKS", str(networks))
    client = create_app({"TESTING": True, "RATELIMIT_ENABLED": False}).test_client()
    click(client, bob[1], ua="Mozilla/5.0 AcmeGuard/2")
    click(client, score_links(outbox(settings)["ana@example.com"])[2], ip="203.0.113.200")
    person_click(client, score_links(outbox(settings)["sven@example.com"])[9], ip="203.0.114.1")
    assert [(c["score"], c["reason"]) for c in clicks(db)] == [
        (1, "user-agent"), (2, "network"), (9, None)]
    assert counts(runner, monkeypatch) == (1, 2)


def test_a_bad_network_line_names_the_file_and_line(tmp_path):
    networks = tmp_path / "networks.txt"
    networks.write_text("# ours\n203.0.113.0/24\nmimecast\n")
    with pytest.raises(ConfigError) as e:
        humans.scanners(None, str(networks))
    assert str(e.value) == (f'{networks} line 3: "mimecast" is not an IP network '
                            "(write it like 192.0.2.0/24)")


def test_the_built_in_lists_load():
    scanners = humans.scanners()
    assert scanners.reason("Mozilla/5.0 (compatible; Barracuda)", "192.0.2.1") == "user-agent"
    assert scanners.reason(BROWSER_UA, "104.47.1.1") == "network"
    assert scanners.reason(BROWSER_UA, "192.0.2.1") is None
    assert scanners.reason(BROWSER_UA, "not an address") is None


def test_a_scanner_never_unsubscribes(client, db, sent_campaign, settings):
    msg = outbox(settings)["bob@example.com"]
    path = msg["List-Unsubscribe"].strip("<>").removeprefix("http://survey.test")
    for method in ("GET", "HEAD"):
        reply = client.open(path, method=method,
                            headers={"User-Agent": "Mimecast", "Sec-Purpose": "prefetch"})
        assert reply.status_code == 200
        reply = client.open(path, method=method, headers={"User-Agent": BROWSER_UA})
        assert reply.status_code == 200
    assert db.execute("SELECT count(*) FROM unsubscribes").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM contacts WHERE unsubscribed_at IS NOT NULL"
                      ).fetchone()[0] == 0


# People ---------------------------------------------------------------------------------


def test_a_human_click_after_the_window_counts_again(client, db, bob, clock, runner,
                                                     monkeypatch):
    for path in bob:
        click(client, path)
        clock.advance(0.05)
    assert counts(runner, monkeypatch) == (0, 1)
    clock.advance(11)  # SURVEY_BURST_SECONDS defaults to 10
    person_click(client, bob[8])
    assert clicks(db)[-1]["automated"] == 0
    assert (response(db)["score"], response(db)["automated"]) == (8, 0)
    assert counts(runner, monkeypatch) == (1, 0)
    assert report(runner, monkeypatch)["passives"] == 1


def test_the_burst_window_is_a_setting(client, db, bob, clock, runner, monkeypatch, settings):
    monkeypatch.setenv("SURVEY_BURST_SECONDS", "2")
    client = create_app({"TESTING": True, "RATELIMIT_ENABLED": False}).test_client()
    person_click(client, bob[9])
    clock.advance(3)
    person_click(client, bob[10])
    db = db_.open_configured(config_.load())  # folds with the window the settings name
    assert [c["automated"] for c in clicks(db)] == [0, 0]
    assert response(db)["score"] == 10
    assert counts(runner, monkeypatch) == (1, 0)


def test_a_burst_later_gives_back_the_earlier_human_score(client, db, bob, clock, runner,
                                                          monkeypatch):
    person_click(client, bob[9])
    clock.advance(86400)  # a day later the gateway rescans the email
    for path in bob:
        click(client, path)
        clock.advance(0.05)
    assert (response(db)["score"], response(db)["automated"]) == (9, 0)
    assert report(runner, monkeypatch)["promoters"] == 1


def test_strict_counts_only_confirmed_responses(client, db, bob, runner, monkeypatch):
    person_click(client, bob[10])
    assert counts(runner, monkeypatch, "balanced") == (1, 0)
    assert counts(runner, monkeypatch, "strict") == (0, 0)


def landing_beacon(client, path: str) -> str:
    """Follow a score link to its landing page; return the beacon URL that page carries."""
    page = click(client, path, follow_redirects=True)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<script>" not in html  # the CSP forbids inline scripts
    match = re.search(r'<script src="/static/human.js" data-beacon="([^"]+)"', html)
    return match.group(1)


def test_the_beacon_confirms_and_overrides_the_burst(client, db, bob, clock, runner,
                                                     monkeypatch):
    for path in bob:
        click(client, path)
        clock.advance(0.05)
    beacon = landing_beacon(client, bob[10])
    assert counts(runner, monkeypatch, "strict") == (0, 1)
    reply = client.post(beacon, data={"event": "pointerdown"})  # no CSRF token needed
    assert reply.status_code == 204
    row = response(db)
    assert (row["confirmed"], row["confirmed_by"]) == (1, "beacon:pointerdown")
    assert counts(runner, monkeypatch, "strict") == (1, 0)
    assert counts(runner, monkeypatch, "balanced") == (1, 0)


def test_clicks_never_change_a_confirmed_response(client, db, bob, clock, runner,
                                                  monkeypatch):
    click(client, bob[9])
    client.post(landing_beacon(client, bob[9]), data={"event": "keydown"})
    clock.advance(86400)
    click(client, bob[0], ua="Mimecast")
    clock.advance(1)
    click(client, bob[4])
    row = response(db)
    assert (row["score"], row["confirmed"]) == (9, 1)
    assert counts(runner, monkeypatch, "strict") == (1, 0)


@pytest.mark.parametrize("token", ["garbage", "score"])
def test_the_beacon_needs_its_own_signed_token(client, db, bob, token, runner, monkeypatch):
    click(client, bob[5])
    if token == "score":
        token = token_of(bob[5])  # signed, but for another purpose
    reply = client.post(f"/b/{token}", data={"event": "pointerdown"})
    assert reply.status_code == 404
    assert "This link does not work" in reply.get_data(as_text=True)
    assert response(db)["confirmed"] == 0
    assert counts(runner, monkeypatch, "strict") == (0, 1)


def test_the_beacon_is_rate_limited(settings, db, bob):
    # Explicitly on: Flask-Limiter keeps the previous app's RATELIMIT_ENABLED as its default.
    client = create_app({"TESTING": True, "RATELIMIT_ENABLED": True}).test_client()
    beacon = landing_beacon(client, bob[5])
    replies = [client.post(beacon).status_code for _ in range(61)]
    assert replies[:60] == [204] * 60
    assert replies[60] == 429


def test_a_form_submission_confirms(client, db, bob, clock, runner, monkeypatch):
    for path in bob:
        click(client, path)
        clock.advance(0.05)
    page = click(client, bob[2], follow_redirects=True).get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    reply = client.post(f"/feedback/{token_of(bob[2])}",
                        data={"csrf_token": token, "score": "2", "comment": "Slow support"})
    assert reply.status_code == 200
    assert (response(db)["confirmed_by"], response(db)["score"]) == ("form", 2)
    assert counts(runner, monkeypatch, "strict") == (1, 0)
    assert report(runner, monkeypatch, "strict")["detractors"] == 1


def test_staff_restore_a_filtered_response_by_hand(client, db, bob, clock, runner,
                                                   monkeypatch):
    click(client, bob[9], ua="Mozilla/5.0 (compatible; BingPreview/1.0b)")
    assert counts(runner, monkeypatch) == (0, 1)
    humans.restore(db, response(db)["id"], staff="sam@acme.test")
    assert response(db)["confirmed_by"] == "staff:sam@acme.test"
    assert counts(runner, monkeypatch) == (1, 0)
    with pytest.raises(NotFound, match='response "999" does not exist'):
        humans.restore(db, 999, staff="sam@acme.test")


# The contract with alerts (notify.py) ---------------------------------------------------


def alertable(db, policy: str = "balanced") -> list[int]:
    fold(db)
    condition = humans.alertable_sql(policy, 10)
    return [r[0] for r in db.execute(f"SELECT r.score FROM responses r WHERE {condition}")]


def test_a_response_settles_once_the_window_passes(client, db, bob, clock):
    person_click(client, bob[2])
    assert alertable(db) == []  # a burst may still follow: no alert yet
    clock.advance(10.5)
    assert alertable(db) == [2]
    assert alertable(db, "strict") == []
    settled = humans.settled_sql(10, alias='responses')
    assert db.execute(f"SELECT count(*) FROM responses WHERE {settled}"
                      ).fetchone()[0] == 1


def test_a_scanner_burst_never_becomes_alertable(client, db, bob, clock):
    for path in bob:
        click(client, path)
        clock.advance(0.05)
    clock.advance(3600)
    assert alertable(db) == []


def test_a_confirmed_response_is_settled_at_once(client, db, bob, clock):
    click(client, bob[1])
    client.post(landing_beacon(client, bob[1]), data={"event": "touchstart"})
    assert alertable(db, "strict") == [1]


def test_the_hand_built_redirects_match_the_routes(app):
    from landing.survey import PAGE_PATHS, PAGES

    with app.test_request_context("/"):
        from flask import url_for

        for segment, endpoint in PAGES.items():
            assert url_for(endpoint, token="T") == PAGE_PATHS[segment] + "T"


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_link_to_a_deleted_survey_records_nothing(client, db, bob, links, method):
    token = links.token("score", 999)  # genuine, but no such delivery
    reply = client.open(f"/r/{token}/7", method=method, headers={"User-Agent": BROWSER_UA})
    assert reply.status_code == 404
    if method == "GET":
        assert "This survey no longer exists." in reply.get_data(as_text=True)
    assert client.get(f"/r/{token}/hp").status_code == 204
    assert clicks(db) == []


@pytest.mark.parametrize("hops, forwarded, client_ip, reason", [
    (0, "40.92.13.7", "127.0.0.1", None),  # no proxy declared: forwarded headers ignored
    (1, "40.92.13.7", "40.92.13.7", "network"),  # behind nginx: the real client, a scanner
    # A client's own X-Forwarded-For comes first; one proxy trusts only the entry it added.
    (1, "40.92.13.7, 198.51.100.7", "198.51.100.7", None),
    (2, "40.92.13.7, 10.0.0.2", "40.92.13.7", "network"),  # load balancer, then nginx
])
def test_behind_proxies_the_real_client_is_seen(db, bob, monkeypatch, hops, forwarded,
                                                client_ip, reason):
    monkeypatch.setenv("SURVEY_PROXY_HOPS", str(hops))
    app = create_app({"TESTING": True, "RATELIMIT_ENABLED": False})
    click(app.test_client(), bob[6], ip="127.0.0.1",
          headers={"X-Forwarded-For": forwarded, "X-Forwarded-Proto": "https"})
    [logged] = clicks(db)
    assert logged["reason"] == reason
    assert logged["ip_hash"] == responses.ip_hash(client_ip, app.config["SECRET_KEY"])


def test_behind_a_proxy_rate_limits_count_each_client(settings, db, bob, monkeypatch):
    monkeypatch.setenv("SURVEY_PROXY_HOPS", "1")
    client = create_app({"TESTING": True, "RATELIMIT_ENABLED": True}).test_client()
    beacon = landing_beacon(client, bob[5])

    def post(ip):
        return client.post(beacon, environ_base={"REMOTE_ADDR": "127.0.0.1"},
                           headers={"X-Forwarded-For": ip}).status_code

    assert [post("198.51.100.7") for _ in range(61)][-2:] == [204, 429]  # one client's limit,
    assert post("203.0.113.9") == 204  # not another's behind the same proxy


# Page seen, and the first link ------------------------------------------------------------


def seen_url(client, landing: str) -> str:
    html = client.get(landing, headers={"User-Agent": BROWSER_UA}).get_data(as_text=True)
    return re.search(r'data-seen="([^"]+)"', html).group(1)


@pytest.mark.parametrize("token", ["garbage", "score", "beacon"])
def test_the_seen_beacon_needs_its_own_signed_token(client, db, bob, token, runner,
                                                     monkeypatch):
    click(client, bob[5])
    beacon = re.search(r"/b/([^/]+)$", landing_beacon(client, bob[5])).group(1)
    token = {"garbage": "garbage", "score": token_of(bob[5]), "beacon": beacon}[token]
    reply = client.post(f"/s/{token}", data={"score": "5"})
    assert reply.status_code == 404
    assert "This link does not work" in reply.get_data(as_text=True)
    assert counts(runner, monkeypatch) == (0, 1)


@pytest.mark.parametrize("ua, ip, score", [
    ("Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/131.0.0.0 Safari/537.36", "198.51.100.7",
     "5"),
    (BROWSER_UA, "40.92.13.7", "5"),  # Microsoft's mail network: a Safe Links sandbox
    (BROWSER_UA, "198.51.100.7", "05"),  # not a score
    (BROWSER_UA, "198.51.100.7", "7"),  # a score nobody clicked
])
def test_a_seen_beacon_from_a_scanner_or_for_another_score_counts_nothing(
        client, db, bob, ua, ip, score, runner, monkeypatch):
    click(client, bob[5])
    url = seen_url(client, f"/feedback/{token_of(bob[5])}")
    reply = client.post(url, data={"score": score}, headers={"User-Agent": ua},
                        environ_base={"REMOTE_ADDR": ip})
    assert reply.status_code == 204
    assert (response(db)["score"], response(db)["seen"]) == (5, 0)
    assert counts(runner, monkeypatch) == (0, 1)


def test_a_person_after_a_scanner_burst_is_taken_out_of_it(client, db, bob, clock, runner,
                                                          monkeypatch):
    for path in bob:  # the gateway scans the email as it arrives
        click(client, path)
        clock.advance(0.05)
    clock.advance(2)  # the person opens it and clicks, inside the burst window
    reply = click(client, bob[4])
    assert {c["automated"] for c in clicks(db)} == {1}  # by then, part of the burst
    show(client, reply.headers["Location"])  # their browser shows the page
    logged = clicks(db)
    assert [c["automated"] for c in logged] == [1] * 11 + [0]
    assert (response(db)["score"], response(db)["automated"]) == (4, 0)
    assert counts(runner, monkeypatch) == (1, 0)
    assert report(runner, monkeypatch)["detractors"] == 1
    # The gateway's twelve other fetches stay machine traffic in the click log.
    assert db.execute("SELECT count(*) FROM clicks WHERE seen = 1").fetchone()[0] == 1


def test_a_person_who_corrects_their_score_counts_with_the_last(client, db, bob, clock, runner,
                                                                 monkeypatch):
    person_click(client, bob[3])
    clock.advance(3)  # back to the email: a different score inside the window
    person_click(client, bob[8])
    assert (response(db)["score"], response(db)["automated"]) == (8, 0)
    assert counts(runner, monkeypatch) == (1, 0)
    assert report(runner, monkeypatch)["passives"] == 1


def test_a_page_seen_late_never_brings_back_an_older_score(client, db, bob, clock, runner,
                                                          monkeypatch):
    click(client, bob[3])
    old_page = seen_url(client, f"/feedback/{token_of(bob[3])}")
    clock.advance(30)
    person_click(client, bob[8])
    client.post(old_page, data={"score": "3"}, headers={"User-Agent": BROWSER_UA})
    assert (response(db)["score"], response(db)["seen"]) == (8, 1)
    assert report(runner, monkeypatch)["passives"] == 1


def test_a_new_score_counts_only_once_its_own_page_is_seen(client, db, bob, clock, runner,
                                                           monkeypatch):
    person_click(client, bob[9])
    clock.advance(60)
    click(client, bob[0])  # a single later fetch of another button, never displayed
    assert (response(db)["score"], response(db)["seen"]) == (0, 0)
    assert counts(runner, monkeypatch) == (0, 1)
    show(client, f"/feedback/{token_of(bob[0])}")
    assert counts(runner, monkeypatch) == (1, 0)


def test_the_web_version_is_the_first_link_and_records_no_vote(client, db, bob, runner,
                                                               monkeypatch):
    token = token_of(bob[0])
    for headers in ({"Sec-Purpose": "prefetch"},):
        assert client.get(f"/v/{token}", headers=headers).status_code == 200
    assert client.head(f"/v/{token}").status_code == 200
    assert clicks(db) == []
    # Slack's unfurl fetches the first URL of the message: a page, no vote.
    page = client.get(f"/v/{token}", headers={
        "User-Agent": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert re.findall(r'href="(/r/[^"]+)"', html) == bob  # the email's own eleven links
    assert [(c["kind"], c["score"], c["automated"], c["reason"]) for c in clicks(db)] == [
        ("view", None, 1, "first-link")]
    assert db.execute("SELECT count(*) FROM responses").fetchone()[0] == 0
    # A person reading the web version votes from it like from the email.
    person_click(client, bob[10])
    assert counts(runner, monkeypatch) == (1, 0)
    assert client.get("/v/garbage").status_code == 404


def test_responses_from_before_the_upgrade_stay_counted(tmp_path):
    database = db_.connect(tmp_path / "old.db")
    migrations.apply(database, stop_before="m019_page_seen")
    database.execute("PRAGMA foreign_keys=OFF")
    for delivery_id, automated in ((1, 0), (2, 1)):
        database.execute(
            "INSERT INTO responses (delivery_id, campaign_id, contact_id, score, automated,"
            " created_at, responded_at) VALUES (?, 1, 1, 9, ?, '2026-01-01', '2026-01-01')",
            [delivery_id, automated])
    database.execute("PRAGMA foreign_keys=ON")
    versions = [r[0] for r in database.execute("SELECT version FROM responses ORDER BY id")]
    db_.migrate(database)
    rows = [tuple(r) for r in database.execute(
        "SELECT seen, automated, version FROM responses ORDER BY id")]
    assert rows == [(1, 0, versions[0]), (0, 1, versions[1])]  # no version bumped
