"""The soak (`make soak`): everything at once for a few minutes, then nothing lost or doubled.

A temporary database and instance folder; contacts imported (some with a company); one
campaign already sent, whose deliveries give the score links (built as bench_clicks builds
them), and a second campaign handed to the real `survey-mailer worker` process, which sends
it over SMTP to a sink on loopback (aiosmtpd, in a process of its own) while it folds clicks
and dispatches detractor alerts (to the same sink, `SURVEY_SUPPORT_EMAIL`) and webhooks (to
an HTTP receiver in the sink's process). gunicorn serves the real app with 2 workers behind
one trusted proxy hop (each person comes from an address of their own, as behind nginx).

Meanwhile an asyncio client makes SOAK_CLICKS person clicks over SOAK_CONNECTIONS
connections, each on an email of its own with a mix of scores: after a click, a person's
landing page either reports itself seen (`POST /s/<token>`), or is opened and its form sent
(a confirmed answer, which alerts at once for a detractor), or nothing (a bare click, which
does not count). Two readers load the staff dashboard (logged in) and the API
(`/api/v1/...`, with a key) again and again until the clicks are done.

Then it waits for the worker to settle and prints one line per check, PASS or FAIL with its
figures, and the rate and p99 of each kind of request (the traffic and the receivers are in
bench/soak_load.py). The exit status is 1 when a check fails. Every process it starts is
stopped by its pid at the end, also on failure.

Knobs (environment): SOAK_CLICKS (10000), SOAK_CONNECTIONS (64), SOAK_SEND (recipients of
the campaign sent during the soak, 3000), SOAK_SETTLE_SECONDS (most seconds to wait for the
worker afterwards, 180), SOAK_KEEP=1 keeps the temporary folder (its path is printed).
`SOAK_CLICKS=500 SOAK_SEND=200 make soak` is a quick run.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]  # the project, for `bench.*` and the packages

from bench.bench_clicks import (  # noqa: E402  (the path above first)
    SECRET,
    WORKERS,
    _environment,
    _free_port,
    _gunicorn,
    _stop,
)
from bench.soak_load import (  # noqa: E402
    CONNECTIONS,
    STAFF_EMAIL,
    STAFF_PASSWORD,
    Client,
    _load,
    _start_sink,
)

CLICKS = int(os.environ.get("SOAK_CLICKS", "10000"))
SEND = int(os.environ.get("SOAK_SEND", "3000"))
SETTLE_SECONDS = float(os.environ.get("SOAK_SETTLE_SECONDS", "180"))
KEEP = os.environ.get("SOAK_KEEP") == "1"
SPARE = 200  # emails of the sent campaign nobody clicks
SUPPORT = "support@soak.example"
WORKER_INTERVAL = "1"
COMMAND = str(Path(sys.executable).parent / "survey-mailer")
# Of the people who click: some send the landing page's form, more let it report itself
# seen, the rest only click (a bare fetch: recorded, never counted).
FORM_SHARE, SEEN_SHARE = 0.15, 0.55


# Set-up -----------------------------------------------------------------------------------


def _cli(env: dict[str, str], *args: str, stdin: bytes | None = None) -> str:
    done = subprocess.run([COMMAND, *args], env=env, input=stdin, capture_output=True)
    if done.returncode:
        raise RuntimeError(f"survey-mailer {' '.join(args[:2])} failed: "
                           f"{done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode()


def _prepare(env: dict[str, str], tmp: Path) -> dict:
    """Import the contacts, make both campaigns, a staff account and an API key."""
    clicked = CLICKS + SPARE
    rows = ["email,name,company,language,wave"]
    for i in range(1, clicked + SEND + 1):
        company = f"Company {i % 60}" if i % 3 else ""
        wave = "sent" if i <= clicked else "sending"
        rows.append(f"person{i}@soak.example,Person {i},{company},"
                    f"{('en', 'es', 'fr', 'sv')[i % 4]},{wave}")
    (tmp / "contacts.csv").write_text("\n".join(rows) + "\n")
    _cli(env, "init")
    _cli(env, "contacts", "import", str(tmp / "contacts.csv"))
    sent = _cli(env, "campaign", "create", "--name", "Sent before", "--subject",
                "A quick question", "--sender", "Acme <nps@acme.example>",
                "--segment", "wave=sent").split()[-1]
    sending = _cli(env, "campaign", "create", "--name", "Sending now", "--subject",
                   "Another quick question", "--sender", "Acme <nps@acme.example>",
                   "--segment", "wave=sending").split()[-1]
    _cli(env, "staff", "add", STAFF_EMAIL, "--password", STAFF_PASSWORD, "--role", "admin")
    key = _cli(env, "api-key", "create", "--name", "soak").strip().splitlines()[-1].split()[-1]

    from survey_mailer import clock, db

    database = db.connect(env["SURVEY_DATABASE"])
    stamp = clock.now()
    with db.write(database) as conn:  # the first campaign went out before: its deliveries
        conn.execute("UPDATE campaigns SET started_at = ? WHERE id = ?", [stamp, sent])
        conn.execute(
            "INSERT INTO deliveries (campaign_id, contact_id, status, created_at, sent_at)"
            " SELECT ?, id, 'sent', ?, ? FROM contacts WHERE email IN"
            " (SELECT value FROM json_each(?)) ORDER BY id",
            [sent, stamp, stamp,
             json.dumps([f"person{i}@soak.example" for i in range(1, clicked + 1)])])
        deliveries = [r[0] for r in conn.execute(
            "SELECT id FROM deliveries WHERE campaign_id = ? ORDER BY id", [sent])]
    database.close()
    return {"sent": int(sent), "sending": int(sending), "key": key,
            "deliveries": deliveries[:CLICKS]}


def _hand_to_worker(env: dict[str, str], campaign_id: int) -> int:
    """Make the second campaign's deliveries due now, as a schedule leaves them."""
    from survey_mailer import campaigns, clock, db

    database = db.connect(env["SURVEY_DATABASE"])
    try:
        planned = campaigns.plan(database, campaigns.get(database, campaign_id), 0,
                                 due=clock.now())
        campaigns.start(database, campaign_id)
    finally:
        database.close()
    return planned


# Settling and checking --------------------------------------------------------------------


def _query(env: dict[str, str], sql: str, params=()) -> list[tuple]:
    conn = sqlite3.connect(f"file:{env['SURVEY_DATABASE']}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _state(env: dict[str, str], ids: dict) -> tuple:
    return _query(env, """
        SELECT (SELECT count(*) FROM deliveries WHERE campaign_id = :sending
                AND status IN ('pending', 'sending')),
               (SELECT count(DISTINCT delivery_id) FROM clicks WHERE delivery_id NOT IN
                (SELECT delivery_id FROM responses)),
               (SELECT count(*) FROM notifications WHERE status IN ('pending', 'claimed')),
               (SELECT count(*) FROM notifications),
               (SELECT count(*) FROM alert_threads)
        """, ids)[0]


def _settle(env: dict[str, str], ids: dict, worker: subprocess.Popen,
            burst: float) -> tuple[float, bool]:
    """Wait until the worker has sent, folded and dispatched everything; return the
    seconds waited and whether it settled."""
    started = time.monotonic()
    time.sleep(burst + 1)  # a response settles once no click came for the burst window
    stable, last = 0, None
    while time.monotonic() - started < SETTLE_SECONDS and worker.poll() is None:
        state = _state(env, ids)
        busy = state[0] or state[1] or state[2]
        stable = stable + 1 if state == last and not busy else 0
        if stable >= 3:  # three quiet looks a worker round apart: nothing more is coming
            return time.monotonic() - started, True
        last = state
        time.sleep(float(WORKER_INTERVAL) + 0.5)
    return time.monotonic() - started, False


def _received(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000 if ordered else 0.0


def _checks(env: dict[str, str], ids: dict, answered: dict, client: Client, tmp: Path,
            logs: list[Path]) -> list[tuple[bool, str, str]]:
    from survey_mailer.scores import counted_sql

    policy = env.get("SURVEY_SCORE_POLICY", "balanced")
    results = []

    ok_clicks = [d for d, status in answered["clicks"].items() if status == 303]
    logged = {r[0] for r in _query(
        env, "SELECT DISTINCT delivery_id FROM clicks WHERE kind = 'score'")}
    missing = [d for d in ok_clicks if d not in logged]
    results.append((not missing and len(ok_clicks) == CLICKS,
                    "clicks answered 303 are in the click log",
                    f"{len(ok_clicks) - len(missing):,} of {len(ok_clicks):,} answered "
                    f"({CLICKS:,} made)"))

    counted = _query(env, f"SELECT count(*) FROM responses r WHERE r.campaign_id = :sent AND"
                          f" {counted_sql(policy)}", ids)[0][0]
    people = len(answered["seen"] | answered["form"])
    report = json.loads(_cli(env, "report", "--campaign", str(ids["sent"]), "--format",
                             "json"))
    in_report = report["responses"]
    results.append((in_report == counted == people, "counted responses are in the report",
                    f"report {in_report:,}, database {counted:,} counted ({policy}), "
                    f"{people:,} people saw their page or sent the form"))

    statuses = Counter()
    for counts in client.statuses.values():
        statuses.update(counts)
    bad = sum(n for status, n in statuses.items() if status == "error" or status >= 500
              or status == 0)
    results.append((bad == 0, "no 5xx or failed request",
                    ", ".join(f"{k}: " + " ".join(f"{s}x{n}" for s, n in sorted(
                        v.items(), key=str)) for k, v in sorted(client.statuses.items()))))

    for phrase in ("database is locked", "Traceback"):
        hits = {log.name: log.read_text(errors="replace").count(phrase) for log in logs}
        results.append((not any(hits.values()), f'no "{phrase}" in any log',
                        ", ".join(f"{name}: {n}" for name, n in hits.items())))

    received = _received(tmp / "received.jsonl")
    alerts = [r for r in received if r["kind"] == "smtp" and r["rcpt"] == [SUPPORT]]
    first = [r for r in alerts if not r["subject"].startswith("Re:")]
    detractors = _query(env, f"SELECT count(*) FROM responses r WHERE r.campaign_id = :sent"
                             f" AND {counted_sql(policy)} AND r.score <= 6", ids)[0][0]
    queued = _query(env, "SELECT status, count(*) FROM notifications WHERE kind = 'email'"
                         " GROUP BY status")
    sent_rows = dict(queued).get("sent", 0)
    distinct = len({r["message_id"] for r in alerts})
    results.append((len(alerts) == distinct == len(first) == sent_rows == detractors,
                    "every detractor alert exactly once",
                    f"{len(alerts):,} received ({distinct:,} distinct, {len(alerts) - distinct} "
                    f"doubled, {len(alerts) - len(first)} updates), {detractors:,} counted "
                    f"detractors; email notifications "
                    f"{', '.join(f'{s} {n:,}' for s, n in queued) or 'none'}"))

    # Webhooks: one response.counted each (the weekly digest may come too: not counted).
    kinds = Counter(r["type"] for r in received if r["kind"] == "webhook")
    hooks = [r for r in received if r["kind"] == "webhook" and r["type"].startswith("response.")]
    events = Counter(r["event"] for r in hooks)
    results.append((len(hooks) == len(events) == counted, "every counted response one webhook",
                    f"{len(hooks):,} received ({len(events):,} distinct events, "
                    f"{sum(n - 1 for n in events.values())} repeated), {counted:,} counted; "
                    f"by type: {', '.join(f'{t} {n:,}' for t, n in sorted(kinds.items()))}"))

    campaign = [r for r in received if r["kind"] == "smtp" and r["rcpt"] != [SUPPORT]]
    recipients = Counter(tuple(r["rcpt"]) for r in campaign)
    rows = dict(_query(env, "SELECT status, count(*) FROM deliveries WHERE campaign_id ="
                            " :sending GROUP BY status", ids))
    total = sum(rows.values())
    results.append((len(campaign) == len(recipients) == rows.get("sent", 0) == total == SEND,
                    "every delivery of the sending campaign sent exactly once",
                    f"{len(campaign):,} received ({len(recipients):,} distinct recipients), "
                    f"deliveries {', '.join(f'{s} {n:,}' for s, n in rows.items())}"))
    return results


def _figures(client: Client, access_log: Path, seconds: float) -> list[str]:
    # Time gunicorn's workers spent inside requests (its access log's %(D)s), against the
    # time they had: the rest went to waiting or to work done after a response was sent.
    busy = sum(int(line.split()[-1]) for line in access_log.read_text().splitlines()
               if line.split()[-1].isdigit()) / 1e6 if access_log.exists() else 0.0
    lines = [f"gunicorn: {busy:.1f} s inside requests of {seconds * WORKERS:.1f} worker-seconds"
             f" under load ({busy / (seconds * WORKERS):.0%})"]
    for kind in ("click", "seen", "page", "form", "dashboard", "api"):
        times = client.times.get(kind)
        if not times:
            continue
        start, end = client.spans[kind]
        lines.append(f"{kind:<10} {len(times):>7,} requests {len(times) / (end - start):>8.1f}"
                     f" req/s  p99 {_p99(times):>7.1f} ms  median "
                     f"{sorted(times)[len(times) // 2] * 1000:.1f} ms")
    return lines


# Main -------------------------------------------------------------------------------------


def main() -> int:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    processes: list[subprocess.Popen] = []
    started = time.perf_counter()
    try:
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        env = _environment(tmp, base)
        sink, smtp_port, hook_port = _start_sink(env, tmp)
        processes.append(sink)
        env.update(
            SURVEY_MAIL_BACKEND="smtp", SURVEY_SMTP_HOST="127.0.0.1",
            SURVEY_SMTP_PORT=str(smtp_port), SURVEY_SMTP_SECURITY="none",
            SURVEY_SUPPORT_EMAIL=SUPPORT, SURVEY_WEBHOOK_URLS=f"http://127.0.0.1:{hook_port}/h",
            SURVEY_PROXY_HOPS="1", SURVEY_API_RATE_LIMIT="100000 per minute",
            SURVEY_POSTAL_ADDRESS="Acme Analytics Ltd, 221B Baker Street, London NW1 6XE",
            SURVEY_WORKER_INTERVAL=WORKER_INTERVAL,
            GUNICORN_CMD_ARGS=f"--access-logfile {shlex.quote(str(tmp / 'access.log'))} "
                              "--access-logformat '%(m)s %(U)s %(s)s %(D)s'",
            PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]
                                       ).rstrip(os.pathsep))
        os.environ.update({k: v for k, v in env.items() if k.startswith("SURVEY_")})
        print(f"soak: {CLICKS:,} clicks over {CONNECTIONS} connections on gunicorn "
              f"({WORKERS} workers) while the worker sends {SEND:,}; in {tmp}", flush=True)
        ids_made = _prepare(env, tmp)
        ids = {"sent": ids_made["sent"], "sending": ids_made["sending"]}

        from survey_mailer.config import load
        from survey_mailer.links import Links

        burst = load()["SURVEY_BURST_SECONDS"]
        links = Links([SECRET], base)
        rng = random.Random(15)
        people = []
        for delivery_id in ids_made["deliveries"]:
            roll = rng.random()
            what = "form" if roll < FORM_SHARE else "seen" if roll < FORM_SHARE + SEEN_SHARE \
                else "bare"
            people.append((delivery_id, rng.randrange(11), what))
        server = _gunicorn(env, port, tmp / "gunicorn.log")
        processes.append(server)
        planned = _hand_to_worker(env, ids["sending"])
        worker_log = tmp / "worker.log"
        with open(worker_log, "wb") as out:
            worker = subprocess.Popen([COMMAND, "worker"], env=env, stdout=out,
                                      stderr=subprocess.STDOUT)
        processes.append(worker)
        print(f"set up in {time.perf_counter() - started:.1f} s; {planned:,} deliveries due "
              "for the worker", flush=True)
        client = Client(base)
        load_started = time.perf_counter()
        answered = asyncio.run(_load(client, links, {"people": people}, ids_made["key"],
                                     ids["sent"]))
        load_seconds = time.perf_counter() - load_started
        print(f"load done in {load_seconds:.1f} s", flush=True)
        waited, settled = _settle(env, ids, worker, burst)
        _stop(worker)
        worker_status = worker.returncode
        results = _checks(env, ids, answered, client, tmp, [tmp / "gunicorn.log", worker_log])
        results.insert(0, (settled, "the worker settled after the load",
                           f"{waited:.1f} s (at most {SETTLE_SECONDS:g} s)"))
        results.append((worker_status in (0, -signal.SIGTERM), "the worker ran to the end",
                        f"exit status {worker_status} after SIGTERM"))
        for ok, name, detail in results:
            print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}", flush=True)
        for line in _figures(client, tmp / "access.log", load_seconds):
            print(line)
        for error in client.errors[:10]:
            print(f"  error: {error}")
        failed = sum(not ok for ok, _, _ in results)
        print(f"soak: {len(results) - failed} passed, {failed} failed in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        return 1 if failed else 0
    finally:
        for process in reversed(processes):
            _stop(process)
        if KEEP:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
