"""Where webhooks may connect: public addresses, plus what the operator opens explicitly.

A webhook URL's host is resolved and every address it resolves to is checked, at subscribe
time and again at connect time; the connection then goes to the address that was checked
(``PinnedTransport``), with the original ``Host`` header and TLS server name, so a name that
resolves differently the second time (DNS rebinding) cannot reach a denied address.

Denied by default: loopback, link-local (cloud metadata), private (RFC 1918, ULA), CGNAT,
multicast, unspecified, reserved, documentation ranges and IPv4-mapped/translated IPv6
addresses, plus names such as ``localhost`` and ``metadata.google.internal``. Hospital HIS
endpoints on an intranet are opened with ``REFERRAL_WEBHOOK_ALLOW``: comma-separated
entries, each a CIDR or a host name, optionally with a port (``10.20.0.0/16:8443``,
``his.hospital.local``, ``[fd00::/8]:443``); an entry without a port allows any port.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

RESOLVE_TIMEOUT_SECONDS = 5.0
DENIED_NAMES = frozenset({"localhost", "metadata", "metadata.google.internal"})
DENIED_SUFFIXES = (".localhost", ".internal", ".local")  # .local only through the allow-list
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class EgressDenied(Exception):
    """The destination may not be used; ``reason`` is a coarse class, never an address."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason  # "blocked" or "dns"


@dataclass(frozen=True, slots=True)
class AllowEntry:
    network: IPNetwork | None
    host: str | None
    port: int | None

    def matches_port(self, port: int) -> bool:
        return self.port is None or self.port == port


def parse_allow(spec: str) -> tuple[AllowEntry, ...]:
    """``REFERRAL_WEBHOOK_ALLOW`` → entries; raises ValueError naming the bad entry."""
    entries: list[AllowEntry] = []
    for raw in (part.strip() for part in spec.split(",")):
        if not raw:
            continue
        target, port = _split_port(raw)
        try:
            network: IPNetwork | None = ipaddress.ip_network(target, strict=False)
            host = None
        except ValueError:
            network, host = None, target.lower().rstrip(".")
            if not host or any(c in host for c in "/[]@ "):
                raise ValueError(f"REFERRAL_WEBHOOK_ALLOW: cannot read entry {raw!r}") from None
        entries.append(AllowEntry(network, host, port))
    return tuple(entries)


def _split_port(raw: str) -> tuple[str, int | None]:
    if raw.startswith("["):
        inner, _, rest = raw[1:].partition("]")
        port_text = rest.removeprefix(":") if rest.startswith(":") else None
        if rest and port_text is None:
            raise ValueError(f"REFERRAL_WEBHOOK_ALLOW: cannot read entry {raw!r}")
        return inner, _port(port_text, raw)
    if raw.count(":") == 1:
        target, _, port_text = raw.partition(":")
        return target, _port(port_text, raw)
    return raw, None


def _port(text: str | None, raw: str) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"REFERRAL_WEBHOOK_ALLOW: bad port in entry {raw!r}")
    return int(text)


def is_public(ip: IPAddress) -> bool:
    """True for an address a webhook may reach without an allow-list entry."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None or ip.sixtofour is not None or ip.teredo is not None:
            return False
        if ip in _NAT64:
            return False
    elif ip in _CGNAT:
        return False
    return bool(
        ip.is_global
        and not ip.is_multicast
        and not ip.is_loopback
        and not ip.is_link_local
        and not ip.is_private
        and not ip.is_reserved
        and not ip.is_unspecified
    )


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    allow: tuple[AllowEntry, ...] = ()

    @classmethod
    def of(cls, spec: str) -> EgressPolicy:
        return cls(parse_allow(spec))

    def host_allowed(self, host: str, port: int) -> bool:
        name = host.lower().rstrip(".")
        return any(e.host == name and e.matches_port(port) for e in self.allow)

    def address_allowed(self, ip: IPAddress, port: int) -> bool:
        for entry in self.allow:
            if entry.network is not None and ip in entry.network and entry.matches_port(port):
                return True
        return is_public(ip)

    async def pick(self, host: str, port: int, resolver: Resolver) -> str:
        """Resolve ``host``, check every address, return the one to connect to."""
        name = host.lower().rstrip(".")
        literal = _literal(name)
        trusted = self.host_allowed(name, port)
        named_denied = name in DENIED_NAMES or name.endswith(DENIED_SUFFIXES) or "." not in name
        if literal is None and not trusted and named_denied:
            raise EgressDenied("blocked", "the host is not allowed")
        if literal is not None:
            addresses = [literal]
        else:
            try:
                async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
                    found = await resolver(name, port)
            except (OSError, TimeoutError, UnicodeError) as exc:
                raise EgressDenied("dns", "the host name does not resolve") from exc
            addresses = [ip for ip in (_literal(a) for a in found) if ip is not None]
            if not addresses:
                raise EgressDenied("dns", "the host name does not resolve")
        if not trusted and not all(self.address_allowed(ip, port) for ip in addresses):
            raise EgressDenied("blocked", "the host resolves to an address that is not allowed")
        return str(addresses[0])


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the operating system's resolver)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


def default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


class PinnedTransport(httpx.AsyncBaseTransport):
    """Checks the destination of every request and connects to the checked address.

    The request keeps its ``Host`` header and, over TLS, the original name for SNI and
    certificate checks. One pool per original host name, so connections never mix names.
    """

    def __init__(self, policy: EgressPolicy, resolver: Resolver) -> None:
        self._policy = policy
        self._resolver = resolver
        self._pools: dict[tuple[str, str, int], httpx.AsyncHTTPTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        port = url.port or default_port(url.scheme)
        address = await self._policy.pick(url.host, port, self._resolver)
        key = (url.scheme, url.host, port)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = httpx.AsyncHTTPTransport(retries=0)
        extensions = dict(request.extensions)
        if url.scheme == "https" and _literal(url.host) is None:
            extensions["sni_hostname"] = url.host
        pinned = httpx.Request(
            request.method,
            url.copy_with(host=address),
            headers=request.headers,
            stream=request.stream,
            extensions=extensions,
        )
        return await pool.handle_async_request(pinned)

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()
        self._pools.clear()
