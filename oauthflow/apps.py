from __future__ import annotations

from django.apps import AppConfig


def refresh_sweep_interval(config: object) -> float:
    """Often enough that a token is seen at least three times inside the refresh threshold."""
    threshold = config.integrations.oauth.auto_refresh_threshold_seconds  # type: ignore[attr-defined]
    return float(max(5, min(60, threshold // 3)))


class OAuthFlowConfig(AppConfig):
    name = "oauthflow"
    verbose_name = "OAuth 2.1"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from oauthflow import transport
        from synthorg import periodic

        transport.install()

        from oauthflow.dashboard import oauth_card
        from synthorg import dashboard

        dashboard.register("oauth", oauth_card)

        from integrations.secrets import rotation
        from oauthflow.models import OAuthDeviceFlow, OAuthState, OAuthToken

        # `manage.py rotate_master_key` re-encrypts tokens, PKCE verifiers and device codes too.
        rotation.register("oauth", lambda *, actor=None: rotation.rotate_fields(
            (OAuthToken, "ciphertext", "key_id"), (OAuthState, "verifier_ciphertext"),
            (OAuthDeviceFlow, "device_code_ciphertext")))
        # Under a secret manager tokens live there; a connection's delete destroys them (issue 14).
        from integrations.secrets import managed

        managed.register_column(managed.SealedColumn(managed.OAUTH_TOKENS, OAuthToken, "ciphertext", "key_id",
                                                     owner_attr="connection_id"))
        managed.register_column(managed.SealedColumn(managed.OAUTH_STATES, OAuthState, "verifier_ciphertext"))
        managed.register_column(managed.SealedColumn(managed.OAUTH_DEVICE_CODES, OAuthDeviceFlow,
                                                     "device_code_ciphertext"))
        # A changed token_url/auth_url drops the tokens obtained from the old server (issue 12).
        from integrations import dependants
        from oauthflow.services import tokens_drop_for_destination

        dependants.register_destination_change("oauth", tokens_drop_for_destination)
        periodic.register("oauth-token-manager", "oauthflow.tokens_refresh_due", refresh_sweep_interval)
        periodic.register("oauth-states-purge", "oauthflow.states_purge",
                          lambda cfg: float(cfg.integrations.oauth.state_expiry_seconds))
