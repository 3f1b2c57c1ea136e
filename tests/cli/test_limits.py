"""The connection bounds without a server (``cli/_connections.py``): which connection makes room,
when deadlines close them, how the limit fits the open-file limit, and the settings."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from ritornello.cli._connections import (
    RESERVED_FDS,
    Connections,
    Limits,
    per_port,
    raise_open_file_limit,
)
from ritornello.cli._serve import connection_limits
from ritornello.orchestrator import ConfigError, load_settings


class Loop:
    """The two things ``Connections`` asks of a loop, on a clock set by hand."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, Callable[[], None]]] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        self.timers.append((self.now + delay, callback))
        return object()

    def run_until(self, t: float) -> None:
        while self.timers and min(self.timers, key=lambda x: x[0])[0] <= t:
            timer = min(self.timers, key=lambda x: x[0])
            self.timers.remove(timer)
            self.now = timer[0]
            timer[1]()
        self.now = t


class Conn:
    def __init__(self, name: str, loop: Loop, deadline: float = 100.0) -> None:
        self.name, self.loop, self.deadline = name, loop, deadline
        self.dropped = False

    def drop(self) -> None:
        self.dropped = True

    def __repr__(self) -> str:
        return self.name


def test_past_the_limit_the_connection_waiting_longest_makes_room() -> None:
    loop = Loop()
    guard = Connections(Limits(max_connections=3))
    a, b, c, d, e = (Conn(n, loop) for n in "abcde")
    for count, conn in enumerate((a, b, c), start=1):
        guard.admit(conn, count)
    assert not any(x.dropped for x in (a, b, c))
    guard.leave(a)  # a request of a's is in the app: never dropped to make room
    guard.leave(b)
    guard.wait(b)  # b answered: it waits again, last
    guard.admit(d, 4)
    assert [x.name for x in (a, b, c, d) if x.dropped] == ["c"]
    guard.leave(c)  # gone (what drop leads to)
    guard.admit(e, 4)
    assert b.dropped and not a.dropped and not e.dropped
    guard.leave(b)
    guard.leave(d)
    guard.leave(e)  # every request in the app: a new connection is the one dropped
    f = Conn("f", loop)
    guard.admit(f, 4)
    assert f.dropped and not any(x.dropped for x in (a, d, e))


def test_the_sweep_drops_waiting_connections_past_their_deadline_then_stops() -> None:
    loop = Loop()
    limits = Limits(idle_timeout_s=1.0, header_timeout_s=2.0, body_timeout_s=3.0)
    assert limits.tick_s == 0.25
    guard = Connections(limits)
    early, late, busy = Conn("early", loop, 1.0), Conn("late", loop, 2.0), Conn("busy", loop, 0.5)
    for n, conn in enumerate((early, late, busy), start=1):
        guard.admit(conn, n)
    guard.leave(busy)  # in the app: its deadline no longer counts
    assert len(loop.timers) == 1  # one sweep per port, not one timer per connection
    loop.run_until(0.99)
    assert not early.dropped
    loop.run_until(1.0)
    assert early.dropped and not late.dropped and not busy.dropped
    loop.run_until(2.0)
    assert late.dropped and not busy.dropped
    assert not loop.timers  # nothing waits: no sweep until something does
    guard.wait(busy)
    assert len(loop.timers) == 1


def test_ticks_are_a_quarter_of_the_shortest_deadline_within_bounds() -> None:
    assert Limits().tick_s == 1.0
    assert Limits(idle_timeout_s=0.1).tick_s == 0.05
    assert Limits(idle_timeout_s=1, header_timeout_s=0.4, body_timeout_s=9).tick_s == 0.1


def test_the_limit_fits_two_ports_in_the_open_file_limit() -> None:
    assert per_port(4096, 0) == 4096  # no limit known
    assert per_port(4096, 1_048_576) == 4096
    assert per_port(4096, 1024) == (1024 - RESERVED_FDS) // 2 == 384
    assert per_port(100, 1024) == 100
    assert per_port(4096, 200) == 16  # at the least


def test_a_lowered_limit_is_said_once_at_start(caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(max_connections=5000, idle_timeout_s=2, body_timeout_s=4)
    with caplog.at_level(logging.WARNING, "ritornello.serve"):
        limits = connection_limits(settings, 4096)
    assert limits == Limits(
        max_connections=(4096 - RESERVED_FDS) // 2,
        idle_timeout_s=2.0,
        header_timeout_s=10.0,
        body_timeout_s=4.0,
    )
    assert "max_connections lowered from 5000 to 1920 per port" in caplog.text
    caplog.clear()
    assert connection_limits(settings, 1_048_576).max_connections == 5000
    assert not caplog.text


def test_the_open_file_limit_is_at_most_raised() -> None:
    import resource

    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = raise_open_file_limit()  # this test process: its hard limit, as the server's
    after = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert after[1] == before[1] and after[0] >= before[0]
    assert soft == (0 if after[0] == resource.RLIM_INFINITY else after[0])


def test_the_settings_and_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = load_settings(config_file=None)
    assert (defaults.max_connections, defaults.idle_timeout_s) == (4096, 5.0)
    assert (defaults.header_timeout_s, defaults.body_timeout_s) == (10.0, 30.0)
    monkeypatch.setenv("RITORNELLO_MAX_CONNECTIONS", "100")
    monkeypatch.setenv("RITORNELLO_HEADER_TIMEOUT_S", "2.5")
    got = load_settings()
    assert (got.max_connections, got.header_timeout_s) == (100, 2.5)
    for name, bad in (
        ("MAX_CONNECTIONS", "0"),
        ("IDLE_TIMEOUT_S", "-1"),
        ("BODY_TIMEOUT_S", "nan"),
        ("HEADER_TIMEOUT_S", "0"),
    ):
        monkeypatch.setenv(f"RITORNELLO_{name}", bad)
        with pytest.raises(ConfigError, match="is not above zero"):
            load_settings()
        monkeypatch.delenv(f"RITORNELLO_{name}")
