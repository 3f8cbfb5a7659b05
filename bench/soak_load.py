"""The soak's traffic and receivers (bench/soak.py): an SMTP and webhook sink in a process
of its own, and an asyncio client playing people, the staff dashboard and the API."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import urllib.parse
from collections import Counter, defaultdict
from pathlib import Path

from bench.bench_clicks import USER_AGENT, _free_port, _stop

CONNECTIONS = int(os.environ.get("SOAK_CONNECTIONS", "64"))
STAFF_EMAIL, STAFF_PASSWORD = "soak@soak.example", "soak-password-0123"


SINK = """
import json, sys, threading, time
from email import message_from_bytes
from email.policy import default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from aiosmtpd.controller import Controller

out = open(sys.argv[3], "a")
lock = threading.Lock()

def write(record):
    with lock:
        out.write(json.dumps(record) + "\\n")
        out.flush()

class Sink:
    async def handle_DATA(self, server, session, envelope):
        msg = message_from_bytes(envelope.content, policy=default)
        write({"kind": "smtp", "rcpt": envelope.rcpt_tos, "subject": str(msg["Subject"]),
               "message_id": str(msg["Message-ID"])})
        return "250 2.0.0 queued"

class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        write({"kind": "webhook", "event": self.headers.get("X-Survey-Event"),
               "type": json.loads(body).get("event")})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass

controller = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
hooks = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Hook)
threading.Thread(target=hooks.serve_forever, daemon=True).start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"""



def _start_sink(env: dict[str, str], tmp: Path) -> tuple[subprocess.Popen, int, int]:
    smtp_port, hook_port = _free_port(), _free_port()
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(smtp_port), str(hook_port),
                             str(tmp / "received.jsonl")], stdout=subprocess.PIPE,
                            stderr=open(tmp / "sink.log", "wb"), text=True, env=env)
    if sink.stdout.readline().strip() != "ready":
        _stop(sink)
        raise RuntimeError(f"the SMTP and webhook sink did not start: see {tmp / 'sink.log'}")
    return sink, smtp_port, hook_port




# The client -------------------------------------------------------------------------------


class Client:
    """HTTP/1.1 over raw asyncio sockets, one connection per request (gunicorn's sync
    workers close each): light, so the two cores go to the server."""

    def __init__(self, base: str):
        self.host, port = base.removeprefix("http://").split(":")
        self.port = int(port)
        self.statuses: dict[str, Counter] = defaultdict(Counter)
        self.times: dict[str, list[float]] = defaultdict(list)
        self.spans: dict[str, list[float]] = {}
        self.errors: list[str] = []

    async def request(self, kind: str, method: str, path: str, headers: dict | None = None,
                      body: bytes = b"") -> tuple[int, dict, bytes]:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                 f"User-Agent: {USER_AGENT}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        started = time.perf_counter()
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            reply = await asyncio.wait_for(reader.read(), 60)
            writer.close()
            await writer.wait_closed()
        except (TimeoutError, OSError) as e:
            self.statuses[kind]["error"] += 1
            self.errors.append(f"{kind} {method} {path}: {e!r}")
            return 0, {}, b""
        finished = time.perf_counter()
        head, _, content = reply.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        status = int(parts[1]) if status_line.startswith("HTTP/") and len(parts) > 1 else 0
        found = defaultdict(list)
        for line in header_lines:
            name, _, value = line.partition(":")
            found[name.strip().lower()].append(value.strip())
        self.statuses[kind][status] += 1
        self.times[kind].append(finished - started)
        span = self.spans.setdefault(kind, [started, finished])
        span[0], span[1] = min(span[0], started), max(span[1], finished)
        if status >= 500 or status == 0:
            self.errors.append(f"{kind} {method} {path}: {status}")
        return status, found, content


CSRF_RE = re.compile(rb'name="csrf_token"[^>]*value="([^"]+)"')


def _cookie(headers: dict) -> str:
    return "; ".join(c.split(";", 1)[0] for c in headers.get("set-cookie", []))


async def _person(client: Client, links, delivery_id: int, score: int, what: str,
                  answered: dict) -> None:
    # Each person comes from an address of their own, through the one trusted proxy.
    address = f"10.{delivery_id >> 16 & 255}.{delivery_id >> 8 & 255}.{delivery_id & 255}"
    forwarded = {"X-Forwarded-For": address}
    token = links.token("score", delivery_id)
    status, headers, _ = await client.request("click", "GET", f"/r/{token}/{score}",
                                              forwarded)
    answered["clicks"][delivery_id] = status
    if status != 303 or what == "bare":
        return
    form = {"Content-Type": "application/x-www-form-urlencoded", **forwarded}
    if what == "seen":
        status, _, _ = await client.request(
            "seen", "POST", f"/s/{links.token('seen', delivery_id)}", form,
            f"score={score}".encode())
        if status == 204:
            answered["seen"].add(delivery_id)
        return
    page = headers["location"][0]
    status, headers, content = await client.request("page", "GET", page, forwarded)
    csrf = CSRF_RE.search(content)
    if status != 200 or not csrf:
        return
    fields = {"csrf_token": csrf.group(1).decode(), "score": str(score),
              "comment": f"Soak comment from delivery {delivery_id}"}
    if score <= 6:
        fields["contact_ok"] = "y"
    status, _, _ = await client.request(
        "form", "POST", page, {**form, "Cookie": _cookie(headers)},
        urllib.parse.urlencode(fields).encode())
    if status == 200:
        answered["form"].add(delivery_id)


async def _reader(client: Client, kind: str, paths: list[str], headers: dict,
                  done: asyncio.Event) -> None:
    i = 0
    while not done.is_set():
        await client.request(kind, "GET", paths[i % len(paths)], headers)
        i += 1


async def _staff_cookie(client: Client) -> str:
    status, headers, content = await client.request("login", "GET", "/staff/login")
    csrf = CSRF_RE.search(content)
    if status != 200 or not csrf:
        raise RuntimeError(f"the staff login page answered {status}")
    cookie = _cookie(headers)
    status, headers, _ = await client.request(
        "login", "POST", "/staff/login",
        {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
        urllib.parse.urlencode({"csrf_token": csrf.group(1).decode(), "email": STAFF_EMAIL,
                                "password": STAFF_PASSWORD}).encode())
    if status != 302 and status != 303:
        raise RuntimeError(f"the staff login answered {status}")
    return _cookie(headers) or cookie


async def _load(client: Client, links, plan: dict, key: str, campaign_id: int) -> dict:
    answered = {"clicks": {}, "seen": set(), "form": set()}
    cookie = await _staff_cookie(client)
    done = asyncio.Event()
    readers = [
        asyncio.create_task(_reader(client, "dashboard", ["/staff/"], {"Cookie": cookie},
                                    done)),
        asyncio.create_task(_reader(
            client, "api", ["/api/v1/responses?limit=100", "/api/v1/stats",
                            f"/api/v1/campaigns/{campaign_id}/stats",
                            f"/api/v1/stats?campaign={campaign_id}&by=company"],
            {"Authorization": f"Bearer {key}"}, done)),
    ]
    pending = list(reversed(plan["people"]))

    async def connection():
        while pending:
            delivery_id, score, what = pending.pop()
            await _person(client, links, delivery_id, score, what, answered)

    try:
        await asyncio.gather(*(connection() for _ in range(CONNECTIONS)))
    finally:
        done.set()
        await asyncio.gather(*readers)
    return answered
