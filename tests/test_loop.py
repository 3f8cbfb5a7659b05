"""Closing the loop from the worker (SPEC 13): overdue alerts, the digest, theme tagging.

The worker runs in-process (`Worker(...).round()`) on one frozen clock the test moves.
"""
# ruff: noqa: F811  (fixtures imported from staff_support are parameters here)

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from pathlib import Path

import pytest
from staff_support import answer, deliveries, receiver  # noqa: F401 (fixtures)

from survey_mailer import clock as clock_
from survey_mailer import config as config_
from survey_mailer import reports, themes
from survey_mailer.worker import Worker

SUPPORT = "support@acme.test"
BOSS = "boss@acme.test"
WEDNESDAY = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)  # in ISO week 2026-W49


@pytest.fixture
def clock():
    frozen = clock_.Stopped(WEDNESDAY)
    with clock_.frozen(frozen):
        yield frozen


def mails(settings, kind: str) -> list[email.message.EmailMessage]:
    """Return the outbox's emails of one kind (overdue, digest, reply), oldest first."""
    paths = Path(settings["SURVEY_OUTBOX_DIR"]).glob(f"{kind}-n*.eml")
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in sorted(paths, key=lambda p: int(p.stem.split("-n")[1]))]


def test_one_overdue_alert_per_case_never_a_second(clock, settings, monkeypatch, db,
                                                    sent_campaign):
    monkeypatch.setenv("SURVEY_SUPPORT_EMAIL", SUPPORT)
    monkeypatch.setenv("SURVEY_CASE_SLA_HOURS", "48")
    ids = deliveries(db, sent_campaign)
    ana = answer(db, ids["ana@example.com"], 2, "Nobody called back")
    answer(db, ids["bob@example.com"], 9, "Fine")  # a promoter: no case
    Worker(db, config_.load()).round()
    assert mails(settings, "overdue") == []  # new, but within the SLA
    clock.advance(47 * 3600)
    assert Worker(db, config_.load()).round()["overdue"] == 0
    clock.advance(2 * 3600)
    chloe = answer(db, ids["chloe@example.com"], 0, "Worst")  # new: not overdue yet
    done = Worker(db, config_.load()).round()
    assert done["overdue"] == 1
    [alert] = mails(settings, "overdue")
    assert alert["To"] == SUPPORT
    assert alert["Subject"] == "Overdue: Ana García (Acme) scored 2, no follow-up yet"
    assert f"http://survey.test/staff/followups/{ana}" in alert.get_content()
    assert "still new after 48 hours" in alert.get_content()
    # Every later round, and a fresh worker (a restart), sends no second alert for Ana.
    for _ in range(3):
        clock.advance(3600)
        Worker(db, config_.load()).round()
    assert len(mails(settings, "overdue")) == 1
    clock.advance(48 * 3600)
    Worker(db, config_.load()).round()
    overdue = mails(settings, "overdue")
    assert [m["Subject"] for m in overdue] == [
        "Overdue: Ana García (Acme) scored 2, no follow-up yet",
        "Overdue: Chloé Martin (Globex) scored 0, no follow-up yet"]
    assert f"/staff/followups/{chloe}" in overdue[1].get_content()
    Worker(db, config_.load()).round()
    assert len(mails(settings, "overdue")) == 2


def test_an_overdue_alert_goes_to_the_assignee(clock, settings, monkeypatch, db,
                                               sent_campaign):
    from survey_mailer import cases, users

    monkeypatch.setenv("SURVEY_SUPPORT_EMAIL", SUPPORT)
    monkeypatch.setenv("SURVEY_CASE_SLA_HOURS", "0")
    agent, _ = users.add_user(db, "agent@acme.test", "correct horse battery")
    ids = deliveries(db, sent_campaign)
    clock.advance(1)  # answered after the upgrade (the migration's moment)
    ana = answer(db, ids["ana@example.com"], 3, "Slow")
    cases.update_case(db, ana, by=agent, status="new", assignee_id=agent)
    Worker(db, config_.load()).round()
    [alert] = mails(settings, "overdue")
    assert alert["To"] == "agent@acme.test"


def test_cases_overdue_before_the_upgrade_are_marked_not_alerted(clock, settings,
                                                                  monkeypatch, db,
                                                                  sent_campaign):
    from survey_mailer import cases

    monkeypatch.setenv("SURVEY_SUPPORT_EMAIL", SUPPORT)
    ids = deliveries(db, sent_campaign)
    clock.advance(1)
    old = answer(db, ids["ana@example.com"], 2, "Old news")
    clock.advance(72 * 3600)  # overdue for a day already when the worker first looks
    db.execute("UPDATE notify_state SET value = ? WHERE name = 'overdue_until'",
               [clock_.now()])
    db.conn.commit()
    Worker(db, config_.load()).round()
    assert mails(settings, "overdue") == []
    assert [c["id"] for c in cases.list_cases(db, "balanced", status="overdue",
                                                sla_hours=48)] == [old]
    new = answer(db, ids["bob@example.com"], 1, "New")
    clock.advance(49 * 3600)
    Worker(db, config_.load()).round()
    [alert] = mails(settings, "overdue")
    assert f"/staff/followups/{new}" in alert.get_content()


def test_one_digest_per_period_with_reports_numbers(clock, settings, monkeypatch, db,
                                                     sent_campaign, receiver):
    monkeypatch.setenv("SURVEY_DIGEST_EMAILS", f"{BOSS}, ceo@acme.test")
    monkeypatch.setenv("SURVEY_WEBHOOK_URLS", receiver.url + "/hook")
    ids = deliveries(db, sent_campaign)
    answer(db, ids["ana@example.com"], 2, "Slow support")
    answer(db, ids["bob@example.com"], 10, "Love it")
    answer(db, ids["chloe@example.com"], 9, "")
    answer(db, ids["sven@example.com"], 7, "")
    db.execute("UPDATE contacts SET attributes = json_set(attributes, '$.renewal_date', ?)"
               " WHERE company = 'Acme'", ["2027-01-15"])
    db.conn.commit()
    config = config_.load()
    # This week's first round: the digest of last week (nothing in it) goes.
    assert Worker(db, config).round()["digest"] == "2026-W48"
    clock.advance(2 * 86400)  # Friday: same week, no second digest
    assert Worker(db, config).round()["digest"] is None
    receiver.received.clear()
    clock.advance(4 * 86400)  # Tuesday of the next week
    expected = reports.build(db, config)
    by_account = reports.build(db, config, by="account")
    assert Worker(db, config).round()["digest"] == "2026-W49"
    for _ in range(3):
        clock.advance(3600)
        assert Worker(db, config).round()["digest"] is None
    [hook] = [r["json"] for r in receiver.received if r["json"].get("event") == "digest"]
    assert hook["period"] == "2026-W49"
    for field in ("responses", "promoters", "passives", "detractors", "nps"):
        assert hook[field] == expected[field], field
    assert [a["account"] for a in hook["at_risk_accounts"]] == [
        g["key"] for g in by_account["groups"] if g["at_risk"]] == ["Acme"]
    assert hook["at_risk_accounts"][0]["renewal_date"] == "2027-01-15"
    assert [d["email"] for d in hook["new_detractors"]] == ["ana@example.com"]
    digests = [m for m in mails(settings, "digest") if "2026-W49" in m["Subject"]]
    assert sorted(m["To"] for m in digests) == [BOSS, "ceo@acme.test"]
    body = digests[0].get_content()
    assert "Responses: 4 (2 promoters, 1 passives, 1 detractors)" in body
    assert "- Acme: score" in body
    assert len(mails(settings, "digest")) == 4  # W48 and W49, to two people each


def test_no_digest_without_anyone_to_send_it_to(clock, settings, db, sent_campaign):
    assert Worker(db, config_.load()).round()["digest"] is None
    assert db.execute("SELECT count(*) FROM digests").fetchone()[0] == 0


def test_the_worker_tags_new_comments_and_retags_after_a_rule_change(clock, settings, db,
                                                                     sent_campaign):
    ids = deliveries(db, sent_campaign)
    ana = answer(db, ids["ana@example.com"], 2, "El soporte es lento")
    chloe = answer(db, ids["chloe@example.com"], 5, "Le support était LÉNT")
    themes.save(db, "Speed", "slow*, lento, lent")
    Worker(db, config_.load()).round()
    assert themes.of_responses(db, [ana, chloe]) == {ana: ["Speed"], chloe: ["Speed"]}
    bob = answer(db, ids["bob@example.com"], 9, "Fast and friendly support")
    Worker(db, config_.load()).round()
    assert themes.of_responses(db, [bob]) == {}
    themes.save(db, "Support", "support, soporte")
    Worker(db, config_.load()).round()
    assert themes.of_responses(db, [ana, bob, chloe]) == {
        ana: ["Speed", "Support"], bob: ["Support"], chloe: ["Speed", "Support"]}


def test_retagging_goes_in_slices_and_starts_again_after_a_rule_change(
        clock, settings, db, sent_campaign, monkeypatch):
    ids = deliveries(db, sent_campaign)
    said = {"ana@example.com": "slow support", "bob@example.com": "so slow",
            "chloe@example.com": "support was fine"}
    answers = {email: answer(db, ids[email], 5, text) for email, text in said.items()}
    speed = themes.save(db, "Speed", "slow")
    themes.tag_new(db)
    monkeypatch.setattr(themes, "BATCH", 1)
    themes.save(db, "Speed", "support", speed)  # a rule change: every comment again
    themes.tag_new(db, batches=1)  # one slice: Ana's comment only
    assert themes.stale(db)
    assert themes.of_responses(db, list(answers.values())) == {
        answers["ana@example.com"]: ["Speed"], answers["bob@example.com"]: ["Speed"]}
    themes.save(db, "Speed", "fine", speed)  # changed again mid-way: the pass starts over
    themes.tag_new(db, batches=2)
    assert themes.stale(db)
    # Ana's and Bob's done (no longer Speed), Chloé's not yet (not Speed yet).
    assert themes.of_responses(db, list(answers.values())) == {}
    themes.tag_new(db, batches=5)
    assert not themes.stale(db)
    assert themes.of_responses(db, list(answers.values())) == {
        answers["chloe@example.com"]: ["Speed"]}


def test_a_digest_with_nobody_to_send_it_from_waits_unclaimed(clock, settings, db,
                                                                monkeypatch):
    # No campaign yet and no SURVEY_SUPPORT_EMAIL: no sender, so the period is not claimed
    # by a digest that goes nowhere; once there is a sender, that period's digest goes out.
    monkeypatch.setenv("SURVEY_DIGEST_EMAILS", BOSS)
    monkeypatch.delenv("SURVEY_SUPPORT_EMAIL", raising=False)
    assert Worker(db, config_.load()).round()["digest"] is None
    assert db.execute("SELECT count(*) FROM digests").fetchone()[0] == 0
    monkeypatch.setenv("SURVEY_SUPPORT_EMAIL", "support@acme.test")
    assert Worker(db, config_.load()).round()["digest"] == "2026-W48"
    assert [m["To"] for m in mails(settings, "digest")] == [BOSS]
