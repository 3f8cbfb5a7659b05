"""Schema changes as ordered, named migrations (sqlite-utils' own Migrations).

Each function runs once per database, in name order, inside `db.migrate`'s transaction.
Never edit one that has shipped: add the next.
"""

from __future__ import annotations

import sqlite_utils
from sqlite_utils.migrations import Migrations

from .clock import now

migrations = Migrations("survey_mailer")


def _run(db: sqlite_utils.Database, script: str) -> None:
    # Statement by statement: executescript() would COMMIT the migration's transaction.
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    _run(
        db,
        """
        CREATE TABLE contacts (
            id INTEGER PRIMARY KEY,
            email TEXT NOT NULL UNIQUE COLLATE NOCASE,
            name TEXT NOT NULL DEFAULT '',
            company TEXT NOT NULL DEFAULT '',
            language TEXT NOT NULL DEFAULT 'en',
            attributes TEXT NOT NULL DEFAULT '{}',
            unsubscribed_at TEXT,
            suppressed_at TEXT,
            suppressed_reason TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE campaigns (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            subject TEXT NOT NULL,
            sender TEXT NOT NULL,
            brand TEXT NOT NULL,
            postal_address TEXT NOT NULL DEFAULT '',
            segment TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL
        );
        CREATE TABLE deliveries (
            id INTEGER PRIMARY KEY,
            campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
            contact_id INTEGER NOT NULL REFERENCES contacts(id),
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'skipped')),
            message_id TEXT,
            error TEXT,
            created_at TEXT NOT NULL,
            sent_at TEXT,
            UNIQUE (campaign_id, contact_id)
        );
        CREATE INDEX deliveries_status ON deliveries(campaign_id, status);
        CREATE INDEX deliveries_contact ON deliveries(contact_id, sent_at);
        CREATE TABLE clicks (
            id INTEGER PRIMARY KEY,
            delivery_id INTEGER NOT NULL REFERENCES deliveries(id),
            score INTEGER,
            kind TEXT NOT NULL DEFAULT 'score',
            method TEXT NOT NULL,
            user_agent TEXT NOT NULL DEFAULT '',
            ip_hash TEXT NOT NULL DEFAULT '',
            clicked_at TEXT NOT NULL,
            automated INTEGER NOT NULL DEFAULT 0,
            reason TEXT
        );
        CREATE INDEX clicks_delivery ON clicks(delivery_id, clicked_at);
        CREATE TABLE responses (
            id INTEGER PRIMARY KEY,
            delivery_id INTEGER NOT NULL UNIQUE REFERENCES deliveries(id),
            campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
            contact_id INTEGER NOT NULL REFERENCES contacts(id),
            score INTEGER NOT NULL CHECK (score BETWEEN 0 AND 10),
            comment TEXT NOT NULL DEFAULT '',
            contact_ok INTEGER NOT NULL DEFAULT 0,
            display_name TEXT NOT NULL DEFAULT '',
            testimonial_consent INTEGER NOT NULL DEFAULT 0,
            confirmed INTEGER NOT NULL DEFAULT 0,
            automated INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            responded_at TEXT NOT NULL
        );
        CREATE INDEX responses_campaign ON responses(campaign_id);
        CREATE TABLE unsubscribes (
            id INTEGER PRIMARY KEY,
            contact_id INTEGER NOT NULL REFERENCES contacts(id),
            delivery_id INTEGER REFERENCES deliveries(id),
            method TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        """
    )


@migrations()
def m006_humans(db: sqlite_utils.Database) -> None:
    # last_click_at: when the response's score last came from a click, so burst and honeypot
    # checks know whether it belongs to the window, and alerts know when it has settled.
    # confirmed_at/by: who confirmed a person answered (beacon, form, staff) and when.
    _run(
        db,
        """
        ALTER TABLE responses ADD COLUMN last_click_at TEXT;
        ALTER TABLE responses ADD COLUMN confirmed_at TEXT;
        ALTER TABLE responses ADD COLUMN confirmed_by TEXT
        """
    )


@migrations()
def m007_reminders_and_ses_events(db: sqlite_utils.Database) -> None:
    # Issue 3. reminders: one per delivery at most (the unique key), with the same
    # crash-safe states as deliveries. ses_events: SNS notifications of bounces and
    # complaints, unique by SNS MessageId so a redelivered notification is recorded once.
    _run(
        db,
        """
        CREATE TABLE reminders (
            id INTEGER PRIMARY KEY,
            delivery_id INTEGER NOT NULL UNIQUE REFERENCES deliveries(id),
            campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'skipped')),
            message_id TEXT,
            error TEXT,
            created_at TEXT NOT NULL,
            sent_at TEXT
        );
        CREATE INDEX reminders_status ON reminders(campaign_id, status);
        CREATE TABLE ses_events (
            id INTEGER PRIMARY KEY,
            sns_message_id TEXT NOT NULL UNIQUE,
            topic_arn TEXT NOT NULL,
            event_type TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '',
            recipients TEXT NOT NULL DEFAULT '[]',
            delivery_id INTEGER,
            payload TEXT NOT NULL,
            received_at TEXT NOT NULL
        )
        """
    )


@migrations()
def m008_staff(db: sqlite_utils.Database) -> None:
    # Issue 5, the staff workspace: accounts, follow-up cases, testimonial moderation,
    # API keys, and the durable queue of alerts and webhooks (state survives a crash).
    _run(
        db,
        """
        CREATE TABLE staff_users (
            id INTEGER PRIMARY KEY,
            email TEXT NOT NULL UNIQUE COLLATE NOCASE,
            password_hash TEXT NOT NULL,
            created_at TEXT NOT NULL,
            last_login_at TEXT
        );
        CREATE TABLE cases (
            response_id INTEGER PRIMARY KEY REFERENCES responses(id),
            status TEXT NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'contacted', 'resolved')),
            assignee_id INTEGER REFERENCES staff_users(id),
            updated_at TEXT NOT NULL,
            updated_by INTEGER REFERENCES staff_users(id)
        );
        CREATE INDEX cases_status ON cases(status, assignee_id);
        CREATE TABLE case_notes (
            id INTEGER PRIMARY KEY,
            response_id INTEGER NOT NULL REFERENCES responses(id),
            author_id INTEGER REFERENCES staff_users(id),
            body TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX case_notes_response ON case_notes(response_id, created_at);
        CREATE TABLE testimonials (
            response_id INTEGER PRIMARY KEY REFERENCES responses(id),
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'approved', 'rejected')),
            display_name TEXT NOT NULL DEFAULT '',
            quote TEXT NOT NULL DEFAULT '',
            reviewed_by INTEGER REFERENCES staff_users(id),
            reviewed_at TEXT
        );
        CREATE INDEX testimonials_status ON testimonials(status, reviewed_at);
        CREATE TABLE api_keys (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            prefix TEXT NOT NULL,
            key_hash TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            last_used_at TEXT,
            revoked_at TEXT
        );
        CREATE TABLE notifications (
            id INTEGER PRIMARY KEY,
            event_key TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('email', 'webhook')),
            target TEXT NOT NULL,
            payload TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'claimed', 'sent', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            claimed_until TEXT,
            last_error TEXT,
            created_at TEXT NOT NULL,
            sent_at TEXT
        );
        CREATE INDEX notifications_due ON notifications(status, next_attempt_at);
        CREATE TABLE notify_state (
            name TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE INDEX responses_responded ON responses(responded_at)
        """
    )
    # Responses older than the workspace are history: alert only about what arrives next.
    db.execute("INSERT INTO notify_state (name, value) VALUES ('scanned_until', ?)", [now()])


@migrations()
def m009_report_indexes(db: sqlite_utils.Database) -> None:
    # NPS reports over a million responses in well under a second (SPEC 9): covering
    # indexes let each report query read narrow index entries in group order instead of
    # sorting table rows. Contacts in company/language order drive the breakdown joins.
    _run(
        db,
        """
        CREATE INDEX responses_counts
            ON responses(campaign_id, score, confirmed, automated, contact_id);
        CREATE INDEX responses_contact_counts
            ON responses(contact_id, score, confirmed, automated);
        CREATE INDEX responses_time_counts
            ON responses(created_at, score, confirmed, automated, campaign_id);
        CREATE INDEX responses_filtered ON responses(created_at, campaign_id, contact_id)
            WHERE automated = 1 AND confirmed = 0;
        CREATE INDEX contacts_company ON contacts(company);
        CREATE INDEX contacts_language ON contacts(language);
        CREATE INDEX deliveries_contact_status ON deliveries(contact_id, status);
        CREATE INDEX deliveries_sent_at ON deliveries(sent_at, status, campaign_id)
        """
    )


@migrations()
def m010_fewer_response_indexes(db: sqlite_utils.Database) -> None:
    # Every index is written by every click (SPEC 9: the score route's speed), and
    # responses_counts starts with campaign_id, so it serves every lookup this one did.
    db.execute("DROP INDEX responses_campaign")


@migrations()
def m011_clicks_folded(db: sqlite_utils.Database) -> None:
    # The score route only appends to the click log (SPEC 9: the route's speed); responses
    # are folded from the log, in click order, by whoever reads them next. until_id is the
    # last click folded; the clicks so far were folded as they came.
    db.execute("CREATE TABLE clicks_folded (id INTEGER PRIMARY KEY CHECK (id = 1),"
               " until_id INTEGER NOT NULL)")
    db.execute("INSERT INTO clicks_folded (id, until_id)"
               " SELECT 1, coalesce(max(id), 0) FROM clicks")


@migrations()
def m012_staff_sessions_and_lockout(db: sqlite_utils.Database) -> None:
    # Issue 10, items 5 and 7. A staff session names the account's session token as well as
    # its id (Flask-Login's alternative token); logging out or a new password draws a new
    # token, so every earlier session cookie stops working. Sessions from before this
    # migration named the id alone: they end, and their owners log in once more.
    # Failed logins are counted per email as typed (casefolded), in the database, so the
    # lock holds across gunicorn workers and restarts, for unknown emails as well.
    _run(
        db,
        """
        ALTER TABLE staff_users ADD COLUMN session_token TEXT NOT NULL DEFAULT '';
        UPDATE staff_users SET session_token = lower(hex(randomblob(16)));
        CREATE TABLE staff_login_failures (
            email TEXT PRIMARY KEY,
            failures INTEGER NOT NULL,
            window_start TEXT NOT NULL,
            locked_until TEXT
        )
        """
    )
