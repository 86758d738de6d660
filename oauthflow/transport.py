"""Plain-HTTP token endpoints on loopback only.

oauthlib refuses every ``http://`` endpoint unless the process-wide environment variable
``OAUTHLIB_INSECURE_TRANSPORT`` is set, which would also allow plain HTTP to any remote
provider. A provider on the same machine (a local identity server, the test peer) cannot
be sniffed on the network, so this module replaces oauthlib's check, in the client-side
modules only, with one that also accepts ``http://`` to a loopback address or
``localhost`` and stays as strict as before for every other host.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from synthorg import url_policy

logger = logging.getLogger(__name__)

_installed = False


def is_loopback_http(uri: str) -> bool:
    """``http://`` to 127.0.0.0/8, ::1 or localhost, read as ``synthorg.url_policy`` reads it."""
    try:
        destination = url_policy.check_url(uri)
    except url_policy.UnsafeURL:
        return False
    return destination.scheme == "http" and destination.loopback


def transport_allowed(uri: str) -> bool:
    """What the service accepts for OAuth endpoints: HTTPS, or plain HTTP on loopback."""
    return uri.lower().startswith("https://") or is_loopback_http(uri)


def _wrap(original: Callable[[str], bool]) -> Callable[[str], bool]:
    def is_secure_transport(uri: str) -> bool:
        return original(uri) or is_loopback_http(uri)

    is_secure_transport.__wrapped__ = original  # type: ignore[attr-defined]
    return is_secure_transport


def install() -> None:
    """Idempotent; called from ``OAuthFlowConfig.ready()``."""
    global _installed
    if _installed:
        return
    import oauthlib.oauth2.rfc6749.clients.base as client_base
    import oauthlib.oauth2.rfc6749.parameters as parameters
    import oauthlib.oauth2.rfc8628.clients.device as device
    import requests_oauthlib.oauth2_auth as oauth2_auth
    import requests_oauthlib.oauth2_session as oauth2_session

    for module in (client_base, parameters, device, oauth2_auth, oauth2_session):
        module.is_secure_transport = _wrap(module.is_secure_transport)  # type: ignore[attr-defined]
    _installed = True
