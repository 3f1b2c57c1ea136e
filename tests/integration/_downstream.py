"""A downstream HTTP service on loopback for the limit tests: what a limited step calls, and the
one witness of what the limit let through.

``GET /?tag=T`` records the request's start (``time.monotonic()``), its tag and how many
requests were in flight with it (itself included), sleeps ``sleep_s`` (a tag in ``held`` waits
for ``release()`` first) and answers ``T``. The in-flight count drops before the answer is sent,
so it never counts a request the engine could already consider finished: a concurrency seen
here is one the limit allowed.

A ``ThreadingHTTPServer`` on a thread of the test process, a thread per request (a backlog of
256 connections: hundreds of steps may call at once).

``permits_held`` is the engine's side of the same story: when each permit was out, read from
the invocations' journals; ``assert_limit_held`` judges a run by both.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True, slots=True)
class Request:
    """One request as the downstream saw it begin."""

    start: float  # time.monotonic()
    tag: str
    concurrent: int  # requests in flight when it began, itself included


def max_in_window(timestamps: list[float], window: float = 1.0) -> int:
    """The most ``timestamps`` in any half-open window ``[t, t + window)``: the busiest window
    starts at a timestamp, so counting from each one is enough."""
    ordered = sorted(timestamps)
    best = end = 0
    for begin, t in enumerate(ordered):
        end = max(end, begin)
        while end < len(ordered) and ordered[end] < t + window:
            end += 1
        best = max(best, end - begin)
    return best


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


class Downstream:
    """The server; use it as a context manager (it listens between ``__enter__`` and
    ``__exit__``)."""

    def __init__(self, sleep_s: float = 0.02) -> None:
        self.sleep_s = sleep_s
        #: tags whose requests wait for ``release()`` before they sleep and answer
        self.held: set[str] = set()
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._current = 0
        self._max = 0
        self._requests: list[Request] = []
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Downstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -------------------------------------------------------------------- what it saw

    @property
    def max_concurrency(self) -> int:
        with self._lock:
            return self._max

    @property
    def requests(self) -> list[Request]:
        """Every request so far, in the order they began."""
        with self._lock:
            return list(self._requests)

    @property
    def timestamps(self) -> list[float]:
        return [r.start for r in self.requests]

    @property
    def tags(self) -> list[str]:
        return [r.tag for r in self.requests]

    def release(self) -> None:
        """Let the held requests (and any later one with a held tag) go on."""
        self._released.set()

    # -------------------------------------------------------------------- serving

    def _begin(self, tag: str) -> None:
        with self._lock:
            self._current += 1
            self._max = max(self._max, self._current)
            self._requests.append(Request(time.monotonic(), tag, self._current))

    def _end(self) -> None:
        with self._lock:
            self._current -= 1

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        downstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                tag = parse_qs(urlsplit(self.path).query).get("tag", [""])[0]
                downstream._begin(tag)
                try:
                    if tag in downstream.held:
                        downstream._released.wait(120)
                    time.sleep(downstream.sleep_s)
                finally:
                    downstream._end()
                body = tag.encode()
                self.send_response(200)
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: hundreds of requests per test

        return Handler


# ------------------------------------------------------------------------ the journals' side


def permits_held(admin: str, ids: list[str]) -> list[tuple[float, float]]:
    """When each invocation of ``ids`` held a permit, from its journal read through the admin
    API at ``admin``: from its ``permit`` entry's grant (the completion's time) to the
    journaling of the step it guarded (the ``run`` entry after it, whose commit gives the
    permit back), Unix seconds. A permit refused, or granted to a step not journaled, has no
    interval. An invocation with a failed attempt is refused: its step gave its permit back
    and was granted one again, and the journal keeps the first grant only."""

    def held(inv_id: str) -> list[tuple[float, float]]:
        with urllib.request.urlopen(f"{admin}/invocations/{inv_id}", timeout=60) as answer:
            detail = json.load(answer)
        assert not detail["retries"], (inv_id, detail["retries"])
        journal = detail["journal"]
        out = []
        for permit, step in pairwise(journal):
            granted = permit.get("completion", {})
            if permit["kind"] == "permit" and "value" in granted and step["kind"] == "run":
                out.append((granted["at"] / 1000, step["at"] / 1000))
        return out

    with ThreadPoolExecutor(8) as pool:
        return [span for spans in pool.map(held, ids) for span in spans]


def max_overlap(spans: list[tuple[float, float]]) -> int:
    """The most half-open ``[start, end)`` spans that overlap at one moment."""
    events = sorted([(end, -1) for _, end in spans] + [(start, 1) for start, _ in spans])
    most = now = 0
    for _, step in events:  # at one time, ends (-1) sort before starts
        now += step
        most = max(most, now)
    return most


def assert_limit_held(
    down: Downstream,
    tags: list[str],
    held: list[tuple[float, float]],
    *,
    concurrency: int,
    rate: int,
    burst: int,
) -> tuple[int, int, int]:
    """Judge a run of one invocation per tag through a limit of ``concurrency`` permits and
    ``rate`` grants a second with a bucket of ``burst``, whose journals show the permits
    ``held`` (``permits_held``): every tag reached the downstream, each invocation was granted
    once, never more than ``concurrency`` permits were out at once (by the journals) nor
    requests in flight (by the downstream), and no 1 s window holds more than rate + burst
    grants, nor more than rate + burst + concurrency request starts. The busiest window of
    requests, of grants, and the most permits out at once.

    Why requests may outnumber grants in a window: a step reaches the downstream a little
    after its grant, some later than others. A request that begins in a window was granted in
    it, or before it and still held its permit when the window opened: at most
    ``concurrency`` of those (the downstream sees 63 for 50 + 10 when the first steps of a
    burst arrive slower than the ones after them; a step re-run after a crash holds the permit
    it was granted before)."""
    requests = down.requests
    assert {r.tag for r in requests} == set(tags), set(tags) - {r.tag for r in requests}
    assert len(held) == len(tags), (len(held), len(tags))
    out_at_once = max_overlap(held)
    assert out_at_once <= concurrency, f"{out_at_once} permits out at once (journals)"
    over = [r for r in requests if r.concurrent > concurrency]
    assert down.max_concurrency <= concurrency and not over, over
    busiest_grants = max_in_window([granted for granted, _ in held], 1.0)
    assert busiest_grants <= rate + burst, busiest_grants
    busiest = max_in_window([r.start for r in requests], 1.0)
    assert busiest <= rate + burst + concurrency, busiest
    return busiest, busiest_grants, out_at_once
