"""A counting fake platform: a tiny HTTP server, in its own process, that remembers every send.

Run it as ``python tests/fakes/counting_platform.py --log sends.jsonl [--delay-ms 500]``; it
binds 127.0.0.1 on a free port and prints ``PORT <n>`` on stdout once it accepts requests.

Endpoints:

- ``POST /send`` with JSON ``{"key", "action_id", "kind", "lead_id", "account_id", "at", ...}``:
  appends the body (plus ``n``, the arrival number, and ``received_at``) to the log as one JSON
  line, flushed and fsynced *before* answering, then waits ``--delay-ms`` (so a worker can be
  killed in the middle of the call) and answers ``{"ok": true, "n": n, "duplicate": bool}``.
  Every POST is logged, duplicates too: counting them is the point.
- With ``--rate-limit N`` (repeatable), the N-th ``POST /send`` (counting every POST from 1)
  is refused with HTTP 429 and a ``Retry-After``, as a platform's rate limit does: nothing is
  logged, the send did not happen.
- ``GET /sent?key=K``: ``{"key": K, "received": bool, "count": n}`` — was a send with this
  idempotency key received? Answered from the log, so the platform's memory survives its own
  restart (the log is read back at start-up).
- ``GET /health``: ``{"ok": true}``.

Stdlib only: the tests start it with ``subprocess.Popen([sys.executable, this_file, ...])``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

REQUIRED = ("key", "action_id", "kind", "lead_id", "account_id", "at")


class SendLog:
    """The append-only log of sends and the set of keys it holds."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.keys: Counter[str] = Counter()
        self.n = 0
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        self.keys[json.loads(line)["key"]] += 1
                        self.n += 1
        self.fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the server

    def append(self, body: dict[str, Any]) -> tuple[int, bool]:
        with self.lock:
            self.n += 1
            duplicate = self.keys[body["key"]] > 0
            record = {**body, "n": self.n, "received_at": time.time()}
            self.fh.write(json.dumps(record, sort_keys=True) + "\n")
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.keys[body["key"]] += 1
            return self.n, duplicate

    def count(self, key: str) -> int:
        with self.lock:
            return self.keys[key]


def make_handler(
    log: SendLog, delay: float, refuse: frozenset[int] = frozenset()
) -> type[BaseHTTPRequestHandler]:
    posts = [0]  # every POST /send so far (refused ones too)
    posts_lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out at once: no 40 ms stalls

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep the test output clean

        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "3600")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            if urlsplit(self.path).path != "/send":
                self._reply(404, {"error": "not found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._reply(400, {"error": "body is not JSON"})
                return
            missing = [f for f in REQUIRED if not isinstance(body, dict) or f not in body]
            if missing:
                self._reply(400, {"error": f"missing fields: {', '.join(missing)}"})
                return
            with posts_lock:
                posts[0] += 1
                refused = posts[0] in refuse
            if refused:
                self._reply(429, {"error": "rate limit exceeded", "retry_after": 3600})
                return
            n, duplicate = log.append(body)
            if delay > 0:
                time.sleep(delay)  # the platform is slow to answer: the send already happened
            self._reply(200, {"ok": True, "n": n, "duplicate": duplicate})

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path == "/health":
                self._reply(200, {"ok": True})
                return
            if parts.path != "/sent":
                self._reply(404, {"error": "not found"})
                return
            keys = parse_qs(parts.query).get("key")
            if not keys:
                self._reply(400, {"error": "give ?key="})
                return
            count = log.count(keys[0])
            self._reply(200, {"key": keys[0], "received": count > 0, "count": count})

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", required=True, help="append-only JSON-lines log of sends")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="latency of POST /send")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--rate-limit", type=int, action="append", default=[], help="refuse the N-th POST (429)"
    )
    args = parser.parse_args(argv)
    log = SendLog(args.log)
    handler = make_handler(log, args.delay_ms / 1000, frozenset(args.rate_limit))
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def read_log(path: str) -> list[dict[str, Any]]:
    """Every send the fake logged, in arrival order (an absent log is no sends)."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


class FakePlatform:
    """The fake running in a child process: ``url``, ``sends()``, ``stop()``.

    Use as a context manager, or call :meth:`stop` (it always reaps the process).
    """

    def __init__(
        self, log: str, *, delay_ms: float = 0.0, rate_limit: tuple[int, ...] = ()
    ) -> None:
        self.log = str(log)
        refuse = [arg for n in rate_limit for arg in ("--rate-limit", str(n))]
        self.proc = subprocess.Popen(
            [
                sys.executable,
                os.path.abspath(__file__),
                "--log",
                self.log,
                "--delay-ms",
                str(delay_ms),
                *refuse,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until the server listens (or dies)
        if not line.startswith("PORT "):
            self.stop()
            msg = f"the counting fake did not start (said {line!r}, exit {self.proc.poll()})"
            raise RuntimeError(msg)
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def sends(self) -> list[dict[str, Any]]:
        """Every send logged so far."""
        return read_log(self.log)

    def stop(self) -> None:
        """Terminate the server process and wait for it."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> FakePlatform:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
