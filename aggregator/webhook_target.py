"""Where an alert webhook may be sent: only to public addresses, the DNS answer pinned for the connection.

A webhook URL names a host the account's owner chose. Sent blindly, it reaches the service's own network: the
cloud metadata endpoint (169.254.169.254), the database, an admin port on 127.0.0.1. So the host is resolved
here, every address of the answer must be public (not loopback, private, link-local, shared, reserved or
multicast), and the connection is made to those very addresses: the resolver that vets them is the one the
connector connects with, so no second lookup can answer differently (DNS rebinding). The URL's host name still
goes in the Host header and the TLS server name, as aiohttp sends them for a resolved host.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressRule = Callable[[IPAddress], bool]


class WebhookTargetRefused(Exception):
    """The webhook's host is, or resolves to, an address the service must not reach."""


def is_public_address(address: IPAddress) -> bool:
    """Reachable on the public internet and unicast. `is_global` is false for loopback, private (RFC 1918, ULA),
    link-local, shared (100.64/10), reserved and unspecified addresses, and for IPv4 mapped into IPv6 from those."""
    return address.is_global and not address.is_multicast


class VettingResolver(AbstractResolver):
    """Resolves with `inner` and refuses the whole answer if any of its addresses breaks `allowed`."""

    def __init__(self, allowed: AddressRule = is_public_address, inner: AbstractResolver | None = None) -> None:
        self._allowed = allowed
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        for answer in answers:
            vet_address(host, answer["host"], self._allowed)
        return answers

    async def close(self) -> None:
        await self._inner.close()


def vet_address(host: str, address: str, allowed: AddressRule = is_public_address) -> None:
    """Raises WebhookTargetRefused when `address` (what `host` resolved to, or the host itself) is not allowed."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 answer may carry a zone: fe80::1%eth0
    if not allowed(ip):
        shown = host if host == address else f"{host} ({address})"
        raise WebhookTargetRefused(f"webhook target {shown} is not a public address")


def vet_url(url: str, allowed: AddressRule = is_public_address) -> None:
    """Checks what the resolver never sees: an address written in the URL (aiohttp connects to it without lookup).

    Raises:
        WebhookTargetRefused: not http(s), no host, or a literal address that is not allowed.
    """
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise WebhookTargetRefused(f"webhook target {url!r} is not an http(s) URL with a host")
    try:
        ipaddress.ip_address(parsed.host.split("%", 1)[0])
    except ValueError:
        return  # a name: the resolver vets what it resolves to
    vet_address(parsed.host, parsed.host, allowed)


def webhook_session(
    *, allowed: AddressRule = is_public_address, resolver: AbstractResolver | None = None
) -> aiohttp.ClientSession:
    """A session whose every connection goes only to vetted addresses. `allowed` is widened by tests alone (to
    reach a local server); `resolver` answers the lookups before vetting (the system's by default)."""
    connector = aiohttp.TCPConnector(resolver=VettingResolver(allowed, resolver), use_dns_cache=False)
    return aiohttp.ClientSession(connector=connector)
