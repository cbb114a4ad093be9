"""Host or IP address -> the reason veille must not connect to it (None when it is public).

Links found in fetched content are hostile: a feed entry or a redirect pointing at
127.0.0.1, 169.254.169.254 or a LAN printer must not make veille a proxy into the
operator's network (SSRF). The check runs on every address a host name resolves to,
at connect time, so DNS tricks and redirects are covered; this module only
classifies, it never connects.
"""

from __future__ import annotations

import ipaddress
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAMED_RANGES: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "'this network'"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("100.64.0.0/10", "shared carrier-grade NAT (RFC 6598)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata lives here)"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("fc00::/7", "unique local (IPv6 private)"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
)
_NETWORKS = tuple((ipaddress.ip_network(net), label) for net, label in _NAMED_RANGES)
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
_SIIT = ipaddress.ip_network("::ffff:0:0:0/96")  # stateless IP/ICMP translation wraps IPv4 too


def parse_ip(host: str) -> IPAddress | None:
    """An IP literal in any spelling a resolver accepts, or None for a host name.

    Besides the usual forms this reads the legacy IPv4 spellings that inet_aton
    accepts and browsers normalise: "2130706433", "0177.0.0.1", "0x7f.1", "127.1".
    """
    text = host.strip().strip("[]")
    if "%" in text:  # IPv6 zone index: fe80::1%eth0
        text = text.split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if text and all(c in "0123456789abcdefxABCDEFX." for c in text) and text[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def address_problem(address: IPAddress) -> str | None:
    """Why this address is not a public one, or None."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo:
            embedded = address.teredo[1]
        if embedded is None and address in ipaddress.ip_network("64:ff9b::/96"):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)  # NAT64
        if embedded is not None:
            inner = address_problem(embedded)
            return f"{inner} (inside the IPv6 address {address})" if inner else None
        if address in _SIIT:
            inner = address_problem(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
            return f"{inner} (inside the IPv6 address {address})" if inner else None
    for network, label in _NETWORKS:
        if address.version == network.version and address in network:
            return f"{address} is {label}"
    if isinstance(address, ipaddress.IPv6Address) and address not in _GLOBAL_UNICAST_V6:
        # IPv4-compatible (::a.b.c.d), local NAT64 (64:ff9b:1::/48), site-local (fec0::/10) ...
        return f"{address} is not a global unicast IPv6 address"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


def host_problem(host: str) -> str | None:
    """For an IP literal, why it is not public; None for public literals and host names."""
    if host.lower().rstrip(".") in ("localhost", "localhost.localdomain") or host.lower().endswith(
        ".localhost"
    ):
        return f"{host} is loopback"
    address = parse_ip(host)
    return address_problem(address) if address is not None else None
