from __future__ import annotations

from integrations.types.base import ConnectionType, FieldSpec, https_url_unless_loopback

CONNECTION_TYPE = ConnectionType(
    name="oauth_app",
    label="OAuth app",
    description="An OAuth 2.1 client registered with a provider; tokens are obtained and refreshed by the service.",
    fields=(
        FieldSpec("client_id", required=True),
        FieldSpec("client_secret", required=True, secret=True),
        FieldSpec("auth_url", kind="url", validators=(https_url_unless_loopback,),
                  help="authorization endpoint (code flow)"),
        FieldSpec("token_url", kind="url", required=True, validators=(https_url_unless_loopback,)),
        FieldSpec("device_authorization_url", kind="url", validators=(https_url_unless_loopback,),
                  help="device authorization endpoint (device flow)"),
        FieldSpec("scopes", kind="list", default=[], help="default scopes"),
        FieldSpec("token_endpoint_auth_method", default="client_secret_basic",
                  choices=("client_secret_basic", "client_secret_post")),
        FieldSpec("extra_authorization_params", kind="mapping", default={},
                  help="e.g. {\"prompt\": \"consent\", \"access_type\": \"offline\"}"),
        FieldSpec("pkce", kind="boolean", default=True,
                  help="may be false only when integrations.oauth.pkce_required is false"),
    ),
)
