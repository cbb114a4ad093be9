"""The address classifier, checked without connecting to any of these addresses."""

from __future__ import annotations

import pytest

from pipeline.sources.netpolicy import host_problem, parse_ip


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("localhost", "loopback"),
        ("api.localhost", "loopback"),
        ("0.0.0.0", "'this network'"),
        ("10.0.0.1", "RFC 1918"),
        ("10.255.255.255", "RFC 1918"),
        ("172.16.0.1", "RFC 1918"),
        ("172.31.255.255", "RFC 1918"),
        ("192.168.1.10", "RFC 1918"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("224.0.0.1", "multicast"),
        ("::1", "loopback"),
        ("[::1]", "loopback"),
        ("::", "unspecified"),
        ("fc00::1", "unique local"),
        ("fd00:ec2::254", "unique local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:a9fe:a9fe", "link-local"),
        ("2002:c0a8:0101::1", "RFC 1918"),  # 6to4 wrapping 192.168.1.1
        ("64:ff9b::10.0.0.1", "RFC 1918"),  # NAT64 wrapping 10.0.0.1
        ("2130706433", "loopback"),  # decimal
        ("0177.0.0.1", "loopback"),  # octal
        ("0x7f.0.0.1", "loopback"),  # hex
        ("0x7f000001", "loopback"),
        ("127.1", "loopback"),  # short form
        ("0xa9fea9fe", "link-local"),  # 169.254.169.254 in hex
        ("012.0.0.1", "RFC 1918"),  # octal 10.0.0.1
    ],
)
def test_non_public_addresses_in_every_spelling_are_refused(host: str, reason: str) -> None:
    problem = host_problem(host)
    assert problem is not None and reason in problem


@pytest.mark.parametrize(
    "host",
    [
        "8.8.8.8",
        "93.184.216.34",
        "2606:4700:4700::1111",
        "100.63.255.255",
        "172.32.0.1",
        "www.valneva.com",
        "0x7f.example",
    ],
)
def test_public_addresses_and_host_names_pass(host: str) -> None:
    assert host_problem(host) is None


def test_host_names_are_not_taken_for_addresses() -> None:
    assert parse_ip("www.ouest-france.fr") is None
    assert parse_ip("1e100.net") is None
    assert str(parse_ip("2130706433")) == "127.0.0.1"


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("::7f00:1", "not a global unicast"),  # IPv4-compatible ::127.0.0.1
        ("64:ff9b:1::a00:1", "not a global unicast"),  # local-use NAT64
        ("fec0::1", "not a global unicast"),  # deprecated site-local
        ("::ffff:0:a00:1", "RFC 1918"),  # SIIT wrapping 10.0.0.1
    ],
)
def test_unusual_ipv6_forms_that_reach_internal_networks_are_refused(
    host: str, reason: str
) -> None:
    problem = host_problem(host)
    assert problem is not None and reason in problem
