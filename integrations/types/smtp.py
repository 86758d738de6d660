from __future__ import annotations

import smtplib
import socket
import ssl
import time
from collections.abc import Mapping
from typing import Any

from integrations.types.base import ConnectionType, FieldSpec, hostname, port_number
from integrations.types.probing import HealthResult, ProbeContext, healthy, tls_client_context, unhealthy
from synthorg import egress, url_policy
from synthorg.egress import ExternalServiceError

CLEARTEXT_AUTH_RULE = ("must be on when a password is set and the host is not loopback: without STARTTLS, "
                       "AUTH sends the password in clear text")


def _rules(values: Mapping[str, Any]) -> dict[str, list[str]]:
    # AUTH needs both; one without the other is always a mistake.
    if bool(values.get("username")) != bool(values.get("password")):
        missing = "password" if values.get("username") else "username"
        return {missing: ["username and password must be given together, or neither"]}
    # Issue 12: a secret never travels in clear text past this machine. The type has no
    # implicit-TLS mode (SMTPS, 465): use_tls is STARTTLS, the only TLS a password can go under.
    if (values.get("password") and not values.get("use_tls", True)
            and not url_policy.is_loopback_host(str(values.get("host") or ""))):
        return {"use_tls": [CLEARTEXT_AUTH_RULE]}
    return {}


class CleartextAuthRefused(smtplib.SMTPException):
    """AUTH was about to go over a connection without TLS to a host that is not loopback; nothing was sent."""


class CheckedSMTP(smtplib.SMTP):
    """smtplib.SMTP whose socket comes from ``egress.connect_checked`` and whose AUTH needs TLS.

    The host is resolved once, every address checked, and the socket opened to a checked
    address; smtplib keeps the *name* for STARTTLS (SNI and certificate verification).
    ``login`` makes one attempt (``login_once``) and only over TLS, unless the peer it is
    connected to is a loopback address: the rule holds at connect time for rows stored before
    the validation rule, and for every caller (the health check and the email alert sink).
    """

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return egress.connect_checked(host, port, timeout=timeout, source_address=self.source_address)

    def login(self, user: str, password: str, *, initial_response_ok: bool = True) -> tuple[int, bytes]:
        login_once(self, user, password)
        return 235, b"authenticated"


def _connection_is_private(client: smtplib.SMTP) -> bool:
    """TLS negotiated on this socket, or both the configured host (a loopback name or address, as
    the validation rule reads it) and the peer actually connected to are loopback."""
    sock = getattr(client, "sock", None)
    if isinstance(sock, ssl.SSLSocket):
        return True
    # smtplib keeps the name it connected to in _host (STARTTLS uses it for SNI).
    if sock is None or not url_policy.is_loopback_host(str(getattr(client, "_host", "") or "")):
        return False
    try:
        peer = sock.getpeername()[0]
    except OSError:
        return False
    return url_policy.is_loopback_host(str(peer))


def login_once(client: smtplib.SMTP, username: str, password: str) -> None:
    """One AUTH attempt with the best advertised mechanism, never in clear text off this machine.

    ``SMTP.login`` tries every mechanism in turn, so one wrong password would count as two
    or three failed logins at the relay (and lock accounts sooner). ``CleartextAuthRefused``
    before anything is sent when the connection has no TLS and the peer is not loopback.
    """
    if not _connection_is_private(client):
        raise CleartextAuthRefused("AUTH refused: the connection is not TLS and the host is not loopback")
    client.ehlo_or_helo_if_needed()  # Django's backend logs in straight after connect/STARTTLS
    if not client.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("AUTH")
    advertised = client.esmtp_features["auth"].upper().split()
    client.user, client.password = username, password
    for mechanism, method in (("PLAIN", client.auth_plain), ("LOGIN", client.auth_login),
                              ("CRAM-MD5", client.auth_cram_md5)):
        if mechanism in advertised:
            client.auth(mechanism, method)
            return
    raise smtplib.SMTPNotSupportedError("AUTH")


def probe(context: ProbeContext) -> HealthResult:
    host = str(context.values["host"])
    port = int(context.values.get("port") or 587)
    use_tls = bool(context.values.get("use_tls", True))
    username = context.values.get("username")
    started = time.monotonic()
    step = "connect"
    where = f"smtp://{egress.normalize_host(host)}:{port}"
    try:
        # Connecting in the constructor also makes smtplib keep the name for STARTTLS's SNI
        # and certificate check; a greeting other than 220 raises SMTPConnectError.
        with CheckedSMTP(host, port, timeout=context.timeout) as client:
            step = "EHLO"
            code, _ = client.ehlo()
            if code != 250:
                return unhealthy(f"{where}: EHLO answered {code}")
            if use_tls:
                step = "STARTTLS"
                if not client.has_extn("starttls"):
                    return unhealthy(f"{where}: the server does not offer STARTTLS (use_tls is on)")
                client.starttls(context=tls_client_context())
                step = "EHLO after STARTTLS"
                client.ehlo()
            if username:
                step = "AUTH"
                login_once(client, str(username), str(context.values.get("password") or ""))
            step = "QUIT"
        elapsed = time.monotonic() - started
        steps = ["EHLO"] + (["STARTTLS"] if use_tls else []) + (["AUTH"] if username else [])
        return healthy(f"{where}: {', '.join(steps)} ok in {elapsed * 1000:.0f} ms")
    except ExternalServiceError as exc:  # egress refusal or a name that does not resolve
        return unhealthy(f"{where}: {exc}")
    except smtplib.SMTPAuthenticationError as exc:
        # The server's text may echo what we sent; only the code is kept.
        return unhealthy(f"{where}: AUTH rejected ({exc.smtp_code})")
    except CleartextAuthRefused:
        return unhealthy(f"{where}: AUTH not sent: the password goes only over TLS (turn use_tls on) "
                         "unless the host is loopback")
    except smtplib.SMTPNotSupportedError:
        return unhealthy(f"{where}: {step} is not supported by the server")
    except smtplib.SMTPResponseException as exc:
        return unhealthy(f"{where}: {step} failed ({exc.smtp_code})")
    except smtplib.SMTPServerDisconnected:
        return unhealthy(f"{where}: the server closed the connection during {step}")
    except socket.gaierror:
        return unhealthy(f"{where}: cannot resolve the host")
    except ssl.SSLError as exc:
        return unhealthy(f"{where}: TLS failure during {step} ({exc.reason or 'handshake failed'})")
    except TimeoutError:
        return unhealthy(f"{where}: {step} timed out after {context.timeout:g} s")
    except OSError as exc:  # refused, unreachable, TLS verification (ssl.SSLError is an OSError)
        reason = exc.__class__.__name__ if not exc.strerror else exc.strerror
        return unhealthy(f"{where}: {step} failed ({reason})")


CONNECTION_TYPE = ConnectionType(
    name="smtp",
    label="SMTP",
    description="An SMTP relay for notifications.",
    fields=(
        FieldSpec("host", required=True, validators=(hostname,)),
        FieldSpec("port", kind="integer", default=587, validators=(port_number,)),
        FieldSpec("username"),
        FieldSpec("password", secret=True),
        FieldSpec("use_tls", kind="boolean", default=True,
                  help="STARTTLS after EHLO; may be off with a password only for a loopback host"),
    ),
    rules=_rules,
    probe=probe,
    # use_tls: with it off, AUTH PLAIN carries the password in clear text.
    destination_fields=("host", "port", "use_tls"),
)
