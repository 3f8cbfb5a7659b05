"""The `survey-mailer` command line: one click group, nouns then verbs."""

from __future__ import annotations

import functools
import io
import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from . import api_keys, csvfiles, imports, nps, reminders, reports, responses, schedules, users
from . import campaigns as campaigns_
from . import config as config_
from . import contacts as contacts_
from . import db as db_
from . import links as links_
from .clock import iso, stamp
from .compose import preview_html
from .errors import ImportFailed, SurveyError
from .sender import Sender, Summary
from .sender import from_config as sender_from_config


class State:
    """Settings and database, loaded on first use so `--help` needs neither."""

    def __init__(self):
        self._config = None
        self._db = None

    @property
    def config(self) -> config_.Config:
        if self._config is None:
            self._config = config_.load()
        return self._config

    @property
    def db(self):
        if self._db is None:
            self._db = db_.open_configured(self.config)
        return self._db


def command(group: click.Group, *args, **kwargs):
    """Register a command whose library errors become one clear line on stderr."""

    def decorator(fn):
        @functools.wraps(fn)
        def wrapper(*a, **kw):
            try:
                return fn(*a, **kw)
            except BrokenPipeError:
                # The reader went away (`| head`): stop quietly, as Unix tools do. Python
                # would complain again flushing stdout at exit, so point it at /dev/null.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                sys.exit(0)
            except SurveyError as e:
                raise click.ClickException(str(e)) from e
            except sqlite3.Error as e:  # locked, unreadable, not a database...
                path = a[0].config["SURVEY_DATABASE"] if a else "?"
                raise click.ClickException(
                    f"database {path}: {e} (check SURVEY_DATABASE and that the file is a "
                    f"survey database, then run survey-mailer init)") from e
            except OSError as e:  # a folder that cannot be written, a full disk...
                raise click.ClickException(str(e)) from e

        return group.command(*args, **kwargs)(click.pass_obj(wrapper))

    return decorator


def format_option(fn):
    return click.option("--format", "fmt", type=click.Choice(["table", "json"]),
                        default="table", show_default=True, help="Output format.")(fn)


@click.group()
@click.version_option(package_name="survey-mailer")
@click.pass_context
def cli(ctx):
    """NPS email surveys: import contacts, send a campaign, read the score."""
    ctx.obj = State()


@command(cli, "init")
def init(state: State):
    """Create or migrate the database (safe to run again)."""
    path = state.config["SURVEY_DATABASE"]
    db = db_.connect(path)
    applied = db_.migrate(db)
    state._db = db
    if applied:
        click.echo(f"Database {path}: applied {', '.join(applied)}")
    else:
        click.echo(f"Database {path} is up to date")


@command(cli, "backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
def backup(state: State, file: Path, force: bool):
    """Copy the live database to FILE, consistent while the app and the worker write."""
    if file.exists() and not force:
        raise click.ClickException(f"{file} exists; choose another name or add --force")
    if file.resolve() == Path(state.config["SURVEY_DATABASE"]).resolve():
        raise click.ClickException(f"{file} is the database itself")
    pages = db_.backup(state.db, file)
    click.echo(f"Backed up {state.config['SURVEY_DATABASE']} to {file} ({pages} pages, "
               f"{file.stat().st_size:,} bytes)")


# contacts -------------------------------------------------------------------------------


@cli.group()
def contacts():
    """Import, list and unsubscribe contacts."""


@command(contacts, "import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def contacts_import(state: State, file: Path):
    """Import contacts from a CSV file with a header row (all rows or none)."""
    # As bytes: the encoding (UTF-8, UTF-16, Windows-1252) is detected, see csvfiles.
    click.echo(str(_all_or_nothing(contacts_.import_csv, state.db, file)))


def _all_or_nothing(load, db, file: Path):
    """Run an all-or-nothing CSV import of a file; each bad line on stderr, then one error."""
    try:
        return load(db, file.read_bytes())
    except ImportFailed as e:
        for problem in e.problems:
            click.echo(problem, err=True)
        noun = "problem" if len(e.problems) == 1 else "problems"
        raise click.ClickException(
            f"{len(e.problems)} {noun} in {file}; nothing was imported") from e


@command(contacts, "list")
@format_option
def contacts_list(state: State, fmt: str):
    """List contacts."""
    rows = contacts_.list_contacts(state.db)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    for row in rows:
        status = "erased" if row["erased_at"] else "unsubscribed" if row["unsubscribed_at"] \
            else "suppressed" if row["suppressed_at"] else ""
        click.echo("\t".join([row["email"], row["name"], row["company"], row["language"],
                              status]).rstrip())


@command(contacts, "erase")
@click.argument("email")
def contacts_erase(state: State, email: str):
    """Forget a person for good: their data goes, their scores stay counted anonymously."""
    erased = contacts_.erase(state.db, email)
    if erased is None:
        click.echo(f"{email} was already erased")
        return
    click.echo(f"{email} is erased: {erased.responses} responses kept without personal data, "
               f"{erased.cancelled} unsent surveys cancelled; the address is never imported "
               f"again")


@command(contacts, "unsubscribe")
@click.argument("email")
def contacts_unsubscribe(state: State, email: str):
    """Unsubscribe a contact by email address."""
    contact = contacts_.get_by_email(state.db, email)
    if contacts_.unsubscribe(state.db, contact["id"], method="cli"):
        click.echo(f"{contact['email']} is unsubscribed")
    else:
        click.echo(f"{contact['email']} was already unsubscribed")


# campaigns ------------------------------------------------------------------------------


@cli.group()
def campaign():
    """Create, preview and send survey campaigns."""


def campaign_options(required: bool):
    """The options of `campaign create`, also those of `campaign update` (all optional)."""

    def decorator(fn):
        for option in reversed([
            click.option("--name", required=required, help="Internal name of the campaign."),
            click.option("--subject", required=required, help="Subject line of the email."),
            click.option("--subject-es", help="Subject for contacts in Spanish "
                         "(default: --subject)."),
            click.option("--subject-fr", help="Subject for contacts in French "
                         "(default: --subject)."),
            click.option("--subject-sv", help="Subject for contacts in Swedish "
                         "(default: --subject)."),
            click.option("--sender", required=required,
                         help='From address, e.g. "Acme <nps@acme.com>".'),
            click.option("--brand", help="Name in the question (default: the sender's name)."),
            click.option("--segment", multiple=True, metavar="ATTRIBUTE=VALUE",
                         help="Only contacts matching this (repeatable; all must match)."),
            click.option("--postal-address", help="Postal address in the footer "
                         "(default: SURVEY_POSTAL_ADDRESS)."),
            click.option("--remind-after-days", type=click.IntRange(0, 365),
                         help="The worker sends one reminder N days after each email to "
                              "contacts with no counted response."),
        ]):
            fn = option(fn)
        return fn

    return decorator


@command(campaign, "create")
@campaign_options(required=True)
def campaign_create(state: State, name, subject, subject_es, subject_fr, subject_sv, sender,
                    brand, segment, postal_address, remind_after_days):
    """Create a campaign; its id is printed alone on the last line."""
    campaign_id = campaigns_.create(
        state.db, name=name, subject=subject, sender=sender, brand=brand,
        segment=campaigns_.parse_segment(segment), postal_address=postal_address or "",
        remind_after_days=remind_after_days, subject_es=subject_es or "",
        subject_fr=subject_fr or "", subject_sv=subject_sv or "")
    click.echo(f"Created campaign {name!r}")
    click.echo(campaign_id)


@command(campaign, "update")
@click.argument("campaign_id", type=int)
@campaign_options(required=False)
def campaign_update(state: State, campaign_id: int, name, subject, subject_es, subject_fr,
                    subject_sv, sender, brand, segment, postal_address, remind_after_days):
    """Change a campaign; its content can change until its first message is sent."""
    changed = campaigns_.update(
        state.db, campaign_id, name=name, subject=subject, subject_es=subject_es,
        subject_fr=subject_fr, subject_sv=subject_sv, sender=sender, brand=brand,
        segment=campaigns_.parse_segment(segment) if segment else None,
        postal_address=postal_address, remind_after_days=remind_after_days)
    click.echo(f"Campaign {campaign_id}: " + (f"changed {', '.join(changed)}" if changed
                                               else "nothing to change"))


@command(campaign, "schedule")
@click.argument("campaign_id", type=int)
@click.option("--at", "at", metavar='"YYYY-MM-DD HH:MM"',
              help="Send once at this time, in SURVEY_TIMEZONE.")
@click.option("--every", type=click.Choice(schedules.PERIODS),
              help="Send every period: a new campaign per period, named after it.")
@click.option("--spread-days", type=click.IntRange(1, 60),
              default=schedules.DEFAULT_SPREAD_DAYS, show_default=True,
              help="With --every: spread the emails over the first N weekdays.")
@click.option("--off", is_flag=True, help="Cancel the campaign's schedule.")
def campaign_schedule(state: State, campaign_id: int, at: str | None, every: str | None,
                      spread_days: int, off: bool):
    """Have the worker send a campaign at a time, or every period."""
    if sum(bool(x) for x in (at, every, off)) != 1:
        raise click.UsageError("give exactly one of --at, --every and --off")
    zone = ZoneInfo(state.config["SURVEY_TIMEZONE"])
    if off:
        schedules.unschedule(state.db, campaign_id)
        click.echo(f"Campaign {campaign_id}: no schedule")
    elif at:
        moment = schedules.parse_local(at, zone)
        schedules.schedule_at(state.db, campaign_id, moment)
        click.echo(f"Campaign {campaign_id}: the worker sends it at "
                   f"{moment:%Y-%m-%d %H:%M} {zone.key} ({iso(stamp(moment))})")
    else:
        first = schedules.schedule_every(state.db, campaign_id, every, zone, spread_days)
        click.echo(f"Campaign {campaign_id}: every {every}, spread over {spread_days} "
                   f"weekdays; the first is {first.label}, from "
                   f"{first.start:%Y-%m-%d %H:%M} {zone.key}")


@command(campaign, "list")
@format_option
def campaign_list(state: State, fmt: str):
    """List campaigns: status, schedule, next send, how many were sent and answered."""
    zone = ZoneInfo(state.config["SURVEY_TIMEZONE"])
    rows = campaigns_.list_campaigns(state.db, state.config["SURVEY_SCORE_POLICY"])
    for row in rows:
        row["schedule"] = schedules.describe(row, zone)
        row["next_send"] = iso(schedules.next_send(row, zone))
        for key in ("next_due", "reminders_through"):  # the worker's bookkeeping
            row.pop(key, None)
        for key in ("created_at", "send_at", "started_at", "paused_at"):
            row[key] = iso(row[key])
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    for row in rows:
        segment = " ".join(f"{k}={v}" for k, v in row["segment"].items())
        click.echo("\t".join([
            str(row["id"]), row["name"], row["status"], f"{row['sent']} sent",
            f"{row['responses']} responses", row["schedule"] or "-",
            f"next {row['next_send']}" if row["next_send"] else "-", segment]).rstrip())


@command(campaign, "preview")
@click.argument("campaign_id", type=int)
@click.option("--language", type=click.Choice(contacts_.LANGUAGES), default="en",
              show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the HTML here instead of stdout.")
def campaign_preview(state: State, campaign_id: int, language: str, output: Path | None):
    """Render the campaign's email as HTML (links point nowhere real)."""
    campaign = campaigns_.get(state.db, campaign_id)
    campaign["postal_address"] = (campaign["postal_address"]
                                  or state.config["SURVEY_POSTAL_ADDRESS"])
    html = preview_html(campaign, language, links_.from_config(state.config))
    if output:
        output.write_text(html, encoding="utf-8")
        click.echo(f"Wrote {output}")
    else:
        click.echo(html)


def _sender(state: State, campaign_id: int) -> Sender:
    """Build the sender on the configured backend, at SURVEY_SEND_RATE or its quota."""
    campaigns_.ready(state.db, state.config, campaign_id)  # a clear error before anything
    problem = config_.base_url_problem(state.config)
    if problem:
        click.echo(f"Warning: {problem}", err=True)
    return sender_from_config(state.db, state.config)


def _run_send(sender: Sender, run, dry_run: bool, limit: int | None, label: str) -> None:
    try:
        summary = _with_progress(run, dry_run, limit, sender.limiter.rate)
    finally:
        sender.backend.close()
    if dry_run:
        click.echo(f"Dry run: {summary.eligible} would be sent")
    else:
        click.echo(f"{label}{summary.sent} sent, {summary.failed} failed, "
                   f"{summary.skipped} skipped, {summary.remaining} left to send"
                   + (f", {summary.scheduled} scheduled for later" if summary.scheduled
                      else ""))
    if summary.deferred:
        click.echo(f"{summary.deferred} deferred after temporary errors: run the same "
                   f"command again to retry them", err=True)
    if summary.unknown:
        click.echo(f"{len(summary.unknown)} with unknown fate (interrupted mid-send; not "
                   f"resent, use --retry-unknown to resend):", err=True)
        for email in summary.unknown:
            click.echo(f"  {email}", err=True)
    if summary.stopped:
        raise click.ClickException(f"sending stopped: {summary.stopped}")


def _with_progress(run, dry_run: bool, limit: int | None, cap: float | None = None) -> Summary:
    """Run a send with a progress bar on a terminal (sent, failed, rate, time left)."""
    if dry_run or not sys.stdout.isatty():
        return run(None)
    bar = None
    done = 0
    started = time.monotonic()

    def status(summary: Summary | None) -> str:
        if summary is None or bar is None:
            return ""
        handled = summary.sent + summary.failed + summary.deferred
        rate = handled / max(time.monotonic() - started, 1e-6)
        if cap:  # the first second's burst would promise more than the cap allows
            rate = min(rate, cap)
        return (f"{summary.sent} sent, {summary.failed} failed, {rate:.1f}/s, "
                f"{_duration((bar.length - handled) / rate) if rate else '?'} left")

    def progress(summary: Summary):
        nonlocal bar, done
        if bar is None:
            total = summary.eligible if limit is None else min(limit, summary.eligible)
            bar = click.progressbar(length=total, label="Sending", show_eta=False,
                                    show_pos=True, item_show_func=status).__enter__()
        current = summary.sent + summary.failed + summary.deferred
        bar.update(current - done, summary)
        done = current

    try:
        return run(progress)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)


def _duration(seconds: float) -> str:
    """Say how long, the way a person reads it: 45s, 3m 05s, 2h 10m."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


@command(campaign, "send")
@click.argument("campaign_id", type=int)
@click.option("--dry-run", is_flag=True, help="Count who would get it; send nothing.")
@click.option("--limit", type=click.IntRange(min=1), help="Send at most N messages now.")
@click.option("--retry-unknown", is_flag=True,
              help="Resend messages whose fate is unknown after a crash.")
def campaign_send(state: State, campaign_id: int, dry_run: bool, limit: int | None,
                  retry_unknown: bool):
    """Send to every eligible contact; safe to re-run or resume after a crash."""
    sender = _sender(state, campaign_id)
    _run_send(sender, lambda progress: campaigns_.send(
        state.db, sender, state.config, campaign_id, dry_run=dry_run, limit=limit,
        retry_unknown=retry_unknown, progress=progress), dry_run, limit, "")


@command(campaign, "remind")
@click.argument("campaign_id", type=int)
@click.option("--after-days", type=click.IntRange(min=0), required=True,
              help="Remind contacts who got the campaign at least N days ago.")
@click.option("--dry-run", is_flag=True, help="Count who would get one; send nothing.")
@click.option("--limit", type=click.IntRange(min=1), help="Send at most N reminders now.")
@click.option("--retry-unknown", is_flag=True,
              help="Resend reminders whose fate is unknown after a crash.")
def campaign_remind(state: State, campaign_id: int, after_days: int, dry_run: bool,
                    limit: int | None, retry_unknown: bool):
    """Send one reminder to contacts without a counted response (never two)."""
    sender = _sender(state, campaign_id)
    _run_send(sender, lambda progress: reminders.send(
        state.db, sender, state.config, campaign_id, after_days=after_days, dry_run=dry_run,
        limit=limit, retry_unknown=retry_unknown, progress=progress), dry_run, limit,
        "Reminders: ")


# reports --------------------------------------------------------------------------------


@command(cli, "report")
@click.option("--campaign", "campaign_id", type=int, help="Only this campaign.")
@click.option("--by", help="Break down by account, theme, company, language, quarter, "
              "campaign or attribute:NAME.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True)
def report(state: State, campaign_id: int | None, by: str | None, fmt: str):
    """Print the NPS with its margin of error, counts and response rate."""
    if campaign_id is not None:
        campaigns_.get(state.db, campaign_id)
    result = reports.build(state.db, state.config, campaign_id=campaign_id, by=by)
    everything = result.get("campaign_name") or "all"
    rows = [{"key": everything, **{k: result[k] for k in nps.FIELDS}}] + result.get("groups", [])
    if fmt == "json":
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
    elif fmt == "csv":
        out = io.StringIO()
        csvfiles.write(out, rows, reports.columns(by), lineterminator="\n")
        click.echo(out.getvalue(), nl=False)
    else:
        click.echo(_table(rows, by or ""))


def _table(rows: list[dict], by: str) -> str:
    accounts = by == "account"
    header = [by or "", *(["score", "risk", "renews", "cases", "coverage", "change"]
                          if accounts else []),
              "NPS", "±", "responses", "promoters", "passives", "detractors", "sent", "rate",
              "filtered"]
    lines = [header]
    for r in rows:
        extra = []
        if accounts:
            extra = ["-" if r.get("score") is None else f"{r['score']:.1f}",
                     "AT RISK" if r.get("at_risk") else "", r.get("renewal_date") or "",
                     str(r.get("open_cases", "")),
                     f"{r['coverage']:.0%}" if "coverage" in r else "",
                     "" if r.get("change") is None else f"{r['change']:+.1f}"]
        lines.append([
            f"{r['key']} {r['name']}" if r.get("name") else str(r["key"]), *extra,
            nps.formatted(r["nps"]),
            "-" if r["margin_of_error"] is None else f"{r['margin_of_error']:.1f}",
            str(r["responses"]), str(r["promoters"]), str(r["passives"]),
            str(r["detractors"]), str(r["sent"]), f"{r['response_rate']:.1%}",
            str(r["filtered_automated"]),
        ])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                  for i, (cell, w) in enumerate(zip(line, widths, strict=True))).rstrip()
        for line in lines)


@cli.group()
def export():
    """Export data as CSV."""


@command(export, "responses")
@click.option("--campaign", "campaign_id", type=int, help="Only this campaign.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here instead of stdout.")
def export_responses(state: State, campaign_id: int | None, output: Path | None):
    """Export one row per response as CSV."""
    if campaign_id is not None:
        campaigns_.get(state.db, campaign_id)
    rows = responses.export_rows(state.db, state.config["SURVEY_SCORE_POLICY"],
                                 responses.Filter(campaign_id=campaign_id))
    if output:
        with output.open("w", encoding="utf-8", newline="") as stream:
            count = responses.write_csv(rows, stream)
        click.echo(f"Wrote {count} responses to {output}", err=True)
    else:
        stream = io.StringIO()
        responses.write_csv(rows, stream)
        click.echo(stream.getvalue(), nl=False)


@cli.group("responses")
def responses_group():
    """Bring responses from other tools."""


@command(responses_group, "import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--campaign-name", required=True,
              help="The campaign the history goes in (made if new), e.g. \"Delighted 2025\".")
def responses_import(state: State, file: Path, campaign_name: str):
    """Import past responses (email, score, responded_at...) from a CSV file: all or none."""
    imported = _all_or_nothing(
        lambda db, data: imports.import_csv(db, campaign_name, data), state.db, file)
    click.echo(f"{imported} (campaign \"{campaign_name.strip()}\")")


# staff workspace (issue 5) ------------------------------------------------------------------


@cli.group("staff")
def staff_group():
    """Manage staff accounts of the web workspace."""


@command(staff_group, "add")
@click.argument("email")
@click.option("--password", help="The password (prompted for, hidden, when omitted).")
@click.option("--role", type=click.Choice(users.ROLES),
              help="support, marketer or admin (a new account: support; the first: admin).")
def staff_add(state: State, email: str, password: str | None, role: str | None):
    """Create a staff account, or set a new password (and role) for an existing one."""
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    user_id, created = users.add_user(state.db, email, password, role)
    (role,) = state.db.execute("SELECT role FROM staff_users WHERE id = ?", [user_id]
                               ).fetchone()
    click.echo(f"{'Created' if created else 'Updated the password of'} staff account {email}"
               f" ({role})")


@command(staff_group, "list")
@format_option
def staff_list(state: State, fmt: str):
    """List staff accounts with their roles."""
    rows = users.list_users(state.db)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['email']}\t{row['role']}\t{iso(row['last_login_at']) or 'never'}")


@command(cli, "notify")
@click.option("--watch", is_flag=True, help="Keep running; dispatch every few seconds.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
              help="Seconds between rounds with --watch.")
@click.option("--retry-unknown", is_flag=True,
              help="First queue again the emails whose hand-off was interrupted (they may "
                   "have been sent already).")
def notify_command(state: State, watch: bool, interval: float, retry_unknown: bool):
    """Send due detractor alerts and webhooks (retrying failed ones with backoff)."""
    from . import notify as notify_

    if retry_unknown:
        count = notify_.retry_unknown(state.db)
        click.echo(f"{count} interrupted email{'' if count == 1 else 's'} queued again",
                   err=True)
    if watch:
        click.echo(f"Dispatching alerts and webhooks every {interval:g}s; Ctrl-C stops.",
                   err=True)
        try:
            notify_.watch(state.db, state.config, interval)
        except KeyboardInterrupt:
            pass
        return
    started = notify_.now()
    done = notify_.dispatch(state.db, state.config, limit=1000)
    # One bad notification fails alone: the others went, so this run succeeded; each
    # problem is one line on stderr, and on the staff dashboard.
    for problem in reversed(notify_.problems(state.db, since=started)):
        click.echo(problem["message"], err=True)
    line = f"{done['sent']} sent, {done['retry']} to retry, {done['failed']} failed"
    if done["unknown"]:
        line += f", {done['unknown']} interrupted (may have been sent; see --retry-unknown)"
    click.echo(line)


@cli.group("api-key")
def api_key():
    """Manage keys of the JSON API (/api/v1)."""


@command(api_key, "create")
@click.option("--name", required=True, help="Who or what uses the key (for your records).")
@click.option("--campaign", "campaign_id", type=click.IntRange(min=1),
              help="Limit the key to one campaign (Delighted's project on /delighted/v1).")
def api_key_create(state: State, name: str, campaign_id: int | None):
    """Create an API key; it is printed once, alone on the last line (only a hash is kept)."""
    key = api_keys.create_api_key(state.db, name, campaign_id)
    scope = f" for campaign {campaign_id}" if campaign_id is not None else ""
    click.echo(f"Created API key {name!r}{scope}; send it as: Authorization: Bearer KEY",
               err=True)
    click.echo(key)


@command(api_key, "list")
@format_option
def api_key_list(state: State, fmt: str):
    """List API keys: id, name, first characters, created, last used or revoked, campaign."""
    rows = api_keys.list_api_keys(state.db)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        status = f"revoked {row['revoked_at'][:16]}" if row["revoked_at"] else (
            f"last used {row['last_used_at'][:16]}" if row["last_used_at"] else "never used")
        scope = f"\tcampaign {row['campaign_id']}" if row["campaign_id"] is not None else ""
        click.echo(f"{row['id']}\t{row['name']}\t{row['prefix']}...\t"
                   f"created {row['created_at'][:16]}\t{status}{scope}")


@command(api_key, "revoke")
@click.argument("key_id", type=int)
def api_key_revoke(state: State, key_id: int):
    """Revoke an API key by its id (see `api-key list`); it stops working at once."""
    if api_keys.revoke_api_key(state.db, key_id):
        click.echo(f"API key {key_id} is revoked")
    else:
        click.echo(f"API key {key_id} was already revoked")


def main():  # pragma: no cover - console script entry
    cli()


@command(cli, "worker")
@click.option("--once", is_flag=True, help="Do one round and exit (for cron).")
@click.option("--interval", type=click.FloatRange(min=0.1),
              help="Seconds between rounds (default: SURVEY_WORKER_INTERVAL).")
def worker_command(state: State, once: bool, interval: float | None):
    """Run the background service: clicks, alerts, schedules, due sends, reminders."""
    import logging
    import signal

    from .worker import Worker

    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s",
                                  datefmt="%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime  # UTC, like every other time stamp here
    handler.setFormatter(formatter)
    logger = logging.getLogger("survey_mailer")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        worker = Worker(state.db, state.config)
        problem = config_.base_url_problem(state.config)
        if problem:
            logger.warning(problem)
        if once:
            worker.round()
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: worker.stop())
        logger.info("worker started: a round every %gs; SIGTERM or Ctrl-C stops it",
                    interval or state.config["SURVEY_WORKER_INTERVAL"])
        worker.run(interval)
        logger.info("worker stopped")
    finally:
        logger.removeHandler(handler)
