"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it receives and fails on demand.

    with SmtpServer() as smtp:
        smtp.refuse = {"bounce@example.org"}    # 550 for that recipient
        smtp.data_reply = "451 4.3.0 try later"  # refuse the message after DATA
        smtp.drop_after_data = True              # close the connection instead of answering
        smtp.handler.on_data = fn                # called at each DATA; True: drop that message
        smtp.pause(); smtp.resume()              # down (connection refused), then up on the same port
        ... smtp.messages                        # email.message.Message objects received

Also ``BusyServer``: a socket that greets every client with 421 and hangs up.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    """aiosmtpd's Controller cannot take port 0: ask the kernel for a free port first."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage


@dataclass
class _Handler:
    received: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    data_reply: str | None = None
    drop_after_data: bool = False
    data_delay: float = 0.0  # seconds between the end of DATA and the reply
    quit_reply: str | None = None  # answer QUIT with this instead of 221
    # called when a message's DATA arrives, before anything else; True drops the message
    # (the connection closes unanswered: the client never hears that it was accepted)
    on_data: Callable[[], bool] | None = None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        return self.quit_reply or "221 Bye"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.on_data is not None and self.on_data():
            server.transport.close()
            return "250 never seen by the client"
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if self.drop_after_data:
            server.transport.close()
            return "250 never seen by the client"
        if self.data_reply:
            return self.data_reply
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"


class SmtpServer:
    """``tls``: None (plain), "starttls" (STARTTLS required) or "ssl" (TLS from the first
    byte), with a certificate for ``localhost`` from a throwaway CA (``ca_file``).
    ``login``: (user, password) the server requires, after TLS only."""

    def __init__(
        self,
        *,
        tls: str | None = None,
        login: tuple[str, str] | None = None,
        ca_dir: Path | None = None,
    ) -> None:
        self.handler = _Handler()
        self.port = free_port()
        self.tls = tls
        self.ca_file: Path | None = None
        self.logins: list[str] = []
        kwargs: dict[str, Any] = {}
        if tls:
            assert ca_dir is not None, "a TLS server needs a directory for its CA file"
            ca = trustme.CA()
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ca.issue_cert("localhost").configure_cert(context)
            self.ca_file = ca_dir / "smtp-ca.pem"
            ca.cert_pem.write_to_path(str(self.ca_file))
            if tls == "starttls":
                kwargs.update(tls_context=context, require_starttls=True)
            else:
                kwargs["ssl_context"] = context
        if login is not None:

            def authenticate(
                server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
            ) -> AuthResult:
                ok = (
                    isinstance(auth_data, LoginPassword)
                    and (
                        auth_data.login.decode(),
                        auth_data.password.decode(),
                    )
                    == login
                )
                if ok:
                    self.logins.append(auth_data.login.decode())
                return AuthResult(success=ok, handled=False)  # the server answers 235 or 535

            # aiosmtpd cannot tell that an implicit-TLS ("ssl") connection is encrypted
            kwargs.update(
                authenticator=authenticate, auth_required=True, auth_require_tls=tls != "ssl"
            )
        self._kwargs = kwargs
        self._hostname = "localhost" if tls else "127.0.0.1"
        self._controller = Controller(
            self.handler, hostname=self._hostname, port=self.port, **kwargs
        )
        self.running = False

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        self.running = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self.running:
            self._controller.stop()
            self.running = False

    def pause(self) -> None:
        """The server goes down: connections to its port are refused until ``resume()``."""
        if self.running:
            self._controller.stop()
            self.running = False

    def resume(self) -> None:
        """Up again on the same port, with the same handler (what it received is kept)."""
        if not self.running:
            self._controller = Controller(
                self.handler, hostname=self._hostname, port=self.port, **self._kwargs
            )
            self._controller.start()
            self.running = True

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    @property
    def refuse(self) -> set[str]:
        return self.handler.refuse

    @refuse.setter
    def refuse(self, value: set[str]) -> None:
        self.handler.refuse = value

    @property
    def data_reply(self) -> str | None:
        return self.handler.data_reply

    @data_reply.setter
    def data_reply(self, value: str | None) -> None:
        self.handler.data_reply = value

    @property
    def drop_after_data(self) -> bool:
        return self.handler.drop_after_data

    @drop_after_data.setter
    def drop_after_data(self, value: bool) -> None:
        self.handler.drop_after_data = value

    def env(self) -> dict[str, str]:
        """The environment veille reads its SMTP settings from, for this server."""
        env = {
            "VEILLE_SMTP_HOST": "localhost" if self.tls else "127.0.0.1",
            "VEILLE_SMTP_PORT": str(self.port),
            "VEILLE_SMTP_SECURITY": self.tls or "none",
        }
        if self.ca_file is not None:
            env["VEILLE_SMTP_CAFILE"] = str(self.ca_file)
        return env


class BusyServer:
    """Greets with ``421 4.3.2 too busy`` and closes: a server refusing service for now."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self.port = int(self._sock.getsockname()[1])
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.sendall(b"421 4.3.2 mx.example.org too busy, try again later\r\n")

    def __enter__(self) -> BusyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sock.close()
