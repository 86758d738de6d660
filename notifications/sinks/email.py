"""Email through an ``smtp`` connection: plain and HTML parts, threaded per problem."""
from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends.smtp import EmailBackend
from django.core.validators import validate_email

from integrations.types.probing import tls_client_context
from integrations.types.smtp import CheckedSMTP, CleartextAuthRefused
from synthorg import egress
from synthorg.egress import PermanentError, TransientError

MAX_RECIPIENTS = 50
MESSAGE_ID_DOMAIN = "alerts.synthorg"


def message_id(alert_id: str) -> str:
    """RFC 5322 msg-id from the alert id: a resend carries the same one, so receivers can deduplicate."""
    return f"<{alert_id}@{MESSAGE_ID_DOMAIN}>"


def validate(settings: Mapping[str, Any], secrets: Mapping[str, str]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    to = settings.get("to")
    if not isinstance(to, list) or not to or len(to) > MAX_RECIPIENTS:
        errors["to"] = [f"a list of 1 to {MAX_RECIPIENTS} email addresses"]
    else:
        for address in to:
            try:
                validate_email(address)
            except (ValidationError, TypeError):
                errors.setdefault("to", []).append(f"not an email address: {str(address)[:100]!r}")
    sender = settings.get("from_address")
    if sender is not None:
        try:
            validate_email(sender)
        except (ValidationError, TypeError):
            errors["from_address"] = ["not an email address"]
    unknown = set(settings) - {"to", "from_address"}
    if unknown:
        errors["settings"] = [f"unknown settings: {', '.join(sorted(unknown))}"]
    return errors


class CheckedEmailBackend(EmailBackend):
    """Django's SMTP backend connecting through the egress guard, verifying TLS like the health check."""

    @property
    def connection_class(self) -> type[smtplib.SMTP]:
        # The smtp type's client: the egress guard, one AUTH attempt, and AUTH only over TLS
        # (or to a loopback peer), the same rule as the health check (issue 12).
        return CheckedSMTP

    @property
    def ssl_context(self) -> ssl.SSLContext:  # type: ignore[override]
        return tls_client_context()


def send(*, sink: Any, message: Any, values: Mapping[str, Any], thread_root: str | None,
         timeout: float) -> int | None:
    host = str(values["host"])
    port = int(values.get("port") or 587)
    backend = CheckedEmailBackend(host=host, port=port, username=values.get("username") or "",
                                  password=values.get("password") or "", use_tls=bool(values.get("use_tls", True)),
                                  timeout=timeout, fail_silently=False)
    sender = sink.settings.get("from_address") or f"synthorg-alerts@{MESSAGE_ID_DOMAIN}"
    headers = {"Message-ID": message_id(message.alert_id), "X-SynthOrg-Alert-Id": message.alert_id}
    if thread_root:
        headers["In-Reply-To"] = thread_root
        headers["References"] = thread_root
    email = EmailMultiAlternatives(subject=message.subject, body=message.text, from_email=sender,
                                   to=list(sink.settings.get("to") or []), headers=headers, connection=backend)
    email.attach_alternative(message.html, "text/html")
    where = f"smtp://{egress.normalize_host(host)}:{port}"
    try:
        email.send()
    except egress.ExternalServiceError:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise PermanentError(f"{where}: AUTH rejected ({exc.smtp_code})", exc.smtp_code) from None
    except CleartextAuthRefused:
        raise PermanentError(f"{where}: AUTH not sent: the password goes only over TLS (turn the connection's "
                             "use_tls on) unless the host is loopback") from None
    except smtplib.SMTPRecipientsRefused as exc:
        codes = sorted({code for code, _ in exc.recipients.values()})
        error = TransientError if all(400 <= c < 500 for c in codes) else PermanentError
        raise error(f"{where}: recipients refused ({', '.join(map(str, codes))})") from None
    except smtplib.SMTPResponseException as exc:
        # 4xx: try again later (greylisting, a full queue); 5xx: the relay will never take it.
        error = TransientError if 400 <= exc.smtp_code < 500 else PermanentError
        raise error(f"{where}: the relay answered {exc.smtp_code}", exc.smtp_code) from None
    except smtplib.SMTPNotSupportedError:
        raise PermanentError(f"{where}: the relay does not support what the connection asks (STARTTLS/AUTH)") from None
    except ssl.SSLError as exc:
        raise PermanentError(f"{where}: TLS failure ({exc.reason or 'handshake failed'})") from None
    except (smtplib.SMTPException, OSError) as exc:  # disconnects, timeouts, refused connections
        raise TransientError(f"{where}: {exc.__class__.__name__}") from None
    return 250
