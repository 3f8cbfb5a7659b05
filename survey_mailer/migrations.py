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


@migrations()
def m013_alert_threads(db: sqlite_utils.Database) -> None:
    # Issue 10, items 2 and 11. A claim names its owner and holds for a short lease, so a
    # killed dispatcher's work is taken over in seconds; handed_at marks an email being
    # handed over, whose fate a crash leaves unknown (the new status: never resent blindly);
    # finished_at is when it was sent or given up, so staff see the latest problems.
    # response_id keeps each response's notifications in order. alert_threads holds, per
    # response, the state last notified (score, digest of the comment) and the first
    # alert's Message-ID and subject, so a change is one update in the same thread.
    # SQLite cannot change a CHECK constraint: the table is copied into a new one.
    _run(
        db,
        """
        CREATE TABLE notifications_new (
            id INTEGER PRIMARY KEY,
            event_key TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('email', 'webhook')),
            target TEXT NOT NULL,
            payload TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'claimed', 'sent', 'failed', 'unknown')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            claimed_until TEXT,
            claimed_by TEXT,
            handed_at TEXT,
            last_error TEXT,
            created_at TEXT NOT NULL,
            sent_at TEXT,
            finished_at TEXT,
            response_id INTEGER
        );
        INSERT INTO notifications_new (id, event_key, kind, target, payload, status, attempts,
                                       next_attempt_at, claimed_until, last_error, created_at,
                                       sent_at, finished_at, response_id)
            SELECT id, event_key, kind, target, payload, status, attempts, next_attempt_at,
                   claimed_until, last_error, created_at, sent_at,
                   CASE WHEN status IN ('sent', 'failed') THEN coalesce(sent_at, created_at)
                   END,
                   CASE WHEN event_key LIKE 'response/%'
                        THEN CAST(substr(event_key, 10) AS INTEGER)
                        WHEN event_key LIKE 'case/%'
                        THEN CAST(substr(event_key, 6) AS INTEGER) END
            FROM notifications;
        DROP TABLE notifications;
        ALTER TABLE notifications_new RENAME TO notifications;
        CREATE INDEX notifications_due ON notifications(status, next_attempt_at);
        CREATE INDEX notifications_thread ON notifications(response_id, kind, target, status);
        CREATE INDEX notifications_problems ON notifications(finished_at)
            WHERE status IN ('failed', 'unknown');
        CREATE TABLE alert_threads (
            response_id INTEGER PRIMARY KEY REFERENCES responses(id),
            revision INTEGER NOT NULL,
            score INTEGER NOT NULL,
            comment_digest TEXT NOT NULL,
            message_id TEXT,
            subject TEXT,
            updated_at TEXT NOT NULL
        )
        """
    )
    import hashlib
    import json

    # Responses notified before threads existed: their last queued state, so they are not
    # announced again, and the first alert's subject, so a change is still an update ("Re:");
    # no Message-ID was kept, so the update cannot name the alert in In-Reply-To.
    threads: dict[int, dict] = {}
    for response_id, kind, payload in db.execute(
            "SELECT response_id, kind, payload FROM notifications"
            " WHERE event_key LIKE 'response/%' ORDER BY id"):
        row = json.loads(payload)["response"]
        thread = threads.setdefault(response_id, {"subject": None})
        thread.update(score=row["score"], comment=row["comment"])
        if kind == "email" and thread["subject"] is None:
            who = (row["name"] or row["email"]) + (f" ({row['company']})" if row["company"]
                                                   else "")
            thread["subject"] = f"Detractor: {who} scored {row['score']}"
    stamp = now()
    for response_id, thread in threads.items():
        db.execute(
            "INSERT INTO alert_threads (response_id, revision, score, comment_digest, subject,"
            " updated_at) VALUES (?, 1, ?, ?, ?, ?)",
            [response_id, thread["score"],
             hashlib.sha256(thread["comment"].encode()).hexdigest()[:16], thread["subject"],
             stamp])


@migrations()
def m014_worker_and_api(db: sqlite_utils.Database) -> None:
    # Issue 12, surveys that run themselves. Deliveries: when each is due (a transactional
    # delay, a recurring period's spread; NULL is at once), the event that asked for it and
    # where it came from. Campaigns: a schedule (send_at), a recurring period (every,
    # spread_days; a period's campaign points at its original and names its period),
    # automatic reminders, and when sending started or was paused.
    # Responses: `version` grows with every change (a trigger keeps it, so no writer can
    # forget), which is what API cursors follow; `updated_at` says when, for people, from
    # the one clock (survey_now(), which db.connect gives every connection).
    # API keys may stand for one campaign (Delighted's project). Idempotency keys replay an
    # answer. Erased contacts stay as anonymous rows; their address only as a hash keyed
    # with a random key of this database (not the signing key: rotating that must not
    # let an erased address back in).
    _run(
        db,
        """
        ALTER TABLE deliveries ADD COLUMN due_at TEXT;
        ALTER TABLE deliveries ADD COLUMN event TEXT;
        ALTER TABLE deliveries ADD COLUMN source TEXT NOT NULL DEFAULT 'campaign';
        CREATE INDEX deliveries_due ON deliveries(status, due_at, campaign_id);
        ALTER TABLE campaigns ADD COLUMN send_at TEXT;
        ALTER TABLE campaigns ADD COLUMN every TEXT;
        ALTER TABLE campaigns ADD COLUMN spread_days INTEGER NOT NULL DEFAULT 10;
        ALTER TABLE campaigns ADD COLUMN remind_after_days INTEGER;
        ALTER TABLE campaigns ADD COLUMN parent_id INTEGER REFERENCES campaigns(id);
        ALTER TABLE campaigns ADD COLUMN period TEXT;
        ALTER TABLE campaigns ADD COLUMN started_at TEXT;
        ALTER TABLE campaigns ADD COLUMN paused_at TEXT;
        CREATE UNIQUE INDEX campaigns_period ON campaigns(parent_id, period);
        ALTER TABLE responses ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE responses ADD COLUMN updated_at TEXT;
        ALTER TABLE responses ADD COLUMN imported INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE response_versions (id INTEGER PRIMARY KEY CHECK (id = 1),
                                        last INTEGER NOT NULL);
        INSERT INTO response_versions (id, last) SELECT 1, count(*) FROM responses;
        UPDATE responses SET version = id, updated_at = responded_at;
        CREATE INDEX responses_version ON responses(version);
        ALTER TABLE api_keys ADD COLUMN campaign_id INTEGER REFERENCES campaigns(id);
        CREATE TABLE idempotency_keys (
            api_key_id INTEGER NOT NULL REFERENCES api_keys(id),
            key TEXT NOT NULL,
            status INTEGER NOT NULL,
            body TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (api_key_id, key)
        );
        ALTER TABLE contacts ADD COLUMN erased_at TEXT;
        CREATE TABLE erased_addresses (
            email_hash TEXT PRIMARY KEY,
            erased_at TEXT NOT NULL
        );
        CREATE TABLE keys (name TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO keys (name, value) VALUES ('erasure', lower(hex(randomblob(32))))
        """
    )
    for event, when in (("INSERT", ""), ("UPDATE", "WHEN NEW.version = OLD.version")):
        db.execute(f"""
            CREATE TRIGGER responses_version_{event.lower()} AFTER {event} ON responses {when}
            BEGIN
                UPDATE response_versions SET last = last + 1;
                UPDATE responses SET version = (SELECT last FROM response_versions),
                    updated_at = survey_now() WHERE id = NEW.id;
            END""")


@migrations()
def m015_worker_claims(db: sqlite_utils.Database) -> None:
    # Issue 12, the worker's proof. `claimed_by`: which sender took a row (sender.Owners),
    # so that a row another running worker has in flight is never taken for unknown nor
    # resent by --retry-unknown. `reminders_through`: the worker has planned the automatic
    # reminders of every delivery sent up to then, so each round looks only at deliveries
    # sent since (the index on sent_at), not at a campaign's whole history.
    _run(
        db,
        """
        ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
        ALTER TABLE reminders ADD COLUMN claimed_by TEXT;
        ALTER TABLE campaigns ADD COLUMN reminders_through TEXT
        """
    )


@migrations()
def m016_api_idempotency(db: sqlite_utils.Database) -> None:
    # Issue 12, the JSON API. An idempotency key sent again with a different request must
    # be refused, not answered with the first request's result: keep a hash of the request.
    # Expired keys (over 24 hours) are deleted by age: index it.
    _run(
        db,
        """
        ALTER TABLE idempotency_keys ADD COLUMN request_hash TEXT NOT NULL DEFAULT '';
        CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at)
        """
    )


@migrations()
def m018_themes(db: sqlite_utils.Database) -> None:
    # Issue 14. A theme's words, one a line (folded: no accents, lower case; a trailing *
    # is a prefix). response_themes: which responses name which theme, by a rule or by
    # staff. theme_rules: `version` grows with every rule change, `tagged` is the version
    # the comments were last tagged by, `tagged_version` the last responses.version seen:
    # the worker tags what is newer.
    _run(
        db,
        """
        CREATE TABLE themes (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE COLLATE NOCASE,
            words TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE response_themes (
            response_id INTEGER NOT NULL REFERENCES responses(id),
            theme_id INTEGER NOT NULL REFERENCES themes(id),
            source TEXT NOT NULL CHECK (source IN ('rule', 'staff')),
            PRIMARY KEY (response_id, theme_id)
        );
        CREATE INDEX response_themes_theme ON response_themes(theme_id, response_id);
        CREATE TABLE theme_rules (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            version INTEGER NOT NULL,
            tagged INTEGER NOT NULL,
            tagged_version INTEGER NOT NULL
        );
        INSERT INTO theme_rules (id, version, tagged, tagged_version) VALUES (1, 0, 0, 0)
        """
    )


@migrations()
def m019_page_seen(db: sqlite_utils.Database) -> None:
    # Issue 11. Under `balanced` an unconfirmed click counts only once its landing page was
    # shown in a visible browser tab (the signed "page seen" beacon): responses.seen. The
    # click the person saw is marked too (clicks.seen), so a scanner burst around it never
    # takes it back. Responses recorded before this change were counted without the signal:
    # they stay counted, so no report of the past changes. The report indexes (m009) gain
    # the column, so counting stays an index-only scan. Nothing a reader of the API sees
    # changes either: negating the version twice keeps the version trigger (m014, fired
    # when an update leaves the version alone) from marking every response as new.
    _run(
        db,
        """
        ALTER TABLE responses ADD COLUMN seen INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE clicks ADD COLUMN seen INTEGER NOT NULL DEFAULT 0;
        UPDATE responses SET seen = 1, version = -version WHERE automated = 0;
        UPDATE responses SET version = -version WHERE version < 0;
        DROP INDEX responses_counts;
        DROP INDEX responses_contact_counts;
        DROP INDEX responses_time_counts;
        DROP INDEX responses_filtered;
        CREATE INDEX responses_counts
            ON responses(campaign_id, score, confirmed, automated, seen, contact_id);
        CREATE INDEX responses_contact_counts
            ON responses(contact_id, score, confirmed, automated, seen);
        CREATE INDEX responses_time_counts
            ON responses(created_at, score, confirmed, automated, seen, campaign_id);
        CREATE INDEX responses_filtered ON responses(created_at, campaign_id, contact_id)
            WHERE (confirmed = 0 AND (automated = 1 OR seen = 0))
        """
    )


@migrations()
def m020_imported_index(db: sqlite_utils.Database) -> None:
    # Issue 12: history imported from another tool counts, but is never a case. The few
    # imported rows are found through their own small index.
    db.execute("CREATE INDEX responses_imported ON responses(score) WHERE imported = 1")


@migrations()
def m021_staff_roles(db: sqlite_utils.Database) -> None:
    # Issue 13: roles (SPEC 12). Accounts made before roles could do everything: admins.
    db.execute("ALTER TABLE staff_users ADD COLUMN role TEXT NOT NULL DEFAULT 'admin'"
               " CHECK (role IN ('support', 'marketer', 'admin'))")


@migrations()
def m022_subjects_per_language(db: sqlite_utils.Database) -> None:
    # Issue 13: a subject per language (SPEC 12); empty means the campaign's `subject`.
    for language in ("es", "fr", "sv"):
        db.execute(f"ALTER TABLE campaigns ADD COLUMN subject_{language} TEXT NOT NULL"
                   f" DEFAULT ''")


@migrations()
def m023_closing_the_loop(db: sqlite_utils.Database) -> None:
    # Issue 14. digests: one row per period a digest covers, claimed in the transaction
    # that queues its emails and webhooks, so no round sends a second. A reply from a case
    # is a notification (the durable queue of notify) and a note pointing at it: the note
    # shows queued / sent / failed from the notification's status. The accounts report reads
    # a time window of answers and of deliveries per contact: two covering indexes make
    # those index-only range scans (bench_accounts).
    _run(
        db,
        """
        CREATE TABLE digests (
            period TEXT PRIMARY KEY,
            created_at TEXT NOT NULL,
            payload TEXT NOT NULL
        );
        ALTER TABLE case_notes ADD COLUMN notification_id INTEGER
            REFERENCES notifications(id);
        CREATE INDEX responses_account_window
            ON responses(responded_at, contact_id, score, confirmed, automated, seen);
        CREATE INDEX deliveries_account_window ON deliveries(sent_at, status, contact_id)
        """
    )
    # Cases overdue before now are history: marked in the queue, never alerted (loop.py).
    db.execute("INSERT INTO notify_state (name, value) VALUES ('overdue_until', ?)", [now()])


@migrations()
def m024_branding(db: sqlite_utils.Database) -> None:
    # Issue 13: a campaign's accent colour (empty: the default) and its logo, kept in the
    # database with everything else (backups take it along), served by its digest.
    _run(
        db,
        """
        ALTER TABLE campaigns ADD COLUMN accent TEXT NOT NULL DEFAULT '';
        CREATE TABLE campaign_logos (
            campaign_id INTEGER PRIMARY KEY REFERENCES campaigns(id),
            content_type TEXT NOT NULL CHECK (content_type IN ('image/png', 'image/jpeg')),
            data BLOB NOT NULL,
            digest TEXT NOT NULL,
            created_at TEXT NOT NULL
        )
        """
    )


@migrations()
def m025_account_stats(db: sqlite_utils.Database) -> None:
    # Issue 14: each contact's totals in the two account windows, kept current by
    # account_stats.refresh, with the contact's company, whether they decide and their
    # renewal date, so the report sums a company's rows along one index. A delivery sent
    # (or unsent), a case's new status, and a contact added, removed or given a new
    # company, role or renewal date note the contact in account_dirty; responses need no
    # trigger: their version (m014) says which changed.
    _run(
        db,
        """
        CREATE TABLE account_stats (
            contact_id INTEGER NOT NULL,
            win INTEGER NOT NULL CHECK (win IN (0, 1)),
            n INTEGER NOT NULL,
            p INTEGER NOT NULL,
            d INTEGER NOT NULL,
            total INTEGER NOT NULL,
            latest INTEGER,
            filtered INTEGER NOT NULL,
            sent INTEGER NOT NULL,
            open_cases INTEGER NOT NULL,
            company TEXT NOT NULL,
            decides INTEGER NOT NULL,
            renewal TEXT,
            PRIMARY KEY (contact_id, win)
        ) WITHOUT ROWID;
        CREATE INDEX account_stats_company ON account_stats(company, win, n, p, d, total,
                                                            filtered, sent, latest, decides,
                                                            open_cases, renewal);
        CREATE TABLE account_stats_state (
            policy TEXT NOT NULL,
            days INTEGER NOT NULL,
            start TEXT NOT NULL,
            mid TEXT NOT NULL,
            version INTEGER NOT NULL,
            dirty_until INTEGER NOT NULL
        );
        CREATE TABLE account_dirty (id INTEGER PRIMARY KEY AUTOINCREMENT,
                                    contact_id INTEGER NOT NULL)
        """
    )
    note = "INSERT INTO account_dirty (contact_id) VALUES"
    for name, event, when, notes in (
            ("insert", "INSERT", "NEW.status = 'sent'", ["NEW"]),
            ("update", "UPDATE OF status, sent_at, contact_id",
             "NEW.status = 'sent' OR OLD.status = 'sent'", ["NEW", "OLD"]),
            ("delete", "DELETE", "OLD.status = 'sent'", ["OLD"])):
        db.execute(f"CREATE TRIGGER deliveries_account_{name} AFTER {event} ON deliveries"
                   f" WHEN {when} BEGIN "
                   + " ".join(f"{note} ({row}.contact_id);" for row in notes) + " END")
    changed = " OR ".join(["NEW.company IS NOT OLD.company", *(
        f"(NEW.attributes ->> '$.{key}') IS NOT (OLD.attributes ->> '$.{key}')"
        for key in ("role", "renewal_date"))])
    for name, event, when, row in (
            ("insert", "INSERT", "NEW.company != ''", "NEW"),
            ("update", "UPDATE OF company, attributes", changed, "NEW"),
            ("delete", "DELETE", "1", "OLD")):
        db.execute(f"CREATE TRIGGER contacts_account_{name} AFTER {event} ON contacts"
                   f" WHEN {when} BEGIN {note} ({row}.id); END")
    of_case = "INSERT INTO account_dirty (contact_id) SELECT contact_id FROM responses"
    for name, event, row in (("insert", "INSERT", "NEW"),
                             ("update", "UPDATE OF status, response_id", "NEW"),
                             ("delete", "DELETE", "OLD")):
        db.execute(f"CREATE TRIGGER cases_account_{name} AFTER {event} ON cases BEGIN"
                   f" {of_case} WHERE id = {row}.response_id; END")


@migrations()
def m026_retag_in_slices(db: sqlite_utils.Database) -> None:
    # Issue 14: re-tagging after a rule change is done in slices across the worker's rounds
    # (themes.retag): the rules version being applied, the last response id done, and the
    # response version it started from.
    _run(
        db,
        """
        ALTER TABLE theme_rules ADD COLUMN retag_version INTEGER;
        ALTER TABLE theme_rules ADD COLUMN retag_after INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE theme_rules ADD COLUMN retag_seen INTEGER NOT NULL DEFAULT 0
        """
    )
