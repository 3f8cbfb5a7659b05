"""Send speed and rate (SPEC 9): our SES path against a bare boto3 loop, and the rate kept.

An SES endpoint on loopback: moto's server mode in its own process (stopped by its pid).

Throughput: a campaign through the whole `Sender` (planning, crash-safe state commits,
compose, `SESBackend` with `sesv2.send_email` and Content.Raw) against a bare loop of
`send_email` calls with the same raw message, from a pool of the same size
(`SESBackend.concurrency`), in the same run; best of a few rounds each, interleaved.

Rate: a campaign at a configured SURVEY_SEND_RATE; the most messages in any one-second
window, counted from the limiter's slots and from the moments botocore sends each request.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
from botocore.config import Config as BotoConfig

from survey_mailer import campaigns, contacts, db
from survey_mailer import config as config_
from survey_mailer.backends.ses import SESBackend
from survey_mailer.compose import Composer
from survey_mailer.links import Links
from survey_mailer.ratelimit import RATE_MARGIN, RateLimiter
from survey_mailer.sender import Sender

MESSAGES = 600
ROUNDS = 2
RATE = 40  # messages per second for the rate check
RATE_MESSAGES = 160
RATIO_TARGET = 0.9
REGION = "us-east-1"
SENDER = "nps@acme.example.com"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_moto() -> tuple[subprocess.Popen, str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H",
                                "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
            return process, url
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.1)


def _database(tmp: Path, name: str, count: int):
    database = db.connect(tmp / f"{name}.db")
    db.migrate(database)
    csv_path = tmp / f"{name}.csv"
    csv_path.write_text("email,name,language\n" + "".join(
        f"person{i}@customer{i % 97}.example,Person {i},en\n" for i in range(count)))
    with csv_path.open(encoding="utf-8") as stream:
        contacts.import_csv(database, stream)
    campaign_id = campaigns.create(database, name="bench", subject="One quick question",
                                   sender=f"Acme <{SENDER}>", postal_address="1 Main St")
    return database, campaign_id


def _ours(tmp: Path, links: Links, name: str) -> float:
    database, campaign_id = _database(tmp, name, MESSAGES)
    backend = SESBackend.from_config(config_.load())
    sender = Sender(database, backend, rate=None, concurrency=backend.concurrency)
    return _send_all(sender, campaign_id, MESSAGES)


def _send_all(sender: Sender, campaign_id: int, expected: int) -> float:
    """Send the whole campaign, close its backend and database; return messages per second."""
    started = time.perf_counter()
    summary = campaigns.send(sender.db, sender, config_.load(), campaign_id)
    seconds = time.perf_counter() - started
    sender.backend.close()
    sender.db.close()
    assert summary.sent == expected, summary
    return expected / seconds


def _bare(message: bytes) -> float:
    client = boto3.client("sesv2", region_name=REGION, config=BotoConfig(
        retries={"mode": "standard", "max_attempts": 5},
        max_pool_connections=max(10, SESBackend.concurrency)))

    def one(i: int) -> str:
        return client.send_email(
            FromEmailAddress=SENDER, Destination={"ToAddresses": [f"bare{i}@example.com"]},
            Content={"Raw": {"Data": message}})["MessageId"]

    started = time.perf_counter()
    with ThreadPoolExecutor(SESBackend.concurrency) as pool:
        ids = list(pool.map(one, range(MESSAGES)))
    seconds = time.perf_counter() - started
    client.close()
    assert len(set(ids)) == MESSAGES
    return MESSAGES / seconds


def _max_in_window(times: list[float]) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + 1.0:
            j += 1
        best = max(best, j - i)
    return best


def _rate(tmp: Path, links: Links) -> tuple[int, int, float]:
    database, campaign_id = _database(tmp, "rate", RATE_MESSAGES)
    backend = SESBackend.from_config(config_.load())
    handed: list[float] = []
    backend.client.meta.events.register("before-send.sesv2.SendEmail",
                                        lambda **kw: handed.append(time.monotonic()))
    slots: list[float] = []
    limiter = RateLimiter(RATE, record=slots, margin=RATE_MARGIN)
    sender = Sender(database, backend, limiter=limiter, concurrency=backend.concurrency)
    per_second = _send_all(sender, campaign_id, RATE_MESSAGES)
    return _max_in_window(slots), _max_in_window(handed), per_second


def run() -> list[tuple]:
    """Return the send rows for bench/run.py."""
    saved = dict(os.environ)
    process, url = _start_moto()
    try:
        os.environ.update({
            "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL_SESV2": url, "AWS_ENDPOINT_URL_SES": url,
            "SURVEY_SECRET_KEY": "bench-secret-key", "SURVEY_ENV": "production",
            "SURVEY_BASE_URL": "https://survey.example.com",
        })
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                     "SURVEY_SES_CONFIGURATION_SET"):
            os.environ.pop(name, None)
        boto3.client("ses", region_name=REGION).verify_email_identity(EmailAddress=SENDER)
        links = Links(["bench-secret-key"], "https://survey.example.com")
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            database, campaign_id = _database(tmp, "sample", 1)
            message = Composer(campaigns.get(database, campaign_id), links).compose(
                1, "person0@customer0.example", "Person 0", "en")
            database.close()
            ours, bare = [], []
            for i in range(ROUNDS):
                bare.append(_bare(message))
                ours.append(_ours(tmp, links, f"ours{i}"))
            slot_max, handed_max, rate_seen = _rate(tmp, links)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    best_ours, best_bare = max(ours), max(bare)
    return [
        (f"send: SES messages/s, ours vs bare boto3 ({SESBackend.concurrency} workers, "
         f"moto on loopback)", round(best_ours, 1), round(best_bare, 1),
         f"higher is better; target ratio >= {RATIO_TARGET:g}x; ours = Sender + state "
         f"commits + compose + SESBackend; floor = bare send_email loop, same run", "higher"),
        (f"send: most rate slots in any 1 s window (rate {RATE}/s)", slot_max, RATE,
         f"lower is better; target <= {RATE}; {RATE_MESSAGES} messages at "
         f"{rate_seen:.1f}/s overall", "lower"),
        (f"send: most requests handed to botocore in any 1 s window (rate {RATE}/s)",
         handed_max, RATE, f"lower is better; target <= {RATE}; timestamps at botocore's "
         f"before-send, so they include thread scheduling jitter", "lower"),
    ]


if __name__ == "__main__":
    sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]
    for row in run():
        print(*row[:4], sep="  |  ")
