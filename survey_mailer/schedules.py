"""Schedules: a campaign sent at a set time, or every period (a recurring relationship survey).

`campaign schedule ID --at` sets `send_at`; when it comes, the worker plans the campaign's
deliveries, due at once. `--every quarter` makes the campaign a template: at the start of
each period the worker creates that period's campaign (`Q NPS 2027-Q1`), with the same
content and audience, and gives each eligible contact a moment on one of the first
`spread_days` weekdays of the period, between 09:00 and 17:00 in the contact's own time
zone (attribute `timezone`, else SURVEY_TIMEZONE), spread evenly; a worker that was down
as the period began spreads them from when it opens the period. Periods start in
SURVEY_TIMEZONE. Nothing here sends: the worker sends what is due.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlite_utils

from . import campaigns
from .clock import parse, stamp, utcnow
from .db import write
from .errors import SurveyError

PERIODS = ("month", "quarter", "half-year", "year")
DEFAULT_SPREAD_DAYS = 10
WORK_START = time(9, 0)
# Slots end ten minutes before 17:00, so a round of the worker that comes a little late
# still sends within working hours.
WORK_MINUTES = 8 * 60 - 10


@dataclass(frozen=True)
class Period:
    """One period of a recurring schedule: its label and its start, in the schedule's zone."""

    label: str
    start: datetime  # aware
    end: datetime  # aware, exclusive


def period_of(moment: datetime, every: str, zone: ZoneInfo) -> Period:
    """Return the period of `every` that contains `moment`."""
    local = moment.astimezone(zone)
    year, month = local.year, local.month
    if every == "month":
        first, months, label = month, 1, f"{year}-{month:02d}"
    elif every == "quarter":
        first, months = (month - 1) // 3 * 3 + 1, 3
        label = f"{year}-Q{(month - 1) // 3 + 1}"
    elif every == "half-year":
        first, months = (1, 6) if month <= 6 else (7, 6)
        label = f"{year}-H{1 if month <= 6 else 2}"
    elif every == "year":
        first, months, label = 1, 12, f"{year}"
    else:
        raise SurveyError(f'"{every}" is not a period: use {", ".join(PERIODS)}')
    start = datetime(year, first, 1, tzinfo=zone)
    end_year, end_month = divmod(first - 1 + months, 12)
    end = datetime(year + end_year, end_month + 1, 1, tzinfo=zone)
    return Period(label, start, end)


def next_period(period: Period, every: str, zone: ZoneInfo) -> Period:
    """Return the period after this one."""
    return period_of(period.end, every, zone)


def weekdays(first: date, count: int) -> list[date]:
    """Return the first `count` weekdays (Monday to Friday) from `first` on."""
    days, day = [], first
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def add_working_minutes(start: datetime, minutes: float) -> datetime:
    """Return the moment `minutes` of working time after `start`, a working moment (aware)."""
    zone = start.tzinfo
    # Wall-clock minutes since 09:00 that day (aware datetimes of one zone subtract as
    # wall clocks, so a daylight-saving change inside the day does not shift the hours).
    minutes += (start - datetime.combine(start.date(), WORK_START, zone)).total_seconds() / 60
    whole_days, minutes = divmod(minutes, WORK_MINUTES)
    day = start.date()
    if whole_days:
        day = weekdays(day + timedelta(days=1), int(whole_days))[-1]
    return datetime.combine(day, WORK_START, zone) + timedelta(minutes=minutes)


def window_start(period: Period, zone: ZoneInfo, now: datetime) -> datetime:
    """Return when a period's spread begins in a zone: its first weekday at 09:00, or now.

    A worker that was down when the period began opens it late: the spread then starts at
    the next working minute, so the contacts are still spread over N weekdays, not all
    sent at once.
    """
    first = datetime.combine(weekdays(period.start.date(), 1)[0], WORK_START, zone)
    return first if first >= now else working_moment(now, zone)


def spread(index: int, total: int, start: datetime, days: int) -> datetime:
    """Return the moment of the index-th of `total` contacts: evenly over working hours."""
    return add_working_minutes(start, int(WORK_MINUTES * days * index / max(total, 1)))


def working_moment(moment: datetime, zone: ZoneInfo) -> datetime:
    """Return `moment`, or the next weekday working minute after it, in `zone`."""
    local = moment.astimezone(zone)
    start = datetime.combine(local.date(), WORK_START, zone)
    end = start + timedelta(minutes=WORK_MINUTES)
    if local.weekday() < 5 and start <= local < end:
        return local
    day = local.date() + (timedelta(days=1) if local >= start else timedelta())
    return datetime.combine(weekdays(day, 1)[0], WORK_START, zone)


def label_start(label: str) -> date:
    """Return the first day of a period from its label (2027-Q2, 2027-03, 2027-H2, 2027)."""
    year, _, part = label.partition("-")
    if part.startswith("Q"):
        return date(int(year), 3 * int(part[1:]) - 2, 1)
    if part.startswith("H"):
        return date(int(year), 1 if part == "H1" else 7, 1)
    return date(int(year), int(part or 1), 1)


def contact_zone(attributes: str, default: ZoneInfo) -> ZoneInfo:
    """Return the zone of a contact's `timezone` attribute, else the default."""
    name = json.loads(attributes or "{}").get("timezone")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass  # a typo in a CRM export: the contact still gets their survey
    return default


# Setting schedules ------------------------------------------------------------------------


def parse_local(text: str, zone: ZoneInfo) -> datetime:
    """Read "YYYY-MM-DD HH:MM" in `zone`; raise SurveyError naming the value."""
    try:
        moment = datetime.strptime(text.strip(), "%Y-%m-%d %H:%M")
    except ValueError:
        raise SurveyError(f'"{text}" is not a time: write it as "YYYY-MM-DD HH:MM"') from None
    return moment.replace(tzinfo=zone)


def schedule_at(db: sqlite_utils.Database, campaign_id: int, moment: datetime) -> None:
    """Have the worker send a campaign at a moment (aware, in SURVEY_TIMEZONE)."""
    campaign = campaigns.get(db, campaign_id)
    if moment <= utcnow():
        # A typo in the year would otherwise send the campaign at the worker's next round.
        raise SurveyError(f'"{moment:%Y-%m-%d %H:%M}" ({moment.tzinfo}) has passed: give a '
                          f"time to come, or send now with campaign send")
    if campaign["started_at"]:
        raise SurveyError(f"campaign {campaign_id} has started sending already: a schedule "
                          f"can only be set before")
    with write(db) as conn:
        conn.execute("UPDATE campaigns SET send_at = ?, every = NULL WHERE id = ?",
                     [stamp(moment), campaign_id])


def schedule_now(db: sqlite_utils.Database, campaign_id: int) -> None:
    """Have the worker send a campaign at its next round (the web's "send now")."""
    campaign = campaigns.get(db, campaign_id)
    if campaign["started_at"]:
        raise SurveyError(f"campaign {campaign_id} has started sending already")
    with write(db) as conn:
        conn.execute("UPDATE campaigns SET send_at = ?, every = NULL WHERE id = ?",
                     [stamp(utcnow()), campaign_id])


def schedule_every(db: sqlite_utils.Database, campaign_id: int, every: str, zone: ZoneInfo,
                   spread_days: int = DEFAULT_SPREAD_DAYS) -> Period:
    """Make a campaign recurring; return the first period, the next one to start."""
    if every not in PERIODS:
        raise SurveyError(f'"{every}" is not a period: use {", ".join(PERIODS)}')
    if not 1 <= spread_days <= 60:
        raise SurveyError(f"--spread-days {spread_days} is not from 1 to 60")
    if every == "month" and spread_days > 20:
        # Spread past the month, its last emails would keep its contacts out of the next.
        raise SurveyError(f"--spread-days {spread_days} is more than the weekdays of every "
                          f"month: use 1 to 20 with --every month")
    campaign = campaigns.get(db, campaign_id)
    if campaign["started_at"] or campaign["parent_id"]:
        raise SurveyError(f"campaign {campaign_id} has been sent or is a period of another: "
                          f"make a new campaign recurring instead")
    first = next_period(period_of(utcnow(), every, zone), every, zone)
    with write(db) as conn:
        conn.execute("UPDATE campaigns SET every = ?, spread_days = ?, send_at = ? "
                     "WHERE id = ?", [every, spread_days, stamp(first.start), campaign_id])
    return first


def unschedule(db: sqlite_utils.Database, campaign_id: int) -> None:
    """Cancel any schedule of a campaign (periods already created keep theirs)."""
    campaigns.get(db, campaign_id)
    with write(db) as conn:
        conn.execute("UPDATE campaigns SET send_at = NULL, every = NULL WHERE id = ?",
                     [campaign_id])


def describe(campaign: dict, zone: ZoneInfo) -> str:
    """Say a campaign's schedule in words, times in `zone` ("" when it has none)."""
    if campaign.get("every"):
        return f"every {campaign['every']}, over {campaign['spread_days']} weekdays"
    if campaign.get("send_at"):
        return f"at {parse(campaign['send_at']).astimezone(zone):%Y-%m-%d %H:%M} {zone}"
    return ""


def next_send(campaign: dict, zone: ZoneInfo) -> str | None:
    """Return when the campaign sends next (a stored stamp), or None.

    A recurring campaign: the start of its next period. A scheduled one: its time. One
    sending: its earliest delivery still to go (`next_due`, from campaigns.list_campaigns).
    """
    if campaign.get("every"):
        start = parse(campaign["send_at"]) if campaign.get("send_at") else utcnow()
        if start < utcnow():
            start = next_period(period_of(utcnow(), campaign["every"], zone),
                                campaign["every"], zone).start
        return stamp(start)
    if campaign.get("send_at") and not campaign.get("started_at"):
        return campaign["send_at"]
    return campaign.get("next_due")


# The worker's part ------------------------------------------------------------------------


def start_due(db: sqlite_utils.Database, resurvey_days: int) -> list[tuple[int, int]]:
    """Plan every one-off campaign whose time has come; return (campaign, deliveries)."""
    now = stamp(utcnow())
    started = []
    for (campaign_id,) in db.execute(
            "SELECT id FROM campaigns WHERE send_at <= ? AND every IS NULL"
            " AND started_at IS NULL ORDER BY send_at", [now]).fetchall():
        campaign = campaigns.get(db, campaign_id)
        planned = campaigns.plan(db, campaign, resurvey_days, due=campaign["send_at"])
        campaigns.start(db, campaign_id)
        started.append((campaign_id, planned))
    return started


def open_periods(db: sqlite_utils.Database, zone: ZoneInfo,
                 resurvey_days: int) -> list[tuple[int, str, int]]:
    """Create and plan the current period's campaign of every recurring schedule.

    Return (new campaign id, period label, deliveries planned) for each one created. The
    campaign and its deliveries are written in one transaction, so a crash never leaves a
    period without its deliveries, and two workers racing create one ((parent, period)
    is unique: the second finds it made).
    """
    now = utcnow()
    opened = []
    for row in db.execute("SELECT id FROM campaigns WHERE every IS NOT NULL"
                          " AND send_at <= ?", [stamp(now)]).fetchall():
        parent = campaigns.get(db, row[0])
        period = period_of(now, parent["every"], zone)
        if period.start < parse(parent["send_at"]):
            continue  # the schedule starts with a later period
        with write(db) as conn:
            cursor = conn.execute(
                """
                INSERT INTO campaigns (name, subject, sender, brand, postal_address, segment,
                                       created_at, parent_id, period, remind_after_days,
                                       started_at)
                SELECT name || ' ' || ?, subject, sender, brand, postal_address, segment, ?,
                       id, ?, remind_after_days, ?
                FROM campaigns WHERE id = ?
                ON CONFLICT (parent_id, period) DO NOTHING
                """, [period.label, stamp(now), period.label, stamp(now), parent["id"]])
            if not cursor.rowcount:
                continue
            child_id = cursor.lastrowid
            planned = plan_spread(db, conn, child_id, period, parent["spread_days"], zone,
                                  resurvey_days)
        opened.append((child_id, period.label, planned))
    return opened


def plan_spread(db: sqlite_utils.Database, conn, campaign_id: int, period: Period, days: int,
                zone: ZoneInfo, resurvey_days: int) -> int:
    """Give each eligible contact a delivery at their moment of the period; return how many.

    Runs inside the caller's write transaction (`conn`). A contact surveyed by another
    campaign less than `resurvey_days` before their moment is left out of this period. An
    earlier period of the same schedule counts from its first day: periods are what the
    schedule is for, and so a quarterly schedule reaches everyone each quarter with the
    default 90 days (every quarter is at least 90 days long), while a monthly one leaves
    out whoever a period less than 90 days before surveyed.
    """
    campaign = campaigns.get(db, campaign_id)
    contacts = campaigns.eligible(db, campaign, 0)
    now = utcnow()
    siblings = conn.execute("SELECT id, period FROM campaigns WHERE parent_id = ? AND id != ?",
                            [campaign["parent_id"], campaign_id]).fetchall()
    recent = [r["id"] for r in siblings
              if (period.start.date() - label_start(r["period"])).days < resurvey_days]
    blocked = {r[0] for r in conn.execute(
        f"SELECT contact_id FROM deliveries WHERE campaign_id IN "
        f"({', '.join('?' * len(recent))}) AND status IN ('pending', 'sending', 'sent')",
        recent)} if recent else set()
    # Surveys of other campaigns that might be within the window of someone's moment.
    horizon = stamp(period.start - timedelta(days=resurvey_days + 1))
    last_sent = dict(conn.execute(
        "SELECT contact_id, max(coalesce(sent_at, due_at, created_at)) FROM deliveries"
        " WHERE campaign_id NOT IN (SELECT id FROM campaigns WHERE parent_id = ?)"
        " AND status IN ('pending', 'sending', 'sent')"
        " AND coalesce(sent_at, due_at, created_at) > ? GROUP BY contact_id",
        [campaign["parent_id"], horizon]).fetchall())
    starts: dict[ZoneInfo, datetime] = {}
    rows = []
    for index, (contact_id, attributes) in enumerate(contacts):
        if contact_id in blocked:
            continue
        own = contact_zone(attributes, zone)
        if own not in starts:
            starts[own] = window_start(period, own, now)
        moment = spread(index, len(contacts), starts[own], days)
        last = last_sent.get(contact_id)
        if last and parse(last) > moment - timedelta(days=resurvey_days):
            continue
        rows.append((campaign_id, contact_id, stamp(now), stamp(moment)))
    conn.executemany(
        "INSERT INTO deliveries (campaign_id, contact_id, status, created_at, due_at)"
        " VALUES (?, ?, 'pending', ?, ?) ON CONFLICT (campaign_id, contact_id) DO NOTHING",
        rows)
    return len(rows)
