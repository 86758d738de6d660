"""Test settings: the production settings module with test-only keys and fast hashing.

PostgreSQL and Redis come from DATABASE_URL / REDIS_URL when set (CI sets both and
SYNTHORG_REQUIRE_SERVICES=1); otherwise SQLite and the filesystem broker. Every Redis key
this run writes starts with its own prefix, and only those keys are removed afterwards.
"""
from __future__ import annotations

import os
import tempfile
import uuid

# Fixed, public test-only values: they protect nothing.
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-" + "x" * 40)
os.environ.setdefault("SYNTHORG_MASTER_KEY", "qbYj6U5c3rSRlFqbpNHXHw0fyV0TGCkZjmdYk1t1l0A=")
os.environ.pop("SYNTHORG_DEV", None)
os.environ.pop("DEBUG", None)
os.environ.setdefault("SYNTHORG_VAR_DIR", tempfile.mkdtemp(prefix="synthorg-test-var-"))
os.environ.setdefault("SYNTHORG_REDIS_PREFIX", f"synthorg-test-{uuid.uuid4().hex[:12]}:")
os.environ.pop("SYNTHORG_CONFIG", None)
# Paths chosen by tests (pytest's tmp_path, sqlite files) live under the temp directory: allow it
# as a root of integrations.mcp_catalog.allowed_roots (a test that changes the key overrides this).
os.environ.setdefault("SYNTHORG_CFG__MCP_CATALOG__ALLOWED_ROOTS", f"[{os.path.realpath(tempfile.gettempdir())!r}]")

from synthorg.settings import *  # noqa: F403
from synthorg.settings import STORAGES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
ALLOWED_HOSTS = ["*"]
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
WHITENOISE_USE_FINDERS = True
STATIC_ROOT = VAR_DIR / "static"  # noqa: F405
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# The config file of the developer's checkout must not leak into tests.
SYNTHORG_CONFIG_FILE = None
# Unit tests run tasks inline; end-to-end tests start a real worker with their own settings.
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not :memory:, so worker processes started by tests can share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}  # noqa: F405
