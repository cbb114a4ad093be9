"""Sending mail with smtplib: settings from the environment, errors as one clear sentence.

The SMTP host, port, user and password come from ``VEILLE_SMTP_*`` environment
variables, never from sources.yaml or the database, and no message built here
contains the password.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage

from pipeline.errors import ConfigError, VeilleError
from pipeline.sources.netpolicy import parse_ip

ENV_PREFIX = "VEILLE_SMTP_"
SECURITY_MODES = ("starttls", "ssl", "none")
DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
TIMEOUT = 60.0  # connecting and each command
DATA_TIMEOUT = 600.0  # the reply after the message: RFC 5321 asks clients to wait 10 minutes


class MailError(VeilleError):
    """Nothing was delivered (as far as the server told us). ``temporary``: worth retrying."""

    def __init__(self, message: str, *, temporary: bool = True) -> None:
        super().__init__(message)
        self.temporary = temporary


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: str = "starttls"
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    cafile: str | None = None
    timeout: float = TIMEOUT

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SmtpSettings:
        """Read VEILLE_SMTP_HOST, _PORT, _USER, _PASSWORD, _SECURITY and _CAFILE."""

        def get(name: str) -> str | None:
            value = env.get(ENV_PREFIX + name, "").strip()
            return value or None

        problems: list[str] = []
        host = get("HOST")
        if not host:
            problems.append(f"{ENV_PREFIX}HOST is not set: the SMTP server that sends the digest")
        security = (get("SECURITY") or "starttls").lower()
        if security not in SECURITY_MODES:
            problems.append(
                f"{ENV_PREFIX}SECURITY={security!r}: use one of {', '.join(SECURITY_MODES)}"
            )
            security = "starttls"
        port = DEFAULT_PORTS[security]
        raw_port = get("PORT")
        if raw_port is not None:
            if raw_port.isdigit() and 0 < int(raw_port) < 65536:
                port = int(raw_port)
            else:
                problems.append(f"{ENV_PREFIX}PORT={raw_port!r}: not a port number")
        user, password = get("USER"), env.get(ENV_PREFIX + "PASSWORD") or None
        for name, value in (("USER", user), ("PASSWORD", password)):
            if value and not value.isascii():
                # smtplib sends credentials as ASCII; never quote the value itself
                problems.append(
                    f"{ENV_PREFIX}{name} has non-ASCII characters, which SMTP AUTH cannot send here"
                )
        if password and not user:
            problems.append(f"{ENV_PREFIX}PASSWORD is set but {ENV_PREFIX}USER is not")
        if user and security == "none" and host and not _is_loopback(host):
            problems.append(
                f"{ENV_PREFIX}USER with {ENV_PREFIX}SECURITY=none would send the password "
                f"in clear to {host}: use starttls or ssl"
            )
        if problems:
            raise ConfigError(problems, path="environment")
        assert host is not None
        return cls(
            host=host,
            port=port,
            security=security,
            user=user,
            password=password,
            cafile=get("CAFILE"),
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    address = parse_ip(host)
    return address is not None and address.is_loopback


def _tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=settings.cafile)


def _reply(code: int, text: bytes | str) -> str:
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(words.split())}".strip()


def deliver(
    settings: SmtpSettings, msg: EmailMessage, *, sender: str, recipients: Sequence[str]
) -> dict[str, str]:
    """Send ``msg`` to ``recipients`` in one SMTP transaction.

    Returns the recipients the server refused (address -> its reply); the others were
    accepted. Raises MailError when nothing was accepted.
    """
    where = settings.where
    try:
        client: smtplib.SMTP
        if settings.security == "ssl":
            client = smtplib.SMTP_SSL(
                settings.host,
                settings.port,
                timeout=settings.timeout,
                context=_tls_context(settings),
            )
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    except (ConnectionRefusedError, TimeoutError) as exc:
        reason = (
            "refused the connection"
            if isinstance(exc, ConnectionRefusedError)
            else "did not answer"
        )
        raise MailError(f"SMTP server {where} {reason}") from None
    except smtplib.SMTPConnectError as exc:
        raise MailError(
            f"SMTP server {where} turned us away: {_reply(exc.smtp_code, exc.smtp_error)}"
        ) from None
    except ssl.SSLError as exc:
        raise MailError(f"TLS with SMTP server {where} failed: {exc.reason or exc}") from None
    except OSError as exc:
        raise MailError(f"cannot reach SMTP server {where}: {exc.strerror or exc}") from None
    except Exception as exc:
        raise MailError(f"cannot reach SMTP server {where} ({type(exc).__name__})") from None

    accepted = False
    try:
        client.ehlo_or_helo_if_needed()
        if settings.security == "starttls":
            if not client.has_extn("starttls"):
                raise MailError(
                    f"SMTP server {where} does not offer STARTTLS: set "
                    f"{ENV_PREFIX}SECURITY=ssl, or none for a local relay",
                    temporary=False,
                )
            client.starttls(context=_tls_context(settings))
            client.ehlo()
        if settings.user:
            client.login(settings.user, settings.password or "")
        if client.sock is not None:
            client.sock.settimeout(max(settings.timeout, DATA_TIMEOUT))
        refused = client.send_message(msg, from_addr=sender, to_addrs=list(recipients))
        accepted = True
    except MailError:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise MailError(
            f"SMTP server {where} refused the login of {settings.user}: "
            f"{_reply(exc.smtp_code, exc.smtp_error)}",
            temporary=False,
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        detail = "; ".join(f"{a}: {_reply(c, t)}" for a, (c, t) in exc.recipients.items())
        raise MailError(f"SMTP server {where} refused every recipient ({detail})") from None
    except smtplib.SMTPSenderRefused as exc:
        raise MailError(
            f"SMTP server {where} refused the sender {exc.sender}: {_reply(exc.smtp_code, exc.smtp_error)}"
        ) from None
    except smtplib.SMTPDataError as exc:
        raise MailError(
            f"SMTP server {where} refused the message: {_reply(exc.smtp_code, exc.smtp_error)}"
        ) from None
    except smtplib.SMTPServerDisconnected:
        raise MailError(
            f"SMTP server {where} closed the connection or stopped answering before confirming "
            "the message; it may or may not have been delivered, and is recorded as not sent: "
            "the next attempt sends it again"
        ) from None
    except smtplib.SMTPResponseException as exc:
        raise MailError(
            f"SMTP server {where} answered {_reply(exc.smtp_code, exc.smtp_error)}"
        ) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise MailError(f"SMTP server {where}: {exc}", temporary=False) from None
    except ssl.SSLError as exc:
        raise MailError(f"TLS with SMTP server {where} failed: {exc.reason or exc}") from None
    except TimeoutError:
        raise MailError(
            f"SMTP server {where} stopped answering; the message is recorded as not sent"
        ) from None
    except OSError as exc:
        raise MailError(
            f"connection to SMTP server {where} failed: {exc.strerror or exc}"
        ) from None
    except Exception as exc:  # never chained: smtplib's errors may quote what was sent
        raise MailError(
            f"sending through SMTP server {where} failed ({type(exc).__name__})"
        ) from None
    finally:
        # once the server has taken the message, how it says goodbye does not matter
        with contextlib.suppress(Exception):
            if accepted:
                client.quit()
        with contextlib.suppress(Exception):
            client.close()
    return {address: _reply(code, text) for address, (code, text) in refused.items()}
