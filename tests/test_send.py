"""Sending a campaign to the outbox: eligibility, no duplicates, crash states, dry run."""

import pytest
from conftest import outbox, send_campaign

from survey_mailer import db as db_
from survey_mailer.backends.outbox import OutboxBackend
from survey_mailer.errors import DeliveryError
from survey_mailer.ratelimit import RateLimiter
from survey_mailer.sender import Sender


def create(runner, *extra):
    result = runner("campaign", "create", "--name", "N", "--subject", "S",
                    "--sender", "Acme <nps@acme.test>", *extra)
    assert result.exit_code == 0, result.output
    return result.output.splitlines()[-1]


def statuses(db, campaign_id):
    return dict(db.execute(
        "SELECT c.email, d.status FROM deliveries d JOIN contacts c ON c.id = d.contact_id "
        "WHERE d.campaign_id = ?", [campaign_id]).fetchall())


def test_send_writes_one_eml_per_contact_and_never_twice(runner, db, settings, sent_campaign):
    messages = outbox(settings)
    assert sorted(messages) == ["ana@example.com", "bob@example.com", "chloe@example.com",
                                "sven@example.com"]
    assert messages["ana@example.com"]["Subject"] == "A quick question"
    result = runner("campaign", "send", str(sent_campaign))
    assert result.output == "0 sent, 0 failed, 0 skipped, 0 left to send\n"
    assert len(outbox(settings)) == 4
    assert set(statuses(db, sent_campaign).values()) == {"sent"}


def test_campaign_create_prints_id_last(runner, db):
    result = runner("campaign", "create", "--name", "Q4", "--subject", "S",
                    "--sender", "nps@acme.test")
    assert result.output.splitlines()[-1] == "1"
    assert db.execute("SELECT brand FROM campaigns").fetchone()[0] == "acme.test"


@pytest.mark.parametrize(("args", "message"), [
    (["--sender", "not an address"],
     'Error: sender "not an address" is not an email address (for example '
     '"Acme <nps@acme.com>")\n'),
    (["--sender", "a@b.test", "--segment", "plan"],
     'Error: segment "plan" is not ATTRIBUTE=VALUE (for example company=Acme)\n'),
])
def test_campaign_create_bad_input(runner, db, args, message):
    result = runner("campaign", "create", "--name", "Q4", "--subject", "S", *args)
    assert result.exit_code == 1
    assert result.output == message


@pytest.mark.parametrize("command", [["campaign", "send", "99"],
                                     ["campaign", "preview", "99"],
                                     ["report", "--campaign", "99"],
                                     ["export", "responses", "--campaign", "99"]])
def test_unknown_campaign_id(runner, db, command):
    result = runner(*command)
    assert result.exit_code == 1
    assert result.output == 'Error: campaign "99" does not exist\n'


def test_segment_unsubscribed_and_resurvey(runner, db, settings, contacts_csv):
    runner("contacts", "import", str(contacts_csv))
    runner("contacts", "unsubscribe", "chloe@example.com")
    first = create(runner, "--segment", "plan=pro")
    assert runner("campaign", "send", first).output.startswith("1 sent,")  # ana only
    second = create(runner)
    result = runner("campaign", "send", second, "--dry-run")
    assert result.output == "Dry run: 2 would be sent\n"  # not ana (90 days), not chloe
    assert runner("campaign", "send", second).output.startswith("2 sent,")
    assert sorted(statuses(db, second)) == ["bob@example.com", "sven@example.com"]


def test_resurvey_days_zero_allows_a_new_survey(runner, db, settings, contacts_csv,
                                                monkeypatch):
    runner("contacts", "import", str(contacts_csv))
    runner("campaign", "send", create(runner))
    monkeypatch.setenv("SURVEY_RESURVEY_DAYS", "0")
    assert runner("campaign", "send", create(runner)).output.startswith("4 sent,")


def test_dry_run_writes_nothing(runner, db, settings, contacts_csv):
    runner("contacts", "import", str(contacts_csv))
    campaign_id = create(runner)
    assert runner("campaign", "send", campaign_id, "--dry-run").output == \
        "Dry run: 4 would be sent\n"
    assert db.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 0
    assert outbox(settings) == {}


def test_limit_then_resume(runner, db, settings, contacts_csv):
    runner("contacts", "import", str(contacts_csv))
    campaign_id = create(runner)
    assert runner("campaign", "send", campaign_id, "--limit", "3").output == \
        "3 sent, 0 failed, 0 skipped, 1 left to send\n"
    assert runner("campaign", "send", campaign_id).output == \
        "1 sent, 0 failed, 0 skipped, 0 left to send\n"
    assert len(outbox(settings)) == 4


def test_unknown_fate_is_listed_not_resent_until_asked(runner, db, settings, contacts_csv):
    runner("contacts", "import", str(contacts_csv))
    campaign_id = create(runner)
    runner("campaign", "send", campaign_id, "--limit", "2")
    # A crash between "sending" and "sent": the process died mid-hand-off.
    with db_.write(db) as conn:
        conn.execute("UPDATE deliveries SET status = 'sending' WHERE id = 2")
    result = runner("campaign", "send", campaign_id)
    assert result.output.splitlines() == [
        "2 sent, 0 failed, 0 skipped, 0 left to send",
        "1 with unknown fate (interrupted mid-send; not resent, use --retry-unknown to "
        "resend):",
        "  bob@example.com",
    ]
    assert statuses(db, int(campaign_id))["bob@example.com"] == "sending"
    result = runner("campaign", "send", campaign_id, "--retry-unknown")
    assert result.output == "1 sent, 0 failed, 0 skipped, 0 left to send\n"
    assert len(outbox(settings)) == 4  # the outbox file is named after the delivery


def test_contact_unsubscribed_after_planning_is_skipped(runner, db, settings, contacts_csv):
    runner("contacts", "import", str(contacts_csv))
    campaign_id = create(runner)
    runner("campaign", "send", campaign_id, "--limit", "1")
    runner("contacts", "unsubscribe", "sven@example.com")
    assert runner("campaign", "send", campaign_id).output == \
        "2 sent, 0 failed, 1 skipped, 0 left to send\n"
    assert statuses(db, int(campaign_id))["sven@example.com"] == "skipped"


class Rejecting(OutboxBackend):
    def send(self, envelope, message):
        if envelope.recipient.startswith("bob"):
            raise DeliveryError("550 mailbox unavailable", permanent=True)
        return super().send(envelope, message)


def test_a_rejected_address_fails_alone(db, links, settings, runner, contacts_csv):
    runner("contacts", "import", str(contacts_csv))
    campaign_id = int(create(runner))
    summary = send_campaign(db, Sender(db, Rejecting(settings["SURVEY_OUTBOX_DIR"])),
                            campaign_id)
    assert (summary.sent, summary.failed) == (3, 1)
    row = db.execute("SELECT status, error FROM deliveries d JOIN contacts c "
                     "ON c.id = d.contact_id WHERE c.email = 'bob@example.com'").fetchone()
    assert tuple(row) == ("failed", "550 mailbox unavailable")


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, seconds):
        self.t += seconds


@pytest.mark.parametrize("rate", [1, 3, 14, 0.5])
def test_rate_limiter_never_exceeds_rate_in_any_window(rate):
    clock = FakeClock()
    limiter = RateLimiter(rate, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(60):
        limiter.acquire()
        starts.append(clock.t)
        clock.t += 0.01  # sending takes a little time
    allowed = max(1, int(rate)) if rate >= 1 else 1
    window = 1.0 if rate >= 1 else 1 / rate
    for i, start in enumerate(starts):
        assert sum(1 for s in starts[i:] if s < start + window) <= allowed
    # and it is not needlessly slow: the last start is within one window of ideal
    assert starts[-1] <= (60 / allowed) * window


def test_outbox_writes_through_a_temporary_part_file(tmp_path, monkeypatch):
    # A kill mid-write leaves the temporary file: it must never look like a message.
    seen = []
    real_replace = __import__("os").replace
    monkeypatch.setattr("survey_mailer.backends.outbox.os.replace",
                        lambda src, dst: seen.append(src) or real_replace(src, dst))
    backend = OutboxBackend(tmp_path)
    from survey_mailer.backends import Envelope

    backend.send(Envelope("a@b.test", "c@d.test", "c1-d1", 1, 1), b"To: c@d.test\r\n\r\nhi")
    assert seen[0].endswith(".part") and "/.tmp-" in seen[0]
    assert [p.name for p in tmp_path.iterdir()] == ["c1-d1.eml"]


class Exploding(OutboxBackend):
    def send(self, envelope, message):
        if envelope.recipient.startswith("bob"):
            raise RuntimeError("socket went away")
        return super().send(envelope, message)


def test_an_unexpected_backend_error_leaves_that_fate_unknown(db, links, settings, runner,
                                                              contacts_csv):
    runner("contacts", "import", str(contacts_csv))
    campaign_id = int(create(runner))
    summary = send_campaign(db, Sender(db, Exploding(settings["SURVEY_OUTBOX_DIR"])),
                            campaign_id)
    assert summary.sent == 3
    assert statuses(db, campaign_id)["bob@example.com"] == "sending"  # unknown, not lost
    assert db.execute("SELECT error FROM deliveries WHERE status = 'sending'").fetchone()[0] \
        == "unexpected error while handing over: RuntimeError('socket went away')"


def test_a_message_that_cannot_be_composed_fails_alone(db, links, settings, runner,
                                                       contacts_csv, monkeypatch):
    runner("contacts", "import", str(contacts_csv))
    campaign_id = int(create(runner))
    from survey_mailer.compose import Composer

    real = Composer.compose

    def compose(self, delivery_id, email, name, language):
        if email.startswith("sven"):
            raise ValueError("bad template")
        return real(self, delivery_id, email, name, language)

    monkeypatch.setattr(Composer, "compose", compose)
    summary = send_campaign(db, Sender(db, OutboxBackend(settings["SURVEY_OUTBOX_DIR"])),
                            campaign_id)
    assert (summary.sent, summary.failed) == (3, 1)
    assert statuses(db, campaign_id)["sven@example.com"] == "failed"
    assert len(outbox(settings)) == 3
