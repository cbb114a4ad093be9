"""Loopback only, in every Python process the tests start.

conftest puts this folder first on PYTHONPATH and names a log file in
VEILLE_TESTS_NET_LOG, so Python imports this module at start-up in each child of the
test process: the CLI runs, the run's fetch processes, the parser workers. Their
sockets may then connect to loopback and to Unix sockets only; any other address fails
at once with ENETUNREACH and is written to the log, which conftest reads after each
test. The test process itself has the same guard (fixture_server.loopback_connections_only).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from typing import Any

_LOG = os.environ.get("VEILLE_TESTS_NET_LOG")


def _allowed(address: Any) -> bool:
    if not isinstance(address, tuple):
        return True  # AF_UNIX
    try:
        ip = ipaddress.ip_address(str(address[0]).split("%", 1)[0])
    except ValueError:
        return False  # a name here would bypass the resolver: refused too
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _refuse(address: Any) -> None:
    assert _LOG is not None
    with open(_LOG, "a", encoding="utf-8") as log:
        log.write(f"{os.getpid()} {address[0]}\n")


if _LOG:
    _connect = socket.socket.connect
    _connect_ex = socket.socket.connect_ex

    def _guarded_connect(sock: socket.socket, address: Any) -> None:
        if not _allowed(address):
            _refuse(address)
            raise OSError(errno.ENETUNREACH, f"test guard: no connection to {address[0]}")
        _connect(sock, address)

    def _guarded_connect_ex(sock: socket.socket, address: Any) -> int:
        if not _allowed(address):
            _refuse(address)
            return errno.ENETUNREACH
        return _connect_ex(sock, address)

    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
