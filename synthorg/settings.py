"""The only settings module. Both run modes differ only by environment variables.

* Embedded/development mode (``SYNTHORG_DEV=1``, set by ``make run`` and nothing else):
  SQLite under ``var/``, a filesystem Celery broker, DEBUG on, a generated SECRET_KEY.
* Production (everything else): required values have no default and stop startup with
  one clear line (``synthorg.startup.ConfigurationError``).
"""
from __future__ import annotations

import logging
import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import environ

from synthorg.shutdown import VISIBILITY_TIMEOUT_SECONDS
from synthorg.startup import ConfigurationError

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool) -> bool:
    """Strict boolean: a typo such as DEBUG=ture stops startup instead of meaning False."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(f"{name}={raw!r} is not a boolean; use 1/0, true/false, yes/no or on/off")


def env_secret(name: str, default: str | None = None) -> str | None:
    """A secret from ``NAME`` or from the file named by ``NAME_FILE`` (Docker/K8s secrets)."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigurationError(f"{name}_FILE={file_name!r} cannot be read ({exc.strerror})") from None
    return os.environ.get(name, default)


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not an integer") from None


# --- mode ----------------------------------------------------------------------------------
SYNTHORG_DEV = env_bool("SYNTHORG_DEV", False)
VAR_DIR = Path(os.environ.get("SYNTHORG_VAR_DIR") or BASE_DIR / "var").resolve()
if SYNTHORG_DEV:
    VAR_DIR.mkdir(parents=True, exist_ok=True)

# Every process of this host writes its Prometheus metrics here and GET /metrics merges them
# (synthorg/metrics.py); a tmpfs is best. Set before prometheus_client is imported anywhere.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(VAR_DIR / "metrics")
try:
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
except OSError:  # not writable: each process keeps its own metrics (/metrics shows the web process)
    del os.environ["PROMETHEUS_MULTIPROC_DIR"]

DEBUG = env_bool("DEBUG", SYNTHORG_DEV)
if DEBUG and not SYNTHORG_DEV:
    raise ConfigurationError(
        "DEBUG=1 is only allowed in the development mode of `make run` (SYNTHORG_DEV=1); "
        "unset DEBUG in production"
    )

# Plain HTTP in production (docker-compose on localhost) is an explicit, warned opt-in.
ALLOW_INSECURE_HTTP = env_bool("SYNTHORG_ALLOW_INSECURE_HTTP", False)


def _dev_secret_key() -> str:
    path = VAR_DIR / "secret_key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        key = secrets.token_urlsafe(50)
        handle.write(key)
    return key


_secret_key = env_secret("SECRET_KEY")
if not _secret_key:
    if not SYNTHORG_DEV:
        raise ConfigurationError(
            "SECRET_KEY is not set; generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'` and export SECRET_KEY"
        )
    _secret_key = _dev_secret_key()
elif not SYNTHORG_DEV and (
    len(_secret_key) < 50 or len(set(_secret_key)) < 5 or _secret_key.startswith("django-insecure")
):
    raise ConfigurationError(
        "SECRET_KEY is too weak (at least 50 random characters); generate one with "
        "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`"
    )
SECRET_KEY = _secret_key

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["*"] if SYNTHORG_DEV else ["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SYNTHORG_PUBLIC_URL = (os.environ.get("SYNTHORG_PUBLIC_URL") or "").rstrip("/") or None
if SYNTHORG_PUBLIC_URL:
    _public = urlparse(SYNTHORG_PUBLIC_URL)
    if _public.scheme not in {"http", "https"} or not _public.netloc:
        raise ConfigurationError(
            f"SYNTHORG_PUBLIC_URL={SYNTHORG_PUBLIC_URL!r} must be an absolute http(s) URL such as https://integrations.example.com"
        )

# --- configuration file ----------------------------------------------------------------------
_config_file = os.environ.get("SYNTHORG_CONFIG")
if not _config_file and (BASE_DIR / "synthorg.yaml").exists():
    _config_file = str(BASE_DIR / "synthorg.yaml")
SYNTHORG_CONFIG_FILE = _config_file or None
SYNTHORG_CONFIG_OVERRIDES: dict[str, Any] = {}

# --- apps ----------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from the package, never a CDN (issue 12 §6)
    "django_celery_beat",
    # Before synthorg: its login-failure handler runs first, so ours can tell a lockout.
    "axes",
    "synthorg",
    "integrations",
    "oauthflow",
    "webhooks",
    "catalog",
    "providers",
    "notifications",
]

MIDDLEWARE = [
    "synthorg.middleware.RequestIdMiddleware",
    # Early, so even the refusals of the middlewares below carry the policy.
    "synthorg.csp.ContentSecurityPolicyMiddleware",
    "synthorg.middleware.NulCharacterMiddleware",
    # Before host validation: the tunnel's public host reaches only webhooks and the OAuth callback.
    "synthorg.tunnel_middleware.TunnelHostMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "synthorg.middleware.IntegrationsEnabledMiddleware",
    # Last: turns a login refused by a lockout into synthorg.login_guard.lockout_response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "synthorg.urls"
WSGI_APPLICATION = "synthorg.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "synthorg.context_processors.integrations_state",
            ],
        },
    },
]

# --- database --------------------------------------------------------------------------------
_SQLITE_OPTIONS = {
    # Web, worker and beat all write: WAL lets readers run beside one writer, IMMEDIATE
    # takes the write lock at BEGIN (no deadlock-prone lock upgrades), and the timeout
    # makes a writer wait instead of failing with "database is locked".
    "transaction_mode": "IMMEDIATE",
    "timeout": 30,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;",
}


def _database_from_url(url: str) -> dict[str, Any]:
    scheme = urlparse(url).scheme
    allowed = {"postgres", "postgresql", "pgsql", "sqlite"}
    if scheme not in allowed:
        raise ConfigurationError(
            f"DATABASE_URL is malformed: scheme {scheme or '(none)'!r} is not supported; "
            "use postgres://USER:PASSWORD@HOST:5432/NAME or sqlite:////absolute/path.sqlite3"
        )
    try:
        config = environ.Env.db_url_config(url)
    except Exception as exc:  # django-environ raises several types for bad URLs
        raise ConfigurationError(f"DATABASE_URL is malformed ({type(exc).__name__}); "
                                 "use postgres://USER:PASSWORD@HOST:5432/NAME") from None
    if not config.get("NAME"):
        raise ConfigurationError("DATABASE_URL is malformed: it names no database; "
                                 "use postgres://USER:PASSWORD@HOST:5432/NAME")
    if config["ENGINE"] == "django.db.backends.sqlite3":
        config["OPTIONS"] = {**_SQLITE_OPTIONS, **config.get("OPTIONS", {})}
    else:
        config["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60)
        config["CONN_HEALTH_CHECKS"] = True
    return config


_database_url = env_secret("DATABASE_URL")
if _database_url:
    DATABASES = {"default": _database_from_url(_database_url)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "synthorg.sqlite3"),
            "OPTIONS": dict(_SQLITE_OPTIONS),
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- redis, broker, cache --------------------------------------------------------------------
REDIS_URL = env_secret("REDIS_URL") or None
if REDIS_URL and urlparse(REDIS_URL).scheme not in {"redis", "rediss", "unix"}:
    raise ConfigurationError("REDIS_URL is malformed: use redis://HOST:6379/0")
# All keys this service writes to Redis start with this prefix (tests give each run its own).
REDIS_KEY_PREFIX = os.environ.get("SYNTHORG_REDIS_PREFIX", "synthorg:")

BROKER_DIR = VAR_DIR / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or REDIS_URL
    CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or REDIS_URL
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": REDIS_URL, "KEY_PREFIX": REDIS_KEY_PREFIX + "cache"}}
else:
    # The embedded broker: kombu's filesystem transport, one file per message in var/broker,
    # shared by every process on this machine and needing no server.
    CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or "filesystem://localhost/"
    CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or f"file://{VAR_DIR / 'celery-results'}"
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "out"),
        "data_folder_out": str(BROKER_DIR / "out"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
    for _folder in ("out", "control"):
        (BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
if CELERY_RESULT_BACKEND.startswith("file://"):
    Path(CELERY_RESULT_BACKEND[len("file://"):]).mkdir(parents=True, exist_ok=True)
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Unacked messages come back after this; every countdown/eta must stay below it.
        "visibility_timeout": VISIBILITY_TIMEOUT_SECONDS,  # synthorg/shutdown.py: above every countdown
        "global_keyprefix": REDIS_KEY_PREFIX + "celery:",
    }
if CELERY_BROKER_URL.startswith(("amqp://", "amqps://", "pyamqp://")):
    # RabbitMQ (issue 15 §2): a publish returns once the broker has confirmed the message
    # (publisher confirms), and task queues are quorum queues (replicated, durable; Celery then
    # uses per-consumer QoS and RabbitMQ's native delayed delivery for countdowns). acks_late and
    # reject_on_worker_lost below apply as with Redis; the results, limits and caches stay in Redis.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
    CELERY_TASK_DEFAULT_QUEUE_TYPE = "quorum"
    # Native delayed delivery (countdowns without holding a prefetch slot) needs a topic exchange.
    CELERY_TASK_DEFAULT_EXCHANGE_TYPE = "topic"
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = (
    {"global_keyprefix": REDIS_KEY_PREFIX + "celery:"} if CELERY_RESULT_BACKEND.startswith("redis") else {}
)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_TRACK_STARTED = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Any number of beats may run; one leads (synthorg/beat.py).
CELERY_BEAT_SCHEDULER = "synthorg.beat:LeaderScheduler"
CELERY_TASK_ALWAYS_EAGER = False
# A task is acknowledged after it ran, and re-queued if its worker dies mid-way: every task
# here is idempotent (ids in, re-fetch, safe twice), so redelivery is the safe failure.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1

# --- auth, REST API ----------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- login lockout (django-axes) ---------------------------------------------------------------
# The admin login and POST /api/v1/auth/token share one lockout: after
# SYNTHORG_LOGIN_FAILURE_LIMIT failures for one username from one client address, that pair
# is refused (429) for SYNTHORG_LOGIN_COOLOFF_MINUTES, even with the right password; every
# failure during the lockout restarts the cool-off. Attempts live in the database, so every
# gunicorn worker sees the same count. Keyed on username and address together, so nobody
# can lock the operator out from elsewhere by typing wrong passwords for that name.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out pair before any password check
    "django.contrib.auth.backends.ModelBackend",
]
# Alerts (issue 16): how often the sweep re-sends what a dead worker or a lost message left,
# and how long one sender owns an alert before the sweep may take it over.
SYNTHORG_ALERTS_SWEEP_SECONDS = env_int("SYNTHORG_ALERTS_SWEEP_SECONDS", 30)
SYNTHORG_ALERTS_LEASE_SECONDS = env_int("SYNTHORG_ALERTS_LEASE_SECONDS", 120)
AXES_ENABLED = env_bool("SYNTHORG_LOGIN_LOCKOUT", True)
AXES_FAILURE_LIMIT = env_int("SYNTHORG_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("SYNTHORG_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The client address as the audit log sees it (REMOTE_ADDR unless the peer is a trusted proxy).
AXES_CLIENT_IP_CALLABLE = "synthorg.audit.client_ip"
AXES_LOCKOUT_CALLABLE = "synthorg.login_guard.lockout_response"
AXES_VERBOSE = False  # our own audit event records each failure
if AXES_FAILURE_LIMIT < 1:
    raise ConfigurationError(f"SYNTHORG_LOGIN_FAILURE_LIMIT={AXES_FAILURE_LIMIT} must be at least 1")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Each view names the action of synthorg.permissions.ACTIONS a method needs; none = refused.
    "DEFAULT_PERMISSION_CLASSES": ["synthorg.api.permissions.ActionPermission"],
    "DEFAULT_PAGINATION_CLASS": "synthorg.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "synthorg.api.schema.SynthorgAutoSchema",
    "EXCEPTION_HANDLER": "synthorg.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    # One validation step for every JSON body: depth, NUL, lone surrogates (synthorg.parsers).
    "DEFAULT_PARSER_CLASSES": ["synthorg.parsers.JSONInputParser"],
    # JSON only: `?format=<x>` would otherwise answer an undocumented 404 on every endpoint.
    "URL_FORMAT_OVERRIDE": None,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "SynthOrg Integrations API",
    "DESCRIPTION": "Connections, credentials, OAuth tokens, webhooks, health, rate limits and the MCP catalog.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "ENUM_NAME_OVERRIDES": {},
    "DISABLE_ERRORS_AND_WARNINGS": False,
    # Swagger UI's files come from drf-spectacular-sidecar (pinned), served as our static files.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        # Plain Django views that DRF cannot introspect describe themselves here.
        "webhooks.schema.add_receiver",
    ],
}

# --- i18n, static --------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or BASE_DIR / "staticfiles")
if SYNTHORG_DEV:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if SYNTHORG_DEV
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# Serve static files under gunicorn even when collectstatic has not run (dev, tests).
WHITENOISE_USE_FINDERS = SYNTHORG_DEV or env_bool("SYNTHORG_STATIC_USE_FINDERS", False)

# --- security --------------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if not SYNTHORG_DEV and not ALLOW_INSECURE_HTTP:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    # Health probes from the orchestrator come in over plain HTTP inside the network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
# Secrets stay hidden on error pages even with DEBUG on (synthorg/debug.py).
DEFAULT_EXCEPTION_REPORTER_FILTER = "synthorg.debug.AlwaysSafeExceptionReporterFilter"
SILENCED_SYSTEM_CHECKS = env.list("SILENCED_SYSTEM_CHECKS", default=[])

# --- logging ---------------------------------------------------------------------------------
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").upper()
# `text` for a terminal, `json` for an aggregator: one object per line (synthorg/log_format.py).
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text").strip().lower() or "text"
if LOG_FORMAT not in {"text", "json"}:
    raise ConfigurationError(f"LOG_FORMAT must be text or json, not {LOG_FORMAT!r}")
if LOG_FORMAT == "json":
    # Python warnings (Celery's, Django's) become records too instead of raw lines on stderr.
    logging.captureWarnings(True)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "synthorg.log_format.ContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "synthorg.log_format.JsonLogFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json" if LOG_FORMAT == "json" else "plain",
                    "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
    },
}
