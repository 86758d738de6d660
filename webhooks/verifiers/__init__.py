"""Webhook signature verifiers, one module per scheme, and the registry the receiver uses.

``get_verifier(scheme)`` returns the verifier for a connection type's scheme name; the
contract every verifier keeps is documented in ``webhooks.verifiers.base``. The ``sign_*``
functions produce valid headers for each scheme (tests, benchmarks, operator docs).
"""
from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from webhooks.verifiers.base import REASONS, VerificationResult, Verifier
from webhooks.verifiers.generic_hmac import GenericHmacOptions, GenericHmacVerifier, sign_generic_hmac
from webhooks.verifiers.github import GitHubHmacVerifier, sign_github
from webhooks.verifiers.slack import SlackSigningVerifier, sign_slack
from webhooks.verifiers.standard import (
    StandardWebhooksVerifier,
    decode_standard_secret,
    generate_standard_secret,
    sign_standard_webhooks,
)

VERIFIERS: Mapping[str, Verifier] = MappingProxyType({
    verifier.scheme: verifier
    for verifier in (GitHubHmacVerifier(), SlackSigningVerifier(), GenericHmacVerifier(), StandardWebhooksVerifier())
})


def get_verifier(scheme: str) -> Verifier:
    """The verifier for ``scheme``; raises ``KeyError`` for a scheme nobody implements."""
    try:
        return VERIFIERS[scheme]
    except KeyError:
        raise KeyError(f"unknown webhook signature scheme {scheme!r}; known: {', '.join(sorted(VERIFIERS))}") from None


__all__ = [
    "REASONS",
    "VERIFIERS",
    "GenericHmacOptions",
    "GenericHmacVerifier",
    "GitHubHmacVerifier",
    "SlackSigningVerifier",
    "StandardWebhooksVerifier",
    "VerificationResult",
    "Verifier",
    "decode_standard_secret",
    "generate_standard_secret",
    "get_verifier",
    "sign_generic_hmac",
    "sign_github",
    "sign_slack",
    "sign_standard_webhooks",
]
