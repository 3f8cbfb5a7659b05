"""Schedules and recurring periods, driven by an injected clock (SPEC 10).

The worker runs in-process (`Worker(...).round()`) while the test moves the one clock
(`clock.frozen`), so months of schedule pass in a second.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from survey_mailer import clock, schedules, transactional
from survey_mailer import config as config_
from survey_mailer import db as db_
from survey_mailer.clock import parse, stamp
from survey_mailer.worker import Worker

STOCKHOLM = ZoneInfo("Europe/Stockholm")
ZONES = ["America/Los_Angeles", "Europe/Stockholm", "Asia/Tokyo", ""]  # "": SURVEY_TIMEZONE
CONTACTS = 24


class Clock:
    """A clock the test sets; every module reads it through `clock.frozen`."""

    def __init__(self, moment: datetime):
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment

    def at(self, moment: datetime) -> Clock:
        self.moment = moment.astimezone(UTC)
        return self


@pytest.fixture
def stockholm(monkeypatch, settings):
    monkeypatch.setenv("SURVEY_TIMEZONE", "Europe/Stockholm")


@pytest.fixture
def now():
    """The clock, frozen at 2026-12-01 10:00 UTC until the test moves it."""
    moving = Clock(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
    with clock.frozen(moving):
        yield moving


def people(runner, tmp_path, count: int = CONTACTS, extra: tuple[str, ...] = ()) -> list[str]:
    """Import contacts in several time zones (and some with none); return their addresses."""
    emails = [f"p{i:02d}@example.com" for i in range(count)] + list(extra)
    path = tmp_path / "people.csv"
    path.write_text("email,name,timezone\n" + "".join(
        f"{e},Person {i},{ZONES[i % len(ZONES)]}\n" for i, e in enumerate(emails)))
    result = runner("contacts", "import", str(path))
    assert result.exit_code == 0, result.output
    return emails


def create(runner, name: str = "Q NPS", *options: str) -> int:
    result = runner("campaign", "create", "--name", name, "--subject", "A quick question",
                    "--sender", "Acme <nps@acme.test>", *options)
    assert result.exit_code == 0, result.output
    return int(result.output.splitlines()[-1])


def worker(db) -> Worker:
    return Worker(db, config_.load())


def deliveries(db, campaign_id: int) -> list[dict]:
    return [dict(r) for r in db.execute(
        "SELECT d.*, c.email, c.attributes FROM deliveries d JOIN contacts c "
        "ON c.id = d.contact_id WHERE d.campaign_id = ? ORDER BY d.id", [campaign_id])]


def period_campaigns(db, parent_id: int) -> dict[str, int]:
    return {r["name"]: r["id"] for r in db.execute(
        "SELECT id, name FROM campaigns WHERE parent_id = ? ORDER BY id", [parent_id])}


def local(row: dict, default: ZoneInfo = STOCKHOLM) -> datetime:
    """Return a delivery's due time in its contact's own zone."""
    zone = json.loads(row["attributes"]).get("timezone")
    return parse(row["due_at"]).astimezone(ZoneInfo(zone) if zone else default)


def first_weekdays(start: date, count: int) -> list[date]:
    days, day = [], start
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def assert_working_hours(rows: list[dict], days: list[date]) -> None:
    for row in rows:
        moment = local(row)
        assert moment.weekday() < 5, (row["email"], moment)
        assert "09:00" <= f"{moment:%H:%M}" < "17:00", (row["email"], moment)
        assert moment.date() in days, (row["email"], moment)


def drive(db, now: Clock, campaign_id: int) -> None:
    """Move the clock to each due time in turn, a round at each: sent exactly when due."""
    moments = sorted({r["due_at"] for r in deliveries(db, campaign_id)})
    for moment in moments:
        now.at(parse(moment))
        worker(db).round()
        rows = deliveries(db, campaign_id)
        due = {r["id"] for r in rows if r["due_at"] <= moment}
        assert {r["id"] for r in rows if r["status"] == "sent"} == due, moment
        for row in rows:
            if row["status"] == "sent":
                assert row["sent_at"] >= row["due_at"]
    assert {r["status"] for r in deliveries(db, campaign_id)} == {"sent"}


def survey_elsewhere(db, email: str, now: Clock, when: datetime) -> None:
    """Have another campaign (a transactional one) survey this contact at `when`."""
    others = db.execute("SELECT id FROM campaigns WHERE name = 'Support'").fetchone()
    campaign_id = others[0] if others else None
    if campaign_id is None:
        from survey_mailer import campaigns
        campaign_id = campaigns.create(db, name="Support", subject="How did we do?",
                                       sender="Acme <nps@acme.test>")
    before = now.moment
    now.at(when)
    transactional.request(db, campaign_id, email=email)
    worker(db).round()
    assert db.execute("SELECT status FROM deliveries d JOIN contacts c ON c.id = "
                      "d.contact_id WHERE c.email = ? AND d.campaign_id = ?",
                      [email, campaign_id]).fetchone()[0] == "sent"
    now.at(before)


# Recurring: two quarter boundaries -------------------------------------------------------


def test_every_quarter_across_two_boundaries(runner, db, tmp_path, stockholm, now):
    emails = people(runner, tmp_path, extra=("early@example.com",))
    parent = create(runner)
    result = runner("campaign", "schedule", str(parent), "--every", "quarter")
    assert result.exit_code == 0, result.output
    assert result.output == (f"Campaign {parent}: every quarter, spread over 10 weekdays; "
                             f"the first is 2027-Q1, from 2027-01-01 00:00 Europe/Stockholm\n")
    # Surveyed by another campaign 12 days before Q1: left out of Q1, back in Q2.
    survey_elsewhere(db, "early@example.com", now, datetime(2026, 12, 20, 12, tzinfo=UTC))

    now.at(datetime(2026, 12, 31, 23, 59, tzinfo=STOCKHOLM))
    worker(db).round()
    assert period_campaigns(db, parent) == {}  # not before the period starts

    now.at(datetime(2027, 1, 1, 0, 0, 1, tzinfo=STOCKHOLM))
    done = worker(db).round()
    assert done["sent"] == 0  # nothing is due at midnight
    q1 = period_campaigns(db, parent)["Q NPS 2027-Q1"]
    rows = deliveries(db, q1)
    assert sorted(r["email"] for r in rows) == sorted(set(emails) - {"early@example.com"})
    assert_working_hours(rows, first_weekdays(date(2027, 1, 1), 10))
    drive(db, now, q1)

    # A contact added during Q1 joins in Q2, unless another campaign surveyed them a week
    # before Q2.
    now.at(datetime(2027, 2, 1, 12, tzinfo=UTC))
    (tmp_path / "new.csv").write_text("email,timezone\nnew@example.com,Asia/Tokyo\n"
                                      "recent@example.com,America/Los_Angeles\n")
    assert runner("contacts", "import", str(tmp_path / "new.csv")).exit_code == 0
    emails += ["new@example.com", "recent@example.com"]
    survey_elsewhere(db, "recent@example.com", now, datetime(2027, 3, 25, 10, tzinfo=UTC))
    now.at(datetime(2027, 4, 1, 0, 0, 1, tzinfo=STOCKHOLM))
    worker(db).round()
    worker(db).round()  # a second round opens nothing more
    assert list(period_campaigns(db, parent)) == ["Q NPS 2027-Q1", "Q NPS 2027-Q2"]
    q2 = period_campaigns(db, parent)["Q NPS 2027-Q2"]
    rows = deliveries(db, q2)
    # Everyone surveyed in Q1 is surveyed again in Q2 (a quarter is at least 90 days, the
    # default SURVEY_RESURVEY_DAYS), and so is early@, but not recent@.
    assert sorted(r["email"] for r in rows) == sorted(set(emails) - {"recent@example.com"})
    assert_working_hours(rows, first_weekdays(date(2027, 4, 1), 10))
    drive(db, now, q2)

    # Every contact once per period, and the two periods' campaigns carry the content.
    for campaign_id in (q1, q2):
        counts = db.execute("SELECT contact_id, count(*) FROM deliveries WHERE "
                            "campaign_id = ? GROUP BY contact_id HAVING count(*) > 1",
                            [campaign_id]).fetchall()
        assert counts == []
        row = db.execute("SELECT subject, sender, parent_id, period FROM campaigns "
                         "WHERE id = ?", [campaign_id]).fetchone()
        assert tuple(row)[:3] == ("A quick question", "Acme <nps@acme.test>", parent)


def test_the_spread_is_even_over_the_weekdays(runner, db, tmp_path, stockholm, now):
    people(runner, tmp_path, count=200)
    parent = create(runner)
    assert runner("campaign", "schedule", str(parent), "--every", "quarter").exit_code == 0
    now.at(datetime(2027, 1, 1, 0, 0, 1, tzinfo=STOCKHOLM))
    worker(db).round()
    rows = deliveries(db, period_campaigns(db, parent)["Q NPS 2027-Q1"])
    per_day: dict[date, int] = {}
    for row in rows:
        per_day[local(row).date()] = per_day.get(local(row).date(), 0) + 1
    assert sorted(per_day) == first_weekdays(date(2027, 1, 1), 10)
    assert set(per_day.values()) == {20}


def test_spread_days_and_month_labels(runner, db, tmp_path, stockholm, now):
    emails = people(runner, tmp_path)
    parent = create(runner, "Pulse")
    now.at(datetime(2027, 2, 10, 12, tzinfo=UTC))
    result = runner("campaign", "schedule", str(parent), "--every", "month",
                    "--spread-days", "3")
    assert result.output == (f"Campaign {parent}: every month, spread over 3 weekdays; the "
                             f"first is 2027-03, from 2027-03-01 00:00 Europe/Stockholm\n")
    now.at(datetime(2027, 3, 1, 0, 0, 1, tzinfo=STOCKHOLM))
    worker(db).round()
    march = period_campaigns(db, parent)["Pulse 2027-03"]
    rows = deliveries(db, march)
    assert sorted(r["email"] for r in rows) == sorted(emails)
    # Monday 1 to Wednesday 3 March 2027.
    assert_working_hours(rows, [date(2027, 3, 1), date(2027, 3, 2), date(2027, 3, 3)])
    assert {local(r).date() for r in rows} == {date(2027, 3, 1), date(2027, 3, 2),
                                                date(2027, 3, 3)}
    drive(db, now, march)
    # April: everyone was surveyed in March, 31 days before: SURVEY_RESURVEY_DAYS (90)
    # applies between a schedule's own periods too, so April surveys nobody...
    now.at(datetime(2027, 4, 1, 0, 0, 1, tzinfo=STOCKHOLM))
    worker(db).round()
    assert deliveries(db, period_campaigns(db, parent)["Pulse 2027-04"]) == []
    # ...and June, 92 days after March began, everyone again.
    now.at(datetime(2027, 6, 1, 0, 0, 1, tzinfo=STOCKHOLM))
    worker(db).round()
    assert list(period_campaigns(db, parent)) == ["Pulse 2027-03", "Pulse 2027-04",
                                                  "Pulse 2027-06"]
    assert len(deliveries(db, period_campaigns(db, parent)["Pulse 2027-06"])) == len(emails)


def test_a_spread_across_daylight_saving_changes_keeps_working_hours(runner, db, tmp_path,
                                                                    stockholm, now):
    """March 2027: Los Angeles moves its clocks on Sunday the 14th, mid-spread."""
    people(runner, tmp_path, count=120)
    parent = create(runner, "Pulse")
    assert runner("campaign", "schedule", str(parent), "--every", "month", "--spread-days",
                  "20").exit_code == 0
    now.at(datetime(2027, 3, 1, 0, 0, 1, tzinfo=STOCKHOLM))
    worker(db).round()
    rows = deliveries(db, period_campaigns(db, parent)["Pulse 2027-03"])
    assert len(rows) == 120
    assert_working_hours(rows, first_weekdays(date(2027, 3, 1), 20))
    assert {local(r).date() for r in rows} == set(first_weekdays(date(2027, 3, 1), 20))


def test_a_monthly_spread_fits_in_a_month(runner, db):
    parent = str(create(runner))
    result = runner("campaign", "schedule", parent, "--every", "month", "--spread-days", "21")
    assert (result.exit_code, result.output) == (1, (
        "Error: --spread-days 21 is more than the weekdays of every month: use 1 to 20 with "
        "--every month\n"))


@pytest.mark.parametrize("every, opened_at, label", [
    ("month", datetime(2027, 3, 1, 0, 0, 1), "2027-03"),
    ("quarter", datetime(2027, 4, 1, 0, 0, 1), "2027-Q2"),
    ("half-year", datetime(2027, 7, 1, 0, 0, 1), "2027-H2"),
    ("year", datetime(2028, 1, 1, 0, 0, 1), "2028"),
])
def test_period_labels(runner, db, tmp_path, stockholm, now, every, opened_at, label):
    people(runner, tmp_path, count=3)
    parent = create(runner, "NPS")
    now.at(datetime(2027, 2, 15, 12, tzinfo=UTC))
    result = runner("campaign", "schedule", str(parent), "--every", every)
    assert f"the first is {label}, from {opened_at:%Y-%m-%d} 00:00" in result.output
    now.at(opened_at.replace(tzinfo=STOCKHOLM) - timedelta(seconds=2))
    worker(db).round()
    assert period_campaigns(db, parent) == {}
    now.at(opened_at.replace(tzinfo=STOCKHOLM))
    worker(db).round()
    assert list(period_campaigns(db, parent)) == [f"NPS {label}"]


@pytest.mark.parametrize("moment, every, label, start, end", [
    ("2027-01-01 00:00", "quarter", "2027-Q1", "2027-01-01", "2027-04-01"),
    ("2027-03-31 23:59", "quarter", "2027-Q1", "2027-01-01", "2027-04-01"),
    ("2027-12-31 12:00", "quarter", "2027-Q4", "2027-10-01", "2028-01-01"),
    ("2027-12-31 12:00", "month", "2027-12", "2027-12-01", "2028-01-01"),
    ("2027-06-30 23:59", "half-year", "2027-H1", "2027-01-01", "2027-07-01"),
    ("2027-07-01 00:00", "half-year", "2027-H2", "2027-07-01", "2028-01-01"),
    ("2027-07-01 00:00", "year", "2027", "2027-01-01", "2028-01-01"),
])
def test_period_of(moment, every, label, start, end):
    period = schedules.period_of(
        datetime.strptime(moment, "%Y-%m-%d %H:%M").replace(tzinfo=STOCKHOLM), every,
        STOCKHOLM)
    assert (period.label, f"{period.start:%Y-%m-%d}", f"{period.end:%Y-%m-%d}") == (
        label, start, end)


def test_two_workers_open_one_period(runner, db, tmp_path, stockholm, now):
    emails = people(runner, tmp_path)
    parent = create(runner)
    assert runner("campaign", "schedule", str(parent), "--every", "quarter").exit_code == 0
    now.at(datetime(2027, 1, 1, 0, 0, 1, tzinfo=STOCKHOLM))
    connections = [db_.reconnect(db), db_.reconnect(db)]
    workers = [Worker(conn, config_.load()) for conn in connections]
    start = threading.Barrier(2)
    opened: list = []

    def open_period(w: Worker) -> None:
        start.wait()
        opened.append(schedules.open_periods(w.db, w.zone, 90))

    threads = [threading.Thread(target=open_period, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for conn in connections:
        conn.close()
    assert sorted(len(o) for o in opened) == [0, 1]  # one created it, the other found it
    assert list(period_campaigns(db, parent)) == ["Q NPS 2027-Q1"]
    rows = deliveries(db, period_campaigns(db, parent)["Q NPS 2027-Q1"])
    assert sorted(r["email"] for r in rows) == sorted(emails)


def test_a_crash_while_opening_a_period_leaves_no_empty_period(runner, db, tmp_path, now,
                                                              monkeypatch):
    emails = people(runner, tmp_path)
    parent = create(runner)
    assert runner("campaign", "schedule", str(parent), "--every", "month").exit_code == 0
    now.at(datetime(2027, 1, 1, 0, 0, 1, tzinfo=UTC))

    def crash(*args):
        raise OSError("killed")

    with monkeypatch.context() as patched:
        patched.setattr(schedules, "plan_spread", crash)
        with pytest.raises(OSError):
            worker(db).round()
    assert period_campaigns(db, parent) == {}  # nothing half-made
    worker(db).round()
    rows = deliveries(db, period_campaigns(db, parent)["Q NPS 2027-01"])
    assert sorted(r["email"] for r in rows) == sorted(emails)


def test_a_period_opened_late_is_spread_from_then(runner, db, tmp_path, stockholm, now):
    """The worker was down when the quarter began: the spread starts when it comes back."""
    people(runner, tmp_path, count=100)
    parent = create(runner)
    assert runner("campaign", "schedule", str(parent), "--every", "quarter").exit_code == 0
    back = datetime(2027, 1, 6, 13, 30, tzinfo=STOCKHOLM)  # Wednesday, day 4 of 10
    now.at(back)
    worker(db).round()
    rows = deliveries(db, period_campaigns(db, parent)["Q NPS 2027-Q1"])
    assert all(r["due_at"] >= stamp(back) for r in rows)
    days = first_weekdays(date(2027, 1, 6), 11)  # ten weekdays' worth from Wednesday noon
    assert_working_hours(rows, days)
    per_day: dict[date, int] = {}
    for row in rows:
        per_day[local(row).date()] = per_day.get(local(row).date(), 0) + 1
    assert max(per_day.values()) <= 15  # spread, not all at once


# One-off: --at in SURVEY_TIMEZONE ----------------------------------------------------------


def test_at_sends_at_that_moment_not_before(runner, db, tmp_path, stockholm, now):
    emails = people(runner, tmp_path, count=4)
    campaign_id = create(runner)
    result = runner("campaign", "schedule", str(campaign_id), "--at", "2027-01-05 09:00")
    assert result.output == (f"Campaign {campaign_id}: the worker sends it at 2027-01-05 "
                             f"09:00 Europe/Stockholm (2027-01-05T08:00:00Z)\n")
    listed = json.loads(runner("campaign", "list", "--format", "json").output)[0]
    assert (listed["status"], listed["next_send"]) == ("scheduled", "2027-01-05T08:00:00Z")

    now.at(datetime(2027, 1, 5, 8, 59, 59, 999999, tzinfo=STOCKHOLM))
    assert worker(db).round()["sent"] == 0
    assert deliveries(db, campaign_id) == []
    now.at(datetime(2027, 1, 5, 9, 0, tzinfo=STOCKHOLM))
    assert worker(db).round()["sent"] == 4
    rows = deliveries(db, campaign_id)
    assert sorted(r["email"] for r in rows) == sorted(emails)
    assert {(r["status"], r["due_at"], r["sent_at"]) for r in rows} == {
        ("sent", "2027-01-05 08:00:00.000000", "2027-01-05 08:00:00.000000")}
    listed = json.loads(runner("campaign", "list", "--format", "json").output)[0]
    assert (listed["status"], listed["next_send"]) == ("sent", None)


# Automatic reminders ----------------------------------------------------------------------


def test_remind_after_days_sends_one_reminder(runner, db, tmp_path, now, settings):
    from test_remind import reminders, respond

    emails = people(runner, tmp_path, count=4)
    campaign_id = create(runner, "Q NPS", "--remind-after-days", "3")
    now.at(datetime(2027, 1, 4, 9, tzinfo=UTC))
    assert runner("campaign", "schedule", str(campaign_id), "--at",
                  "2027-01-04 10:00").exit_code == 0
    now.at(datetime(2027, 1, 4, 10, tzinfo=UTC))
    assert worker(db).round()["sent"] == 4
    respond(db, emails[0], confirmed=1, automated=0)  # answered: no reminder
    now.at(datetime(2027, 1, 7, 9, 59, tzinfo=UTC))
    assert worker(db).round()["reminded"] == 0  # not before three days
    now.at(datetime(2027, 1, 7, 10, 0, tzinfo=UTC))
    assert worker(db).round()["reminded"] == 3
    assert sorted(reminders(settings)) == sorted(emails[1:])
    for days in (4, 10, 30):
        now.at(datetime(2027, 1, 4, 10, tzinfo=UTC) + timedelta(days=days))
        assert worker(db).round()["reminded"] == 0  # never a second
    assert db.execute("SELECT count(*) FROM reminders").fetchone()[0] == 3


# The command line ------------------------------------------------------------------------


def test_schedule_needs_exactly_one_of_at_every_off(runner, db, tmp_path):
    campaign_id = str(create(runner))
    for options in ([], ["--at", "2030-01-01 09:00", "--off"],
                    ["--every", "month", "--at", "2030-01-01 09:00"]):
        result = runner("campaign", "schedule", campaign_id, *options)
        assert result.exit_code == 2
        assert result.output.splitlines()[-1] == (
            "Error: give exactly one of --at, --every and --off")


@pytest.mark.parametrize("text", ["2027-13-01 09:00", "tomorrow", "2027-01-05T09:00",
                                  "2027-01-05 25:00"])
def test_schedule_a_bad_time_is_one_line_naming_it(runner, db, tmp_path, text):
    campaign_id = str(create(runner))
    result = runner("campaign", "schedule", campaign_id, "--at", text)
    assert result.exit_code == 1
    assert result.output == (f'Error: "{text}" is not a time: write it as '
                             f'"YYYY-MM-DD HH:MM"\n')


def test_schedule_a_past_time_is_refused(runner, db, tmp_path, stockholm, now):
    campaign_id = str(create(runner))
    result = runner("campaign", "schedule", campaign_id, "--at", "2026-11-30 09:00")
    assert result.exit_code == 1
    assert result.output == ('Error: "2026-11-30 09:00" (Europe/Stockholm) has passed: give '
                             'a time to come, or send now with campaign send\n')


def test_schedule_off_and_unknown_campaign(runner, db, tmp_path, now):
    campaign_id = create(runner)
    runner("campaign", "schedule", str(campaign_id), "--every", "year")
    result = runner("campaign", "schedule", str(campaign_id), "--off")
    assert result.output == f"Campaign {campaign_id}: no schedule\n"
    listed = json.loads(runner("campaign", "list", "--format", "json").output)[0]
    assert (listed["status"], listed["schedule"], listed["next_send"]) == ("draft", "", None)
    result = runner("campaign", "schedule", "99", "--off")
    assert (result.exit_code, result.output) == (1, 'Error: campaign "99" does not exist\n')


def vm_steps(db, action) -> int:
    """Count the SQLite virtual machine's steps (in tens) while `action` runs."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    db.conn.set_progress_handler(count, 10)
    try:
        action()
    finally:
        db.conn.set_progress_handler(None, 10)
    return steps


def add_history(db, campaign_ids: list[int], per_campaign: int) -> None:
    """More deliveries for each campaign, to new contacts: sent 30 days ago and answered."""
    stamp_ = clock.ago(30 * 86400)
    first = db.execute("SELECT coalesce(max(id), 0) FROM contacts").fetchone()[0]
    with db_.write(db) as conn:
        conn.executemany(
            "INSERT INTO contacts (email, name, company, language, attributes, created_at,"
            " updated_at) VALUES (?, '', '', 'en', '{}', ?, ?)",
            [(f"h{first + i}@example.com", stamp_, stamp_) for i in range(per_campaign)])
        for campaign_id in campaign_ids:
            conn.execute(
                "INSERT INTO deliveries (campaign_id, contact_id, status, created_at,"
                " sent_at) SELECT ?, id, 'sent', ?, ? FROM contacts WHERE id > ?",
                [campaign_id, stamp_, stamp_, first])
        conn.execute(
            "INSERT INTO responses (delivery_id, campaign_id, contact_id, score,"
            " confirmed, automated, created_at, responded_at) SELECT id, campaign_id,"
            " contact_id, 9, 1, 0, ?, ? FROM deliveries WHERE contact_id > ?",
            [stamp_, stamp_, first])


def test_reminder_rounds_do_not_grow_with_history(db, settings):
    """Each round looks at the deliveries sent since the last one, not at all of them."""
    from survey_mailer import campaigns

    ids = [campaigns.create(db, name=f"Old {i}", subject="s", sender="a@acme.test",
                            remind_after_days=3) for i in range(4)]
    add_history(db, ids, 500)
    the_worker = worker(db)
    the_worker.round()  # the first round reads the whole history once
    small = vm_steps(db, the_worker._remind)
    add_history(db, ids, 5000)
    the_worker.round()
    large = vm_steps(db, the_worker._remind)
    assert db.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 22000
    assert large < 2 * small, (small, large)
