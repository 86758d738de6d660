from __future__ import annotations

import sys
import warnings
from typing import Any

import pytest

from integrations import services as connection_services
from providers import services
from providers.services import ProviderCredentialsUnavailable, ResolvedCredentials, resolve_credentials
from tests.providers.conftest import CANARY, CONNECTION_CANARY

pytestmark = pytest.mark.django_db


def _resolve_without_warning(provider: Any) -> ResolvedCredentials:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning (e.g. a deprecation) fails the test
        return resolve_credentials(provider)


@pytest.mark.parametrize(("connection_type", "credentials", "kind"), [
    ("generic_http", {"base_url": "https://llm.example.test", "token": CONNECTION_CANARY}, "bearer"),
    ("generic_http", {"base_url": "https://llm.example.test", "api_key": CONNECTION_CANARY}, "api_key"),
    ("github", {"token": CONNECTION_CANARY}, "bearer"),
    ("slack", {"token": CONNECTION_CANARY}, "bearer"),
])
def test_connection_credentials_resolve_by_type(make_connection: Any, make_provider: Any, connection_type: str,
                                                credentials: dict[str, Any], kind: str) -> None:
    make_connection(name="src", connection_type=connection_type, **credentials)
    provider = make_provider(connection_name="src")
    resolved = _resolve_without_warning(provider)
    assert (resolved.kind, resolved.value, resolved.source) == (kind, CONNECTION_CANARY, "connection:src")
    assert not resolved.deprecated
    assert CONNECTION_CANARY not in repr(resolved)


def test_connection_secret_change_is_seen_at_next_resolve(make_connection: Any, make_provider: Any) -> None:
    make_connection()
    provider = make_provider(connection_name="llm-gateway")
    connection_services.connection_update(name="llm-gateway", data={"credentials": {"token": "rotated-token"}})
    assert resolve_credentials(provider).value == "rotated-token"


def test_embedded_key_resolves_with_deprecation_warning(make_provider: Any) -> None:
    provider = make_provider(api_key=CANARY)
    with pytest.warns(DeprecationWarning, match="embedded api_key, which is deprecated") as record:
        resolved = resolve_credentials(provider)
    assert (resolved.kind, resolved.value, resolved.source) == ("api_key", CANARY, "embedded:api_key")
    assert resolved.deprecated
    assert all(CANARY not in str(w.message) for w in record)


def test_connection_wins_and_never_falls_back_to_embedded(make_connection: Any, make_provider: Any) -> None:
    make_connection(name="empty", connection_type="generic_http", base_url="https://llm.example.test")
    provider = make_provider(connection_name="empty")
    with pytest.raises(ProviderCredentialsUnavailable) as info:
        _resolve_without_warning(provider)
    assert info.value.code == "provider_connection_no_credential"
    assert "'empty'" in info.value.detail and "token or api_key" in info.value.detail


def test_connection_secrets_unreadable_is_clear_error(make_connection: Any, make_provider: Any) -> None:
    make_connection(name="gh", connection_type="github", token=CONNECTION_CANARY)
    provider = make_provider(connection_name="gh")
    # A github token is required, so the only way to lose it is a broken secret store: drop the record.
    from integrations.models import SecretRecord  # test setup only

    SecretRecord.objects.filter(connection=provider.connection).delete()
    with pytest.raises(ProviderCredentialsUnavailable) as info:
        resolve_credentials(provider)
    assert info.value.code == "provider_connection_secrets_unreadable"
    assert "'gh'" in info.value.detail and CONNECTION_CANARY not in info.value.detail


def test_dangling_reference_is_clear_error(make_connection: Any, make_provider: Any) -> None:
    make_connection()
    provider = make_provider(connection_name="llm-gateway")
    # A stale in-memory provider whose connection row vanished (the FK is PROTECT, so only a stale
    # object or an out-of-band delete can see this).
    provider.connection_id = provider.connection_id + 10_000
    with pytest.raises(ProviderCredentialsUnavailable) as info:
        resolve_credentials(provider)
    assert info.value.code == "provider_connection_missing"
    assert "no longer exists" in info.value.detail


def test_unusable_connection_type_is_clear_error(make_connection: Any, make_provider: Any) -> None:
    make_connection(name="mail", connection_type="smtp", host="mail.example.test")
    provider = make_provider()
    provider.connection = connection_services.selectors.connection_get("mail")  # bypasses create's 422 on purpose
    with pytest.raises(ProviderCredentialsUnavailable) as info:
        resolve_credentials(provider)
    assert info.value.code == "provider_connection_unusable"
    assert "smtp connection 'mail'" in info.value.detail


def test_no_credentials_at_all_is_clear_error(make_provider: Any) -> None:
    with pytest.raises(ProviderCredentialsUnavailable) as info:
        resolve_credentials(make_provider())
    assert info.value.code == "provider_no_credentials"


def test_embedded_oauth_only_is_clear_error(make_provider: Any) -> None:
    provider = make_provider(oauth_client_id="cid", oauth_client_secret=CANARY,
                             oauth_token_url="https://idp.example.test/token")
    with pytest.raises(ProviderCredentialsUnavailable) as info:
        resolve_credentials(provider)
    assert info.value.code == "provider_embedded_oauth_unsupported"
    assert "oauth_app connection" in info.value.detail


def _oauth_connection(make_connection: Any) -> Any:
    return make_connection(name="idp", connection_type="oauth_app", client_id="cid", client_secret="csecret",
                           token_url="https://idp.example.test/token")


def test_oauth_app_resolves_current_access_token(make_connection: Any, make_provider: Any) -> None:
    from oauthflow.grants import TokenSet
    from oauthflow.services import token_store

    connection = _oauth_connection(make_connection)
    provider = make_provider(connection_name="idp")
    token_store(connection=connection, grant_type="client_credentials", requested_scopes=[],
                tokens=TokenSet(access_token="access-token-1", token_type="Bearer", refresh_token=None,
                                expires_in=3600, scopes=()))
    resolved = _resolve_without_warning(provider)
    assert (resolved.kind, resolved.value, resolved.source) == ("bearer", "access-token-1", "connection:idp")
    # A newer grant replaces the token; the provider sees it at its next call.
    token_store(connection=connection, grant_type="client_credentials", requested_scopes=[],
                tokens=TokenSet(access_token="access-token-2", token_type="Bearer", refresh_token=None,
                                expires_in=3600, scopes=()))
    assert resolve_credentials(provider).value == "access-token-2"


def test_oauth_app_not_connected_is_clear_error(make_connection: Any, make_provider: Any) -> None:
    _oauth_connection(make_connection)
    with pytest.raises(ProviderCredentialsUnavailable) as info:
        resolve_credentials(make_provider(connection_name="idp"))
    assert info.value.code == "provider_oauth_token_unavailable"
    assert "'idp'" in info.value.detail and "connect or re-authorize" in info.value.detail


def test_oauth_app_without_oauthflow_is_clear_error(make_connection: Any, make_provider: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _oauth_connection(make_connection)
    monkeypatch.setitem(sys.modules, "oauthflow.services", None)  # import raises ImportError
    with pytest.raises(ProviderCredentialsUnavailable) as info:
        resolve_credentials(make_provider(connection_name="idp"))
    assert info.value.code == "provider_oauth_unavailable"


def test_resolve_check_reports_without_value_and_audits(make_provider: Any) -> None:
    make_provider(api_key=CANARY)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = services.provider_resolve_check(name="main-llm")
    assert result.resolvable and result.deprecated and result.kind == "api_key"
    assert CANARY not in repr(result)
    from synthorg.models import AuditEvent

    event = AuditEvent.objects.get(action="provider.resolve_check")
    assert event.outcome == "success" and CANARY not in repr(event.details)
