"""System checks for the secret backend: the service must not start without a usable key.

They run in `manage.py check`, in `runserver`, and through `synthorg.startup.check_or_exit()`
at every web/worker/beat boot.
"""
from __future__ import annotations

import logging
from typing import Any

from django.core import checks
from django.db import DatabaseError, connection

from integrations.secrets.keys import Keyring, MasterKeyError, load_keyring
from integrations.secrets.managed import MANAGED_BACKENDS
from synthorg.config import ConfigInvalid, get_config

logger = logging.getLogger(__name__)

STUB_BACKENDS = {"secret_manager_cloud_b"}


def _key_check_problem(ring: Keyring) -> checks.CheckMessage | None:
    """An Error when a stored key-check value exists that this keyring cannot decrypt.

    Without it a mistyped key would start, write new secrets beside unreadable old ones,
    and leave a database encrypted under two keys nobody can tell apart.
    """
    from integrations.models import KeyCheck
    from integrations.secrets.fernet import key_check_passes

    try:
        # Before `migrate` the table does not exist; introspection (not a failing query)
        # keeps an enclosing PostgreSQL transaction usable.
        if KeyCheck._meta.db_table not in connection.introspection.table_names():
            return None
        passes = key_check_passes(ring)
    except (DatabaseError, RuntimeError) as exc:
        # No database to ask (`check` on a build machine; RuntimeError is how pytest-django
        # blocks database access in tests without it): commands that need the database fail
        # loudly on their own, and the key check runs again at the next start.
        logger.warning("key check skipped: the database is unavailable (%s)", type(exc).__name__)
        return None
    if passes is False:
        return checks.Error(
            f"The master keyring (from {ring.env_name} and the previous-keys variable) cannot decrypt "
            "the stored key-check value: the key is wrong, or the key that encrypted the stored "
            "secrets is missing.",
            hint=f"Set {ring.env_name} to the key this database was encrypted with; during a rotation put the "
                 "old key in the previous-keys variable (default SYNTHORG_PREVIOUS_MASTER_KEYS).",
            id="integrations.E003",
        )
    return None


@checks.register("synthorg")
def check_secret_backend(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    try:
        backend = get_config().integrations.secret_backend
    except ConfigInvalid:
        return []  # reported by synthorg.E001
    if backend.backend_type in STUB_BACKENDS:
        return [checks.Error(
            f"Secret backend {backend.backend_type!r} is not available in this release.",
            hint="Set integrations.secret_backend.backend_type to encrypted_sqlite, env_var, "
                 "secret_manager_vault or secret_manager_cloud_a.",
            id="integrations.E002",
        )]
    problems: list[checks.CheckMessage] = []
    if backend.backend_type in MANAGED_BACKENDS:
        problem = _secret_manager_problem(backend.backend_type)
        if problem:
            problems.append(problem)
    try:
        ring = load_keyring()
    except MasterKeyError as exc:
        if backend.backend_type in MANAGED_BACKENDS and not fernet_secrets_left():
            # The master key is needed only while encrypted_sqlite still holds something.
            return problems
        if backend.backend_type == "env_var":
            # Connection secrets come from the environment; only OAuth tokens and provider
            # credentials need the key, and they fail clearly when used without it.
            return [checks.Warning(
                f"Master key problem: {exc}.",
                hint="With the env_var backend connection secrets need no key, but OAuth tokens and embedded "
                     "provider credentials are still encrypted with it and cannot be stored without it.",
                id="integrations.W001",
            )]
        return [*problems, checks.Error(
            f"Master key problem: {exc}.",
            hint="Connection secrets and OAuth tokens are encrypted with it; the service will not start without it."
            if backend.backend_type not in MANAGED_BACKENDS else
            "Some secrets are still stored by encrypted_sqlite: keep the key until `manage.py secrets_migrate` "
            "has moved them.",
            id="integrations.E001",
        )]
    problem = _key_check_problem(ring)
    return [*problems, problem] if problem else problems


def _secret_manager_problem(name: str) -> checks.CheckMessage | None:
    """One line for a secret manager that cannot be used: a missing credential variable, an
    unreachable URL, a sealed server or a refused login."""
    from integrations.secrets import managed
    from integrations.secrets.envvars import read_env

    cfg = get_config().integrations.secret_backend
    missing: list[str] = []
    if name == managed.VAULT:
        vault = cfg.vault
        needed = (vault.role_id_env, vault.secret_id_env) if vault.auth == "approle" else (vault.token_env,)
        missing = [env for env in needed if not read_env(env)]
    if missing:
        return checks.Error(f"Secret backend {name}: {' and '.join(missing)} not set (nor {missing[0]}_FILE).",
                            id="integrations.E004")
    state = managed.manager(name).status()
    if not state["ok"]:
        return checks.Error(f"Secret backend {name}: {state.get('error') or 'not ready'} "
                            f"(reachable {state['reachable']}, unsealed {state['unsealed']}, "
                            f"authenticated {state['authenticated']}).", id="integrations.E004")
    return None


def fernet_secrets_left() -> bool:
    """Whether any secret is still a Fernet token (stored by encrypted_sqlite) in the database."""
    from integrations.models import SecretRecord
    from integrations.secrets import managed

    try:
        if SecretRecord._meta.db_table not in connection.introspection.table_names():
            return False
        if SecretRecord.objects.exclude(ciphertext__startswith=managed.REF_PREFIX).exists():
            return True
        return any(column.model.objects.exclude(**{column.field: ""})
                   .exclude(**{f"{column.field}__startswith": managed.REF_PREFIX}).exists()
                   for column in managed.columns())
    except (DatabaseError, RuntimeError):
        return True  # cannot tell: keep asking for the key
