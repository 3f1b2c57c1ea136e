"""``HostPolicy``: the addresses the orchestrator may connect to for an HTTP deployment.

Registering a deployment makes the orchestrator fetch the URL the request names. Whoever can
register one could otherwise make it fetch anything it can reach (server-side request
forgery): the cloud's metadata service at 169.254.169.254 hands out the instance's
credentials. Two lists decide (settings ``deployment_hosts_allow`` and
``deployment_hosts_deny``); an entry is an address (``10.1.2.3``, ``fd00::1``), a network
(``10.0.0.0/8``), a host name (``api.internal``) or every name under a domain
(``*.internal``):

- a host is refused if its name matches a deny entry, or any address it resolves to does;
- with allow entries, a host is admitted only if its name matches one, or every address it
  resolves to does (an empty allow list admits every host the deny list leaves);
- by default nothing is allowed by name and the link-local and metadata addresses are
  denied (``DEFAULT_DENY``): loopback stays open for development.

Invariant: the check is made where a connection is opened (``resolve``, the HTTP pool's
hook), on the addresses that connection then uses. The name is resolved once, every address
is checked, and the socket is connected to a checked address, never to a second resolution:
a name that answers a harmless address to the check and the metadata address to the connect
(DNS rebinding) cannot get past it; each new connection is checked again.

Addresses count as what they reach: an IPv4-mapped IPv6 address (``::ffff:169.254.169.254``)
or one under the NAT64 prefix ``64:ff9b::/96`` is also checked as the IPv4 address inside.
Numeric spellings the resolver accepts (``2852039166``, ``0xa9.0xfe.0xa9.0xfe``) are checked
as the address they resolve to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from typing import Any

from ._base import InvokerError

__all__ = ["DEFAULT_DENY", "HostDeniedError", "HostPolicy", "SocketAddress"]

#: Link-local networks (IPv4 and IPv6: AWS, Azure and GCP serve instance metadata at
#: 169.254.169.254), AWS's IPv6 metadata address, and Alibaba Cloud's metadata address.
DEFAULT_DENY = "169.254.0.0/16,fe80::/10,fd00:ec2::254,100.100.100.200"

#: A family and an address as ``socket.connect`` takes it.
SocketAddress = tuple[int, Any]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAME = re.compile(r"(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_-]{1,63}")


class HostDeniedError(InvokerError):
    """A deployment host the settings do not allow (no connection was made)."""


class _HostList:
    """One setting's entries: networks (addresses are /32 and /128 ones) and name patterns."""

    __slots__ = ("names", "networks", "suffixes")

    def __init__(self, text: str, setting: str) -> None:
        networks: list[Network] = []
        names: list[str] = []
        suffixes: list[str] = []
        for raw in text.split(","):
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = entry.rstrip(".")
            if not _NAME.fullmatch(name):
                raise ValueError(
                    f"{setting}: {raw.strip()!r} is not an address, a network (10.0.0.0/8), "
                    "a host name or *.domain"
                )
            if name.startswith("*."):
                suffixes.append(name[1:])  # ".domain": names under it, not the domain itself
            else:
                names.append(name)
        self.networks = tuple(networks)
        self.names = frozenset(names)
        self.suffixes = tuple(suffixes)

    def __bool__(self) -> bool:
        return bool(self.networks or self.names or self.suffixes)

    def name_entry(self, name: str) -> str | None:
        """The entry ``name`` (lower-case, no trailing dot) matches, if any."""
        if name in self.names:
            return name
        for suffix in self.suffixes:
            if name.endswith(suffix):
                return "*" + suffix
        return None

    def network_of(self, address: Address) -> Network | None:
        """The entry ``address`` (or the IPv4 address inside it) is in, if any."""
        for candidate in _reaches(address):
            for network in self.networks:
                if candidate.version == network.version and candidate in network:
                    return network
        return None


def _reaches(address: Address) -> Iterable[Address]:
    """``address``, and the IPv4 address it reaches when it embeds one."""
    yield address
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            yield address.ipv4_mapped
        elif address in _NAT64:
            yield ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)


class HostPolicy:
    """Which hosts HTTP deployments may be reached at (see the module docstring).

    ``allow`` and ``deny`` are the settings' text: comma-separated entries; ``ValueError``
    names a malformed one. ``resolve`` is the HTTP pool's hook: resolve, check, connect there.
    """

    __slots__ = ("allow", "deny")

    def __init__(self, allow: str = "", deny: str = DEFAULT_DENY) -> None:
        self.allow = _HostList(allow, "deployment_hosts_allow")
        self.deny = _HostList(deny, "deployment_hosts_deny")

    def check(self, host: str, addresses: Sequence[Address]) -> None:
        """``HostDeniedError`` unless ``host``, resolving to ``addresses``, is allowed."""
        name = host.lower().rstrip(".")
        entry = self.deny.name_entry(name)
        if entry is not None:
            raise self._denied(host, f"it matches {entry} in deployment_hosts_deny")
        for address in addresses:
            network = self.deny.network_of(address)
            if network is not None:
                raise self._denied(host, f"{address} is in {network} (deployment_hosts_deny)")
        if self.allow and self.allow.name_entry(name) is None:
            for address in addresses:
                if self.allow.network_of(address) is None:
                    raise self._denied(host, f"{address} is not in deployment_hosts_allow")

    @staticmethod
    def _denied(host: str, why: str) -> HostDeniedError:
        return HostDeniedError(
            f"deployment host {host} is not allowed: {why} "
            "(settings deployment_hosts_allow / deployment_hosts_deny)"
        )

    async def resolve(self, host: str, port: int) -> list[SocketAddress]:
        """The addresses to connect to for ``host:port``, every one checked, in the
        resolver's order: ``HostDeniedError`` if the host is not allowed, ``OSError`` if it
        does not resolve."""
        try:  # a literal address: no resolver, no thread
            infos = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
            )
        except socket.gaierror:
            loop = asyncio.get_running_loop()
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        found: list[SocketAddress] = []
        addresses: list[Address] = []
        for family, _, _, _, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6) or (family, sockaddr) in found:
                continue
            found.append((family, sockaddr))
            addresses.append(ipaddress.ip_address(str(sockaddr[0]).partition("%")[0]))
        if not found:
            raise OSError(f"{host} resolves to no IP address")
        self.check(host, addresses)
        return found
