"""API speed (SPEC 9): `POST /api/v1/surveys` against a bare Flask route, gunicorn with 2 workers.

The same server and load generator as the click bench (bench_clicks.py: its app with a bare
route, its gunicorn, wrk and helpers): a temporary database with one campaign and an API
key (its rate limit raised out of the way), then, in rounds, the bare route and `POST
/api/v1/surveys` with a new person in each request (so each one upserts a contact and
creates a delivery, the whole write path, never a 409). The ratio compares the best round
of each. Last, every delivery is counted against the 202s wrk saw: none lost, none doubled
(a few more than answered may exist: requests in flight when a run stops).

The machine is shared, so only figures from the same run are compared.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path

from bench import bench_clicks as clicks

SECONDS = 5  # per wrk run
ROUNDS = 3
RATIO_TARGET = 0.4

POST_SCRIPT = """
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  local lines = {}
  for line in io.lines(args[1]) do lines[#lines + 1] = line end
  key, tag = lines[1], lines[2]
  i = 0
end
function request()
  i = i + 1
  local body = string.format('{"email": "%s-%d-%d@bench.example", "campaign": 1, '
    .. '"delay_seconds": 3600, "event": "bench", "name": "Bench Person"}', tag, id, i)
  return wrk.format("POST", "/api/v1/surveys", {["Authorization"] = "Bearer " .. key,
    ["Content-Type"] = "application/json"}, body)
end
function done(summary, latency, requests)
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p99_us=%d connect=%d read=%d write=%d status=%d "
    .. "timeout=%d\\n", summary.requests, summary.duration, latency:percentile(99),
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status,
    summary.errors.timeout))
end
"""


def run(seconds: int = SECONDS, rounds: int = ROUNDS) -> list[tuple]:
    """Measure POST /api/v1/surveys under gunicorn; return (name, measured, floor, comment) rows."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
    wrk = clicks._wrk()
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        tmp = Path(tmp)
        port = clicks._free_port()
        base = f"http://127.0.0.1:{port}"
        env = clicks._environment(tmp, base)
        # Far above what two workers can serve: the bench measures the route, not the limit.
        env["SURVEY_API_RATE_LIMIT"] = "100000000 per minute"
        key = _database(env)
        get_script, post_script = tmp / "get.lua", tmp / "post.lua"
        get_script.write_text(clicks.WRK_SCRIPT.replace("@USER_AGENT@", clicks.USER_AGENT))
        post_script.write_text(POST_SCRIPT)
        bare_paths = tmp / "bare.txt"
        bare_paths.write_text("/bench/bare\n")
        server = clicks._gunicorn(env, port, tmp / "gunicorn.log")
        try:
            clicks._load(wrk, get_script, base, bare_paths, 1)  # warm up: workers migrate
            bare, api = [], []
            for n in range(rounds):
                bare.append(clicks._load(wrk, get_script, base, bare_paths, seconds))
                people = tmp / f"people-{n}.txt"
                people.write_text(f"{key}\nround{n}\n")
                api.append(clicks._load(wrk, post_script, base, people, seconds))
        finally:
            clicks._stop(server)
        created = _deliveries(env)

    best_bare = max(bare, key=lambda r: r["rps"])
    best_api = max(api, key=lambda r: r["rps"])
    answered = sum(r["requests"] for r in api)
    errors = sum(r["errors"] for r in bare + api)
    each = ", ".join(f"{a['rps'] / b['rps']:.2f}x" for b, a in zip(bare, api, strict=True))
    setup = (f"gunicorn {clicks.WORKERS} sync workers, wrk {clicks.CONNECTIONS} connections, "
             f"{seconds} s")
    return [
        ("api: POST /api/v1/surveys req/s vs bare", best_api["rps"], best_bare["rps"],
         f"target >= {RATIO_TARGET}x of the bare route in the same run; a new person per "
         f"request (contact upserted, delivery created); {setup}, best of {rounds} (each "
         f"round: {each}); p99 {statistics.median(r['p99_ms'] for r in api):.0f} ms; "
         "higher is better", "higher"),
        ("api: deliveries created vs 202s answered", created, answered,
         "one delivery per answered request, none doubled (a few more may exist: requests "
         "in flight when a run stops); higher is better", "higher"),
        ("api: errors in all runs", errors, 0,
         "socket errors, timeouts and statuses other than 202 (or 200 on the bare route); "
         "lower is better", "lower"),
    ]


def _database(env: dict[str, str]) -> str:
    """Create the campaign (id 1) that every request surveys for; return an API key."""
    from survey_mailer import api_keys, campaigns, db

    database = db.connect(env["SURVEY_DATABASE"])
    try:
        db.migrate(database)
        campaigns.create(database, name="Bench", subject="A quick question",
                         sender="Acme <nps@acme.test>", postal_address="1 Main St")
        return api_keys.create_api_key(database, "bench")
    finally:
        database.close()


def _deliveries(env: dict[str, str]) -> int:
    from survey_mailer import db

    database = db.connect(env["SURVEY_DATABASE"])
    try:
        doubled = database.execute(
            "SELECT count(*) FROM (SELECT contact_id FROM deliveries GROUP BY contact_id "
            "HAVING count(*) > 1)").fetchone()[0]
        if doubled:
            raise RuntimeError(f"{doubled} people got two deliveries")
        return database.execute("SELECT count(*) FROM deliveries").fetchone()[0]
    finally:
        database.close()


if __name__ == "__main__":
    for row in run():
        print(row)
