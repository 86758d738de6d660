"""`secret_manager_cloud_a`: AWS Secrets Manager, through boto3.

One secret per owner object named ``<name_prefix><kind>/<owner id>``, its SecretString a JSON
object of fields. A write is ``PutSecretValue`` with a fresh ``ClientRequestToken`` (the version
id; botocore's own retries reuse it, so a retried write never makes two versions); the reference
keeps the ARN and that version id. Credentials come from boto3's standard chain only.
"""
from __future__ import annotations

import json
import logging
import threading
import uuid
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from integrations.secrets.base import SecretBackendUnavailable, SecretUnavailable
from synthorg.config import AwsSecretsConfig
from synthorg.metrics import SECRET_BACKEND_ERRORS

logger = logging.getLogger(__name__)

# botocore logs request and response bodies at DEBUG (PutSecretValue's SecretString, the
# GetSecretValue answer): its loggers never go below INFO in this service, whatever the root
# level is (a DEBUG run of the service must not print secrets; found by the canary test).
for _name in ("botocore", "boto3", "s3transfer"):
    if logging.getLogger(_name).level < logging.INFO:  # NOTSET (inherits the root) or DEBUG
        logging.getLogger(_name).setLevel(logging.INFO)

# Errors that mean "the service cannot be used right now", not "this secret is wrong".
_OUTAGE_CODES = frozenset({
    "InternalServiceError", "InternalFailure", "ServiceUnavailable", "ThrottlingException",
    "RequestTimeout", "UnrecognizedClientException", "InvalidClientTokenId", "AccessDeniedException",
    "ExpiredTokenException", "InvalidSignatureException", "SignatureDoesNotMatch",
})


class AwsManager:
    name = "secret_manager_cloud_a"

    def __init__(self, config: AwsSecretsConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._client: Any = None

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                cfg = self.config
                self._client = boto3.session.Session().client(
                    "secretsmanager", region_name=cfg.region, endpoint_url=cfg.endpoint_url or None,
                    config=botocore.config.Config(connect_timeout=cfg.timeout_seconds,
                                                  read_timeout=cfg.timeout_seconds,
                                                  retries={"max_attempts": 2, "mode": "standard"}))
            return self._client

    def _unavailable(self, what: str) -> SecretBackendUnavailable:
        SECRET_BACKEND_ERRORS.labels("secret_manager_cloud_a").inc()
        return SecretBackendUnavailable(f"The AWS Secrets Manager backend is unavailable: {what}.")

    def _call(self, method: str, **params: Any) -> Any:
        try:
            return getattr(self.client(), method)(**params)
        except botocore.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _OUTAGE_CODES:
                raise self._unavailable(f"{method} refused ({code})") from None
            raise
        except botocore.exceptions.NoCredentialsError:
            raise self._unavailable("no AWS credentials in the standard chain") from None
        except botocore.exceptions.BotoCoreError as exc:  # endpoint unreachable, timeouts
            raise self._unavailable(f"{method} failed ({type(exc).__name__})") from None

    @staticmethod
    def _code(exc: botocore.exceptions.ClientError) -> str:
        return str(exc.response.get("Error", {}).get("Code", ""))

    # --- secrets ------------------------------------------------------------------------

    def location(self, kind: str, owner_id: str) -> str:
        return f"{self.config.name_prefix}{kind}/{owner_id}"

    def write(self, location: str, values: dict[str, str], *, version: str | None) -> tuple[str, str]:
        """Write a new version of the secret named or ARN'd by ``location``; create it if needed.
        Returns (ARN, new version id)."""
        body = json.dumps(values, sort_keys=True)
        token = str(uuid.uuid4())
        if version is None:
            params: dict[str, Any] = {"Name": location, "SecretString": body, "ClientRequestToken": token}
            if self.config.kms_key_id:
                params["KmsKeyId"] = self.config.kms_key_id
            try:
                response = self._call("create_secret", **params)
                return response["ARN"], response["VersionId"]
            except botocore.exceptions.ClientError as exc:
                code = self._code(exc)
                if code == "InvalidRequestException" and "deletion" in str(exc).lower():
                    # Scheduled for deletion by an earlier delete or --purge-source: bring it back.
                    self._call("restore_secret", SecretId=location)
                elif code != "ResourceExistsException":  # left by an interrupted run: write over it
                    raise self._unavailable(f"create_secret refused ({code})") from None
        try:
            response = self._call("put_secret_value", SecretId=location, SecretString=body, ClientRequestToken=token)
        except botocore.exceptions.ClientError as exc:
            raise self._unavailable(f"put_secret_value refused ({self._code(exc)})") from None
        return response["ARN"], response["VersionId"]

    def read(self, location: str, version: str) -> dict[str, str]:
        params: dict[str, Any] = {"SecretId": location}
        if version:
            params["VersionId"] = version
        try:
            response = self._call("get_secret_value", **params)
        except botocore.exceptions.ClientError as exc:
            if self._code(exc) in {"ResourceNotFoundException", "InvalidRequestException"}:
                raise SecretUnavailable("The secret is missing from AWS Secrets Manager.",
                                        code="secret_missing") from None
            raise self._unavailable(f"get_secret_value refused ({self._code(exc)})") from None
        try:
            data = json.loads(response["SecretString"])
        except (KeyError, ValueError):
            raise SecretUnavailable("The stored secret is not a JSON object.", code="secret_decrypt_failed") from None
        if not isinstance(data, dict):
            raise SecretUnavailable("The stored secret is not a JSON object.", code="secret_decrypt_failed")
        return {str(k): str(v) for k, v in data.items()}

    def destroy(self, location: str) -> None:
        """DeleteSecret with the configured recovery window (0: at once); already gone is fine."""
        window = self.config.recovery_window_days
        params: dict[str, Any] = {"SecretId": location}
        if window:
            params["RecoveryWindowInDays"] = window
        else:
            params["ForceDeleteWithoutRecovery"] = True
        try:
            self._call("delete_secret", **params)
        except botocore.exceptions.ClientError as exc:
            code = self._code(exc)
            if code == "ResourceNotFoundException" or (code == "InvalidRequestException"
                                                       and "deletion" in str(exc).lower()):
                return  # gone or already scheduled for deletion
            raise self._unavailable(f"delete_secret refused ({code})") from None

    def status(self) -> dict[str, Any]:
        """For /readyz: the endpoint answers and accepts our credentials (never raises)."""
        state: dict[str, Any] = {"backend": self.name, "reachable": False, "authenticated": False, "unsealed": True}
        try:
            self._call("list_secrets", MaxResults=1)
            state["reachable"] = state["authenticated"] = True
        except SecretBackendUnavailable as exc:
            state["error"] = exc.detail
            state["reachable"] = "refused" in exc.detail
        except botocore.exceptions.ClientError as exc:
            state["reachable"] = True
            state["error"] = f"list_secrets refused ({self._code(exc)})"
        state["ok"] = state["reachable"] and state["authenticated"]
        return state
