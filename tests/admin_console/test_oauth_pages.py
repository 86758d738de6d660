"""OAuth in the console: token status without the token, Connect, and the device-flow page."""
from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations import services as connection_services
from integrations.models import Connection
from oauthflow import services as oauth_services
from oauthflow.grants import TokenSet
from oauthflow.models import GrantType, OAuthDeviceFlow, OAuthToken
from tests.admin_console.conftest import ConsoleClient
from tests.peers.device_stub import DeviceStub

pytestmark = pytest.mark.django_db

ACCESS = "at-CANARY-console-access-0001"
REFRESH = "rt-CANARY-console-refresh-0001"
CLIENT_SECRET = "cs-CANARY-console-client-0001"


@pytest.fixture(autouse=True)
def _redirect_base(settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"oauth": {"redirect_uri_base": "http://testserver"}}


def oauth_app(**overrides: Any) -> Connection:
    credentials = {"client_id": "console", "client_secret": CLIENT_SECRET, "auth_url": "http://127.0.0.1:9/authorize",
                   "token_url": "http://127.0.0.1:9/token", "scopes": ["api:read"], **overrides}
    credentials = {key: value for key, value in credentials.items() if value is not None}
    return connection_services.connection_create(name=f"idp-{uuid.uuid4().hex[:6]}", connection_type="oauth_app",
                                                 credentials=credentials)


def with_token(connection: Connection, *, expires_in: int | None = 3600) -> OAuthToken:
    return oauth_services.token_store(
        connection=connection, grant_type=GrantType.AUTHORIZATION_CODE, requested_scopes=["api:read"],
        tokens=TokenSet(access_token=ACCESS, token_type="Bearer", refresh_token=REFRESH, expires_in=expires_in,
                        scopes=("api:read",)))


def assert_no_token(html: str) -> None:
    assert ACCESS not in html and REFRESH not in html and CLIENT_SECRET not in html


def test_connect_page_shows_status_and_never_the_token(root_console: ConsoleClient) -> None:
    connection = oauth_app()
    with_token(connection)

    html = root_console.get(reverse("admin:oauthflow_connect", args=[connection.name])).content.decode()

    assert 'data-status="active"' in html
    assert 'id="connect-button"' in html
    assert_no_token(html)


def test_token_list_and_detail_never_show_the_token(root_console: ConsoleClient) -> None:
    token = with_token(oauth_app())

    listing = root_console.get(reverse("admin:oauthflow_oauthtoken_changelist")).content.decode()
    detail = root_console.get(reverse("admin:oauthflow_oauthtoken_change", args=[token.pk])).content.decode()

    assert reverse("admin:oauthflow_connect", args=[token.connection.name]) in listing
    assert_no_token(listing)
    assert_no_token(detail)


def test_connection_page_links_to_the_console_connect_page(root_console: ConsoleClient) -> None:
    connection = oauth_app()

    html = root_console.get(reverse("admin:integrations_connection_change", args=[connection.pk])).content.decode()

    assert reverse("admin:oauthflow_connect", args=[connection.name]) in html
    assert_no_token(html)


def test_connect_without_auth_url_explains_instead_of_redirecting(root_console: ConsoleClient) -> None:
    connection = oauth_app(auth_url=None, device_authorization_url="http://127.0.0.1:9/device")

    page = root_console.get(reverse("admin:oauthflow_connect", args=[connection.name])).content.decode()
    response = root_console.post(reverse("admin:oauthflow_connect_start", args=[connection.name]))

    assert 'id="connect-button" value="Connect with the provider" disabled' in page
    assert response.status_code == 422
    assert 'id="connect-error"' in response.content.decode()


def test_connect_page_for_a_non_oauth_connection_is_404(root_console: ConsoleClient, github: Connection) -> None:
    assert root_console.get(reverse("admin:oauthflow_connect", args=[github.name])).status_code == 404


def test_device_page_shows_code_and_url_and_refreshes_until_approved(root_console: ConsoleClient,
                                                                     device_stub: DeviceStub,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oauth_services, "schedule_device_poll", lambda *args: None)
    device_stub.interval = 3
    connection = oauth_app(device_authorization_url=device_stub.device_authorization_endpoint,
                           token_url=device_stub.token_endpoint)
    started = root_console.post(reverse("admin:oauthflow_device_start", args=[connection.name]))
    flow = OAuthDeviceFlow.objects.get(connection=connection)

    pending = root_console.get(started["Location"]).content.decode()
    OAuthDeviceFlow.objects.filter(pk=flow.pk).update(status=OAuthDeviceFlow.Status.APPROVED,
                                                      finished_at=timezone.now())
    approved = root_console.get(started["Location"]).content.decode()

    assert 'id="user-code"' in pending and device_stub.user_code in pending
    assert f'href="{flow.verification_uri}"' in pending
    assert '<meta http-equiv="refresh" content="3">' in pending
    assert 'id="device-approved"' in approved
    assert 'http-equiv="refresh"' not in approved
    assert device_stub.user_code not in approved
    assert "stub-device-code" not in pending + approved


def test_denied_device_flow_stops_refreshing_and_says_why(root_console: ConsoleClient) -> None:
    connection = oauth_app()
    flow = OAuthDeviceFlow.objects.create(
        connection=connection, device_code_ciphertext="x", user_code="ABCD-EFGH",
        verification_uri="http://127.0.0.1:9/activate", interval_seconds=5,
        expires_at=timezone.now() + timedelta(minutes=5), next_poll_at=timezone.now(),
        status=OAuthDeviceFlow.Status.DENIED, error="the user denied the request")

    html = root_console.get(reverse("admin:oauthflow_device", args=[flow.pk])).content.decode()

    assert "the user denied the request" in html
    assert 'http-equiv="refresh"' not in html


def test_expiry_filter_lists_tokens_expiring_within_a_day(root_console: ConsoleClient) -> None:
    soon = with_token(oauth_app(), expires_in=3600)
    later = with_token(oauth_app(), expires_in=3 * 86400)

    html = root_console.get(reverse("admin:oauthflow_oauthtoken_changelist"), {"expiry": "soon"}).content.decode()

    assert soon.connection.name in html
    assert later.connection.name not in html


def test_device_page_needs_the_view_permission(console: Any) -> None:
    connection = oauth_app()
    flow = OAuthDeviceFlow.objects.create(
        connection=connection, device_code_ciphertext="x", user_code="ABCD-EFGH",
        verification_uri="http://127.0.0.1:9/activate", interval_seconds=5,
        expires_at=timezone.now() + timedelta(minutes=5), next_poll_at=timezone.now())
    url = reverse("admin:oauthflow_device", args=[flow.pk])

    assert console().get(url).status_code == 403
    assert console("oauthflow.view_oauthtoken").get(url).status_code == 200
