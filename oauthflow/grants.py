"""The OAuth 2 protocol, client side: requests-oauthlib / oauthlib do the grants and PKCE.

Everything here talks to the provider through ``synthorg.http.guard_session`` (egress
guard, timeouts, no redirects, no proxies) and knows nothing of the database. Token
responses are checked strictly before oauthlib parses them (``_strict_token_body``), and
every failure becomes a ``TokenEndpointError`` that says whether it is permanent.

Error rule (issue 4): ``invalid_grant``, ``invalid_client``, ``unauthorized_client`` and
every other 4xx except 408, 409, 423, 425 and 429 are permanent; network errors,
timeouts, 5xx, 3xx and those five 4xx are transient (429 and 503 carry Retry-After).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from oauthlib.oauth2 import BackendApplicationClient, DeviceClient, OAuth2Error, WebApplicationClient
from requests_oauthlib import OAuth2Session

from integrations.types import oauth_app
from oauthflow import transport
from synthorg.http import ExternalServiceError, PermanentError, guard_session, http_request, parse_retry_after

logger = logging.getLogger(__name__)

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# (connect, read) for every token-endpoint call, and how many times one refresh may try it.
# The refresh lease must outlive TOKEN_TIMEOUT x TOKEN_TRIES (see services.lease_seconds).
TOKEN_TIMEOUT: tuple[float, float] = (5.0, 15.0)
TOKEN_TRIES = 1
# Parameters the service sets itself; neither auth_url's query nor extra_authorization_params
# may carry them (declared once, with the oauth_app type's validators).
RESERVED_AUTHORIZATION_PARAMS = oauth_app.AUTHORIZATION_REQUEST_PARAMS
# Reading the provider's metadata (RFC 8414 / OpenID Connect Discovery) at each code-flow start.
METADATA_TIMEOUT: tuple[float, float] = (3.0, 5.0)
METADATA_MAX_BYTES = 256 * 1024
TRANSIENT_4XX = frozenset({408, 409, 423, 425, 429})
PKCE_VERIFIER_LENGTH = 64


class TokenEndpointError(Exception):
    """A token or device endpoint refused or failed; ``permanent`` decides reauthorize vs retry."""

    def __init__(self, message: str, *, error: str = "", status: int | None = None, permanent: bool,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error = error
        self.status = status
        self.permanent = permanent
        self.retry_after = retry_after


class ClientSettingInvalid(ValueError):
    """A stored client setting the current rules refuse (a row written before the rule existed)."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field} {rule}")
        self.field = field
        self.rule = rule


@dataclass(frozen=True)
class OAuthClient:
    """What the protocol needs from an ``oauth_app`` connection (config + secrets)."""

    client_id: str
    client_secret: str
    token_url: str
    auth_url: str = ""
    device_authorization_url: str = ""
    scopes: tuple[str, ...] = ()
    auth_method: str = "client_secret_basic"
    extra_authorization_params: Mapping[str, str] = field(default_factory=dict)
    pkce: bool = True
    issuer: str = ""

    @classmethod
    def from_credentials(cls, credentials: Mapping[str, Any]) -> OAuthClient:
        return cls(
            client_id=str(credentials.get("client_id") or ""),
            client_secret=str(credentials.get("client_secret") or ""),
            token_url=str(credentials.get("token_url") or ""),
            auth_url=str(credentials.get("auth_url") or ""),
            device_authorization_url=str(credentials.get("device_authorization_url") or ""),
            scopes=tuple(credentials.get("scopes") or ()),
            auth_method=str(credentials.get("token_endpoint_auth_method") or "client_secret_basic"),
            extra_authorization_params={str(k): str(v) for k, v in
                                        (credentials.get("extra_authorization_params") or {}).items()},
            pkce=credentials.get("pkce") is not False,
            issuer=str(credentials.get("issuer") or ""),
        )

    @property
    def expected_issuer(self) -> str:
        """RFC 9207 ``iss``: the configured issuer, else the authorization endpoint's origin."""
        if self.issuer:
            return self.issuer.rstrip("/")
        parts = urlsplit(self.auth_url)
        return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    token_type: str
    refresh_token: str | None
    expires_in: int | None
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class DeviceAuthorization:
    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: int | None


# --- strict parsing ------------------------------------------------------------------------

def _json_object(response: requests.Response, what: str) -> dict[str, Any]:
    try:
        body = json.loads(response.content or b"")
    except (ValueError, UnicodeDecodeError):
        raise TokenEndpointError(f"{what} is not JSON", error="invalid_response", status=response.status_code,
                                 permanent=False) from None
    if not isinstance(body, dict):
        raise TokenEndpointError(f"{what} is not a JSON object", error="invalid_response",
                                 status=response.status_code, permanent=False)
    return body


def _positive_int(body: Mapping[str, Any], key: str, what: str, *, required: bool) -> int | None:
    value = body.get(key)
    if value is None and not required:
        return None
    # bool is an int in Python; "3600" is a string: both are wrong types, not coerced.
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise TokenEndpointError(f"{what}: {key} must be a positive integer", error="invalid_response",
                                 permanent=False)
    return value


def _optional_str(body: Mapping[str, Any], key: str, what: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise TokenEndpointError(f"{what}: {key} must be a string", error="invalid_response", permanent=False)
    return value


def strict_token_body(body: Mapping[str, Any]) -> TokenSet:
    """RFC 6749 §5.1 with no coercion: a non-empty string access_token, positive integer expires_in."""
    what = "token response"
    access_token = body.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise TokenEndpointError(f"{what}: access_token must be a non-empty string", error="invalid_response",
                                 permanent=False)
    token_type = _optional_str(body, "token_type", what) or "Bearer"
    refresh_token = _optional_str(body, "refresh_token", what) or None
    expires_in = _positive_int(body, "expires_in", what, required=False)
    scope = _optional_str(body, "scope", what)
    return TokenSet(access_token=access_token, token_type=token_type, refresh_token=refresh_token,
                    expires_in=expires_in, scopes=tuple(scope.split()) if scope else ())


def classify_status(status: int, error: str, description: str, *, retry_after: float | None,
                    where: str) -> TokenEndpointError:
    detail = f"{where}: HTTP {status}" + (f" {error}" if error else "") + (f" ({description})" if description else "")
    permanent = 400 <= status < 500 and status not in TRANSIENT_4XX
    return TokenEndpointError(detail[:400], error=error, status=status, permanent=permanent,
                              retry_after=retry_after)


def _check_response(response: requests.Response) -> requests.Response:
    """Compliance hook: runs before oauthlib parses, so statuses and types are ours to judge."""
    where = "token endpoint"
    if 200 <= response.status_code < 300:
        strict_token_body(_json_object(response, "token response"))
        return response
    error = description = ""
    try:
        body = json.loads(response.content or b"")
        if isinstance(body, dict):
            error = body.get("error") if isinstance(body.get("error"), str) else ""
            description = body.get("error_description") if isinstance(body.get("error_description"), str) else ""
    except (ValueError, UnicodeDecodeError):
        pass  # a non-JSON error page: the status alone decides
    raise classify_status(response.status_code, error[:64], description[:200],
                          retry_after=parse_retry_after(response.headers.get("Retry-After")), where=where)


# --- sessions --------------------------------------------------------------------------

def _check_transport(url: str, what: str) -> None:
    if not transport.transport_allowed(url):
        raise TokenEndpointError(f"{what} must be https:// (plain http only on loopback)",
                                 error="insecure_transport", permanent=True)


def _session(client: OAuthClient, oauth_client: Any = None, *, redirect_uri: str | None = None) -> OAuth2Session:
    session = OAuth2Session(client=oauth_client or WebApplicationClient(client.client_id),
                            redirect_uri=redirect_uri)
    session.register_compliance_hook("access_token_response", _check_response)
    session.register_compliance_hook("refresh_token_response", _check_response)
    return guard_session(session, TOKEN_TIMEOUT)


def _auth_kwargs(client: OAuthClient) -> dict[str, Any]:
    if client.auth_method == "client_secret_post":
        return {"include_client_id": True, "client_secret": client.client_secret}
    return {"auth": requests.auth.HTTPBasicAuth(client.client_id, client.client_secret)}


def _call(what: str, func: Any, *args: Any, **kwargs: Any) -> TokenSet:
    """Run one oauthlib call; map every failure to TokenEndpointError."""
    try:
        raw = func(*args, timeout=TOKEN_TIMEOUT, **kwargs)
    except TokenEndpointError:
        raise
    except PermanentError as exc:  # TLS failure, egress refusal: configuration, not the grant
        raise TokenEndpointError(f"{what}: {exc}", error="transport", permanent=False) from None
    except ExternalServiceError as exc:
        raise TokenEndpointError(f"{what}: {exc}", error="transport", permanent=False,
                                 retry_after=getattr(exc, "retry_after", None)) from None
    except OAuth2Error as exc:  # oauthlib found the 2xx body unusable after our checks
        raise TokenEndpointError(f"{what}: {exc.error}", error=exc.error or "invalid_response",
                                 permanent=False) from None
    # Re-read what oauthlib parsed through the strict rules (it coerces expires_in with int()).
    body = {k: raw.get(k) for k in ("access_token", "token_type", "refresh_token", "expires_in")}
    scope = raw.get("scope")
    body["scope"] = " ".join(scope) if isinstance(scope, (list, tuple)) else scope
    return strict_token_body(body)


# --- the grants ------------------------------------------------------------------------

def authorization_request(client: OAuthClient, *, redirect_uri: str, scopes: Sequence[str], state: str,
                          pkce: bool) -> tuple[str, str | None]:
    """The provider URL to send the browser to, and the PKCE verifier to keep (S256 only)."""
    if not client.auth_url:
        raise ValueError("auth_url is not set")
    # The type's validators, again: a row stored before them must not yield a URL with a second
    # redirect_uri or state ahead of ours (issue 12).
    for field_name, check, value in (("auth_url", oauth_app.authorization_endpoint_url, client.auth_url),
                                     ("extra_authorization_params", oauth_app.no_reserved_params,
                                      client.extra_authorization_params)):
        try:
            check(value)
        except ValueError as exc:
            raise ClientSettingInvalid(field_name, str(exc)) from None
    _check_transport(client.auth_url, "auth_url")
    oauth_client = WebApplicationClient(client.client_id)
    session = OAuth2Session(client=oauth_client, redirect_uri=redirect_uri, scope=list(scopes) or None,
                            state=state)
    extra = dict(client.extra_authorization_params)
    verifier = None
    if pkce:
        verifier = oauth_client.create_code_verifier(PKCE_VERIFIER_LENGTH)
        extra["code_challenge"] = oauth_client.create_code_challenge(verifier, "S256")
        extra["code_challenge_method"] = "S256"
    url, _ = session.authorization_url(client.auth_url, **extra)
    return url, verifier


def metadata_urls(issuer: str) -> list[str]:
    """Where an issuer publishes its metadata: RFC 8414 §3.1 first, then OpenID Connect Discovery §4."""
    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    return [f"{origin}/.well-known/oauth-authorization-server{path}",
            f"{origin}{path}/.well-known/openid-configuration"]


def iss_parameter_supported(client: OAuthClient) -> bool | None:
    """Does the provider's metadata advertise ``authorization_response_iss_parameter_supported`` (RFC 9207)?

    True or False from the first metadata document published for the expected issuer; None
    when there is none to read (no document, unreachable, not JSON). A document naming
    another issuer is ignored (RFC 8414 §3.3: it must not be used). No secret is sent.
    """
    issuer = client.expected_issuer
    if not issuer:
        return None
    for url in metadata_urls(issuer):
        try:
            response = http_request("GET", url, timeout=METADATA_TIMEOUT, max_bytes=METADATA_MAX_BYTES,
                                    headers={"Accept": "application/json"})
        except ExternalServiceError as exc:
            if exc.status is None or exc.status >= 500:
                # Unreachable or failing: the second location is on the same host, so the
                # start does not wait twice (at most one METADATA_TIMEOUT).
                logger.warning("OAuth metadata of %s could not be read: %s", issuer, exc)
                return None
            continue  # a 4xx: not published there
        if response.status_code != 200:
            continue  # a redirect is not followed
        try:
            body = json.loads(response.content or b"")
        except (ValueError, UnicodeDecodeError):
            continue
        if not isinstance(body, dict):
            continue
        if not isinstance(body.get("issuer"), str) or body["issuer"].rstrip("/") != issuer:
            logger.warning("OAuth metadata at %s names another issuer than %s; ignored", url, issuer)
            continue
        return body.get("authorization_response_iss_parameter_supported") is True
    return None


def exchange_code(client: OAuthClient, *, code: str, redirect_uri: str, code_verifier: str | None) -> TokenSet:
    _check_transport(client.token_url, "token_url")
    session = _session(client, redirect_uri=redirect_uri)
    kwargs = _auth_kwargs(client)
    if code_verifier:
        kwargs["code_verifier"] = code_verifier
    return _call("authorization code exchange", session.fetch_token, client.token_url, code=code, **kwargs)


def refresh(client: OAuthClient, *, refresh_token: str) -> TokenSet:
    """The refresh-token grant. No scope is sent: the provider keeps the granted one."""
    _check_transport(client.token_url, "token_url")
    session = _session(client)
    return _call("token refresh", session.refresh_token, client.token_url, refresh_token=refresh_token,
                 **_auth_kwargs(client))


def client_credentials(client: OAuthClient, *, scopes: Sequence[str]) -> TokenSet:
    _check_transport(client.token_url, "token_url")
    # The scope goes in the request only: oauthlib then has no "old scope" to compare a
    # narrowed grant with, so a provider granting fewer scopes is accepted, not an error.
    session = _session(client, BackendApplicationClient(client.client_id))
    kwargs = _auth_kwargs(client)
    if scopes:
        kwargs["scope"] = " ".join(scopes)
    return _call("client credentials", session.fetch_token, client.token_url, **kwargs)


def device_authorize(client: OAuthClient, *, scopes: Sequence[str]) -> DeviceAuthorization:
    """RFC 8628 §3.1-3.2: ask for a device code and a user code."""
    if not client.device_authorization_url:
        raise ValueError("device_authorization_url is not set")
    _check_transport(client.device_authorization_url, "device_authorization_url")
    session = _session(client, DeviceClient(client.client_id))
    data: dict[str, str] = {}
    if scopes:
        data["scope"] = " ".join(scopes)
    auth = None
    if client.auth_method == "client_secret_post":
        data.update(client_id=client.client_id, client_secret=client.client_secret)
    else:
        auth = requests.auth.HTTPBasicAuth(client.client_id, client.client_secret)
    where = "device authorization endpoint"
    try:
        response = session.post(client.device_authorization_url, data=data, auth=auth,
                                headers={"Accept": "application/json"}, timeout=TOKEN_TIMEOUT)
    except ExternalServiceError as exc:
        raise TokenEndpointError(f"{where}: {exc}", error="transport", permanent=False) from None
    if response.status_code != 200:
        body = {}
        try:
            body = json.loads(response.content or b"")
        except (ValueError, UnicodeDecodeError):
            pass
        error = body.get("error", "") if isinstance(body, dict) and isinstance(body.get("error"), str) else ""
        raise classify_status(response.status_code, error[:64], "",
                              retry_after=parse_retry_after(response.headers.get("Retry-After")), where=where)
    body = _json_object(response, "device authorization response")
    what = "device authorization response"
    device_code = _optional_str(body, "device_code", what)
    user_code = _optional_str(body, "user_code", what)
    # Some providers (Google) still say verification_url.
    verification_uri = _optional_str(body, "verification_uri", what) or _optional_str(body, "verification_url", what)
    if not device_code or not user_code or not verification_uri:
        raise TokenEndpointError(f"{what}: device_code, user_code and verification_uri are required",
                                 error="invalid_response", permanent=False)
    return DeviceAuthorization(
        device_code=device_code,
        user_code=user_code,
        verification_uri=verification_uri,
        verification_uri_complete=_optional_str(body, "verification_uri_complete", what) or "",
        expires_in=_positive_int(body, "expires_in", what, required=True) or 0,
        interval=_positive_int(body, "interval", what, required=False),
    )


def device_poll(client: OAuthClient, *, device_code: str) -> TokenSet:
    """One RFC 8628 §3.4 poll; ``authorization_pending`` and friends arrive as TokenEndpointError."""
    _check_transport(client.token_url, "token_url")
    session = _session(client, DeviceClient(client.client_id))
    return _call("device token poll", session.fetch_token, client.token_url, device_code=device_code,
                 **_auth_kwargs(client))
