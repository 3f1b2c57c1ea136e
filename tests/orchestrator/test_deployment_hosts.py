"""``HostPolicy``: where HTTP deployments may be reached, checked on the addresses a connection
uses (``invokers/_hosts.py``). The resolver and the connect calls of the event loop are
replaced where a test names an address other than 127.0.0.1: they record what would have been
reached and reach nothing, so no packet leaves loopback."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable
from typing import Any

import pytest

from ritornello.orchestrator import ConfigError, load_settings
from ritornello.orchestrator.invokers import (
    DEFAULT_DENY,
    HostDeniedError,
    HostPolicy,
    HttpInvoker,
    InvokerError,
    make_invoker,
)
from ritornello.orchestrator.invokers._pool import HttpPool
from tests.procs import uvicorn_thread


def run(coro: Awaitable[Any]) -> Any:
    async def main() -> Any:
        return await asyncio.wait_for(coro, 10)

    return asyncio.run(main())


def ips(*texts: str) -> list[Any]:
    return [ipaddress.ip_address(t) for t in texts]


# ---------------------------------------------------------------- the rules


DEFAULT_DENIED = [
    "169.254.169.254",
    "169.254.0.1",
    "fe80::1",
    "fd00:ec2::254",
    "100.100.100.200",
    "::ffff:169.254.169.254",  # IPv4-mapped
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
]
DEFAULT_ALLOWED = ["127.0.0.1", "::1", "10.1.2.3", "192.168.1.5", "8.8.8.8", "fd00:ec2::253"]


@pytest.mark.parametrize("address", DEFAULT_DENIED)
def test_the_default_denies_link_local_and_metadata_addresses(address: str) -> None:
    with pytest.raises(HostDeniedError, match=f"{address} is not allowed"):
        HostPolicy().check(address, ips(address))


@pytest.mark.parametrize("address", DEFAULT_ALLOWED)
def test_the_default_allows_the_rest_loopback_included(address: str) -> None:
    HostPolicy().check(address, ips(address))


def test_a_name_is_denied_if_any_address_it_resolves_to_is() -> None:
    policy = HostPolicy()
    policy.check("api.example.com", ips("93.184.216.34", "2606:2800:220:1::1"))
    with pytest.raises(HostDeniedError, match=r"169\.254\.169\.254 is in 169\.254\.0\.0/16"):
        policy.check("sneaky.example.com", ips("93.184.216.34", "169.254.169.254"))


@pytest.mark.parametrize(
    ("allow", "deny", "host", "addresses", "allowed"),
    [
        # names and domains
        ("", "metadata.google.internal", "metadata.google.internal", ["10.0.0.1"], False),
        ("", "metadata.google.internal", "METADATA.google.internal.", ["10.0.0.1"], False),
        ("", "*.internal", "a.b.internal", ["10.0.0.1"], False),
        ("", "*.internal", "internal", ["10.0.0.1"], True),  # under it, not the domain
        ("", "*.internal", "notinternal", ["10.0.0.1"], True),
        # an allow list admits by name, or when every address is in it
        ("*.svc.cluster.local", "", "orders.svc.cluster.local", ["10.3.0.7"], True),
        ("*.svc.cluster.local", "", "evil.example.com", ["10.3.0.7"], False),
        ("10.0.0.0/8", "", "a.example.com", ["10.0.0.7"], True),
        ("10.0.0.0/8", "", "a.example.com", ["10.0.0.7", "192.168.0.1"], False),
        ("10.0.0.0/8, fd00::/8", "", "a.example.com", ["10.0.0.7", "fd00::7"], True),
        ("127.0.0.1", "", "127.0.0.1", ["127.0.0.1"], True),
        ("127.0.0.1", "", "localhost", ["127.0.0.1", "::1"], False),
        # deny wins over allow, by name or by address
        ("*.example.com", "169.254.0.0/16", "a.example.com", ["169.254.169.254"], False),
        ("10.0.0.0/8", "10.9.0.0/16", "a.example.com", ["10.9.0.1"], False),
        ("a.example.com", "a.example.com", "a.example.com", ["10.0.0.1"], False),
        # an IPv4 network catches the IPv4-mapped spelling of its addresses
        ("", "10.0.0.0/8", "::ffff:10.0.0.1", ["::ffff:10.0.0.1"], False),
        ("10.0.0.0/8", "", "::ffff:10.0.0.1", ["::ffff:10.0.0.1"], True),
        # an empty deny list denies nothing
        ("", "", "169.254.169.254", ["169.254.169.254"], True),
    ],
)
def test_allow_and_deny(
    allow: str, deny: str, host: str, addresses: list[str], allowed: bool
) -> None:
    policy = HostPolicy(allow, deny)
    if allowed:
        policy.check(host, ips(*addresses))
    else:
        with pytest.raises(HostDeniedError, match="not allowed"):
            policy.check(host, ips(*addresses))


@pytest.mark.parametrize(
    "entry", ["10.0.0.0/33", "http://10.0.0.1", "a b", "*.", "1.2.3.4:80", "a..b", "*x.com"]
)
def test_a_malformed_entry_is_refused_at_start_up(
    entry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="deployment_hosts_deny"):
        HostPolicy("", entry)
    monkeypatch.setenv("RITORNELLO_DEPLOYMENT_HOSTS_ALLOW", f"10.0.0.0/8,{entry}")
    with pytest.raises(ConfigError, match="deployment_hosts_allow"):
        load_settings()


def test_settings_default_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert (settings.deployment_hosts_allow, settings.deployment_hosts_deny) == ("", DEFAULT_DENY)
    monkeypatch.setenv("RITORNELLO_DEPLOYMENT_HOSTS_DENY", "")
    policy = load_settings().host_policy()
    policy.check("169.254.169.254", ips("169.254.169.254"))  # the operator's choice


# ---------------------------------------------------------------- resolving, and connecting


class Net:
    """The event loop's resolver and connect calls, replaced: names resolve as ``names``
    says, and every connect is recorded, reaching only 127.0.0.1 (others are refused)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, names: dict[str, list[str]]) -> None:
        self.names = names
        self.lookups: list[str] = []
        self.connects: list[Any] = []
        loop = asyncio.get_running_loop()
        real_sock_connect = loop.sock_connect

        async def getaddrinfo(host: str, port: int, **kw: Any) -> list[Any]:
            self.lookups.append(host)
            answers = self.names.get(host)
            if answers is None:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return [
                (
                    socket.AF_INET6 if ":" in a else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (a, port),
                )
                for a in answers
            ]

        async def sock_connect(sock: socket.socket, address: Any) -> None:
            self.connects.append(address)
            if address[0] != "127.0.0.1":
                raise ConnectionRefusedError(111, "refused by the test")
            await real_sock_connect(sock, address)

        async def create_connection(*args: Any, **kw: Any) -> Any:
            if kw.get("sock") is None:  # the loop resolving and connecting by itself
                self.connects.append((kw.get("host", args[1:2]), kw.get("port", args[2:3])))
                raise ConnectionRefusedError(111, "refused by the test")
            return await real_create_connection(*args, **kw)

        real_create_connection = loop.create_connection
        monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(loop, "sock_connect", sock_connect)
        monkeypatch.setattr(loop, "create_connection", create_connection)


@pytest.mark.parametrize(
    "uri",
    [
        "http://169.254.169.254/latest/meta-data/",
        "https://169.254.169.254",
        "http://[fd00:ec2::254]/",
        "http://[fe80::1]:8080",
        "http://[fe80::1%lo]:8080",  # with a zone
        "http://[::ffff:169.254.169.254]/",
        "http://2852039166/",
        "http://metadata.test/",  # resolves to the metadata address
        "http://split.test/",  # resolves to a harmless address and the metadata address
    ],
)
def test_nothing_is_connected_to_for_a_denied_host(
    uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def main() -> None:
        net = Net(
            monkeypatch,
            {
                "metadata.test": ["169.254.169.254"],
                "split.test": ["127.0.0.1", "169.254.169.254"],
                "2852039166": ["169.254.169.254"],
            },
        )
        invoker = make_invoker(uri, {}, timeout_s=5)
        try:
            with pytest.raises(HostDeniedError, match="not allowed"):
                await invoker.discover()
        finally:
            await invoker.close()
        assert net.connects == []

    run(main())


def test_the_connection_goes_to_the_address_that_was_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DNS rebinding: a name that resolves to a harmless address, then to the metadata one.
    Each connection resolves it once, checks what came back and connects there; the second
    one is refused before it connects."""

    async def endpoint(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-length", b"2"), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    with uvicorn_thread(endpoint) as url:
        port = int(url.rsplit(":", 1)[1])

        async def main() -> None:
            net = Net(monkeypatch, {"rebind.test": ["127.0.0.1"]})
            pool = HttpPool(f"http://rebind.test:{port}", resolve=HostPolicy().resolve)
            try:
                status, _, body = await pool.request("GET", "/discover", None)
                assert (status, body) == (200, b"ok")
                net.names["rebind.test"] = ["169.254.169.254"]  # the name now leads elsewhere
                with pytest.raises(HostDeniedError, match=r"rebind\.test is not allowed"):
                    await pool.request("GET", "/discover", None)  # the first one was closed
            finally:
                await pool.close()
            assert net.lookups == ["rebind.test", "rebind.test"]  # once per connection
            assert net.connects == [("127.0.0.1", port)]

        run(main())


def test_a_host_that_does_not_resolve_is_unreachable_not_denied(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def main() -> None:
        Net(monkeypatch, {})
        invoker = HttpInvoker("http://nowhere.test:8080")
        try:
            with pytest.raises(InvokerError, match="unreachable") as info:
                await invoker.discover()
            assert not isinstance(info.value, HostDeniedError)
        finally:
            await invoker.close()

    run(main())


# ---------------------------------------------------------------- what a refusal says


@pytest.mark.parametrize(
    ("status", "body", "says"),
    [
        (404, b"SECRET-404 /etc/passwd", "endpoint answered HTTP 404 Not Found"),
        (500, b"SECRET-500 Traceback", "endpoint answered HTTP 500 Internal Server Error"),
        (599, b"SECRET-599", "endpoint answered HTTP 599"),
        (401, b"SECRET-401", "unsigned (no signing_secret) request (HTTP 401 Unauthorized)"),
        (
            401,
            b'{"message": "bad signature: SECRET-sig was not signed with this secret"}',
            "request (HTTP 401 Unauthorized: bad signature)",
        ),
        (
            401,
            b'{"message":"stale signature: SECRET-clock +400 s"}',
            "request (HTTP 401 Unauthorized: stale signature)",
        ),
    ],
)
def test_a_refusal_names_its_status_line_and_logs_the_text(
    status: int, body: bytes, says: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def endpoint(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    with uvicorn_thread(endpoint) as url:

        async def main() -> str:
            invoker = HttpInvoker(url)
            try:
                with pytest.raises(InvokerError) as info:
                    await invoker.discover()
                return str(info.value)
            finally:
                await invoker.close()

        message = run(main())
    assert message.endswith(says), message
    assert "SECRET" not in message
    assert body.decode() in caplog.text.replace("\\'", "'")
