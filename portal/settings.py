"""Concordance settings: the one settings module, driven by environment variables.

Safe defaults: DEBUG is off unless asked for, there is no default secret key outside DEBUG, hosts
must be listed. The embedded default (no variables set) is SQLite plus a broker-less Celery transport
on the local file system, still with a separate worker process; production and CI point
``DATABASE_URL`` at PostgreSQL and ``CELERY_BROKER_URL`` at Redis or RabbitMQ.

Every secret can also be read from a file (``NAME_FILE``), as container and systemd secrets are.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from portal.accounts import directory_config

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str | None = None) -> str | None:
    """Read a string from NAME, or from the file named by NAME_FILE; empty counts as unset."""
    value = os.environ.get(name)
    if value:
        return value
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc}") from exc
    return default


def env_bool(name: str, default: bool) -> bool:
    """Read a boolean; fail loudly on anything but the usual spellings."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def env_int(name: str, default: int) -> int:
    """Read an integer; fail loudly when it is not one."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    """Read a comma-separated list."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", False)
VAR_DIR = Path(env_str("CONCORDANCE_VAR_DIR", str(BASE_DIR / "var")) or BASE_DIR / "var")

LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", LOOPBACK_HOSTS)


def local_secret_key(allowed_hosts: list[str], key_file: Path) -> str | None:
    """The demo/development secret in var/secret_key, for an installation that serves loopback only.

    `make demo` and `make test` write that file, so a README command copied as printed finds it. An
    installation that serves a real host name is a deployment: it must be given SECRET_KEY or
    SECRET_KEY_FILE explicitly, and gets no fallback.
    """
    if any(host not in LOOPBACK_HOSTS for host in allowed_hosts):
        return None
    try:
        return key_file.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


SECRET_KEY = env_str("SECRET_KEY") or local_secret_key(ALLOWED_HOSTS, BASE_DIR / "var" / "secret_key")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY (or SECRET_KEY_FILE) must be set"
        + (
            " for an installation that serves " + ", ".join(ALLOWED_HOSTS)
            if set(ALLOWED_HOSTS) - set(LOOPBACK_HOSTS)
            else "; `make demo` and `make test` create var/secret_key, which a local installation reads"
        )
        + "."
    )
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    # audit first: its `flush` command (which knows the immutability triggers) must win over Django's.
    "audit",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "portal.accounts",
    "portal.records",
    "portal.review",
    "portal.legal",
    "portal.administration",
    "portal.peer",
    "inference",
    "portal.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "portal.records.middleware.RequestSizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "portal.accounts.middleware.DirectoryRevalidationMiddleware",
    "portal.accounts.middleware.IdleTimeoutMiddleware",
    "portal.accounts.middleware.SecondFactorMiddleware",
    "portal.accounts.middleware.ApiOnlyAccountsMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: it turns a lockout raised during authentication into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

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
                "portal.accounts.context_processors.shell",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'concordance.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # WAL lets the web server and the worker read while the other writes; the timeout waits for a lock
    # instead of failing at once with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # A file (not :memory:) so that a real worker process can see what the tests commit.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-concordance.sqlite3")}
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth -----------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
# Directory sign-in, off by default (portal/accounts/directory_config.py, docs/directory.md): LDAP /
# Active Directory when CONCORDANCE_LDAP_SERVER_URI is set, OpenID Connect when CONCORDANCE_OIDC_ISSUER
# is. Local accounts (ModelBackend) stay for small sites, service accounts and the demo.
_LDAP_SETTINGS = directory_config.ldap_settings(os.environ, env_str)
_OIDC_SETTINGS = directory_config.oidc_settings(os.environ, env_str)
globals().update(_LDAP_SETTINGS)
globals().update(_OIDC_SETTINGS)
CONCORDANCE_LDAP_ROLE_GROUPS: dict[str, str] = _LDAP_SETTINGS.get("CONCORDANCE_LDAP_ROLE_GROUPS", {})
CONCORDANCE_OIDC_ROLE_GROUPS: dict[str, str] = _OIDC_SETTINGS.get("CONCORDANCE_OIDC_ROLE_GROUPS", {})
CONCORDANCE_OIDC_LABEL = env_str("CONCORDANCE_OIDC_LABEL", "Sign in with the hospital account")
# How often a directory (LDAP) session is re-checked with the directory; 0 = on every request.
CONCORDANCE_DIRECTORY_RECHECK_S = env_int("CONCORDANCE_DIRECTORY_RECHECK_S", 0)
# django-axes first: it refuses a locked-out username+address before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    *([directory_config.LDAP_BACKEND] if _LDAP_SETTINGS else []),
    *([directory_config.OIDC_BACKEND] if _OIDC_SETTINGS else []),
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_REDIRECT_URL_FAILURE = "/accounts/login/?sso=failed"
if _OIDC_SETTINGS:
    # Re-checks an OpenID Connect session with the provider (silently) once its ID token is older
    # than CONCORDANCE_OIDC_RECHECK_S: a leaver disabled at the provider loses access then.
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django_otp.middleware.OTPMiddleware"),
        "mozilla_django_oidc.middleware.SessionRefresh",
    )
# Login throttling: after N failures for the same username from the same address, that pair is locked
# out for the cool-off period (failures are counted in the database, so every web process agrees).
AXES_FAILURE_LIMIT = env_int("CONCORDANCE_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_int("CONCORDANCE_LOGIN_COOLOFF_S", 15 * 60) / 3600  # hours, as axes expects
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_CALLABLE = "portal.accounts.throttling.axes_username"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/lockout.html"
AXES_VERBOSE = False  # axes would log usernames and addresses; the audit log records the lockout instead
AXES_DISABLE_ACCESS_LOG = True  # successful logins are in the audit log already
# Second factor (TOTP, RFC 6238): optional per user, forced for the roles listed here.
CONCORDANCE_REQUIRE_OTP_ROLES = env_list("CONCORDANCE_REQUIRE_OTP_ROLES", [])
OTP_TOTP_ISSUER = env_str("OTP_TOTP_ISSUER", "Concordance")

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

# --- Request limits -------------------------------------------------------------------------------
# Report text is small; the biggest legitimate body is a DICOM header upload (pixel data is ignored,
# but whole files arrive). Bodies over the cap are refused with 413 before they are read.
CONCORDANCE_MAX_JSON_BYTES = env_int("CONCORDANCE_MAX_JSON_BYTES", 1_048_576)
CONCORDANCE_MAX_UPLOAD_BYTES = env_int("CONCORDANCE_MAX_UPLOAD_BYTES", 50 * 1_048_576)
CONCORDANCE_MAX_TEXT_CHARS = env_int("CONCORDANCE_MAX_TEXT_CHARS", 200_000)
DATA_UPLOAD_MAX_MEMORY_SIZE = CONCORDANCE_MAX_JSON_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1_048_576

# --- REST API -------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.accounts.tokens.ApiTokenAuthentication",  # portal-issued (hashed) and legacy keys
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "portal.core.api_errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Concordance API",
    "DESCRIPTION": "Ingestion and review API for radiology AI outputs and signed reports.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema maps every endpoint: signed-in accounts only.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Several models have a "status" field with their own choices: name each enum after its model.
    "ENUM_NAME_OVERRIDES": {
        "ReportStatusEnum": "portal.records.models.ReportStatus",
        "ModelStatusEnum": "portal.records.models.ModelStatus",
        "ReinferenceRunStatusEnum": "inference.models.RunStatus",
        "ReinferenceChunkStatusEnum": "inference.models.ChunkStatus",
        "ReinferenceResultStatusEnum": "inference.models.ResultStatus",
        "ExportStatusEnum": "portal.legal.models.ExportStatus",
        "ReviewStatusEnum": "portal.review.models.ReviewStatus",
    },
}

# --- Celery ---------------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL == "filesystem://":
    # The embedded default: messages are files in one folder shared by the web process and the worker.
    _broker_dir = VAR_DIR / "broker"
    for _folder in ("queue", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 30 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 25 * 60)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Enqueueing behind a circuit breaker (portal.core.enqueue): after this many failed sends in a row a
# web process stops trying for COOLDOWN seconds (each request then pays nothing for a broker outage),
# then lets one send try again. What is not sent is re-sent by the sweepers and reapers below.
ENQUEUE_BREAKER_FAILURES = env_int("ENQUEUE_BREAKER_FAILURES", 1)
ENQUEUE_BREAKER_COOLDOWN_SECONDS = env_int("ENQUEUE_BREAKER_COOLDOWN_SECONDS", 30)
# How long the health report (portal.core.health) waits for the broker and for workers' ping replies.
HEALTH_PROBE_TIMEOUT_SECONDS = env_int("HEALTH_PROBE_TIMEOUT_SECONDS", 1)
# A worker ping's answer is reused for this long (a ping is a broadcast that waits for replies).
HEALTH_PING_CACHE_SECONDS = env_int("HEALTH_PING_CACHE_SECONDS", 5)

# --- E-mail (peer-learning notifications; the messages hold no PHI, only a link into the portal) ----
# Django's own settings: EMAIL_BACKEND (the console by default, so the demo prints instead of failing
# on a missing mail server), EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD(_FILE),
# EMAIL_USE_TLS. CONCORDANCE_BASE_URL is the portal's address as recipients reach it, for the links.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "") or ""
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "") or ""
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "concordance@localhost")
CONCORDANCE_BASE_URL = env_str("CONCORDANCE_BASE_URL", "http://localhost:8000")

# --- Audit ----------------------------------------------------------------------------------------
AUDIT_SIGNING_KEY_FILE = Path(env_str("AUDIT_SIGNING_KEY_FILE", str(VAR_DIR / "audit-signing-key.pem")) or "")
# The demo generates a key on first use; production must provide one (never generated silently).
AUDIT_SIGNING_KEY_CREATE = env_bool("AUDIT_SIGNING_KEY_CREATE", DEBUG)

# --- Security -------------------------------------------------------------------------------------
# Automatic logoff (HIPAA 164.312(a)(2)(iii)): the session ends after this long without a request the
# user made; portal.accounts.middleware enforces it server-side, static/portal/session.js warns first.
CONCORDANCE_IDLE_TIMEOUT_S = env_int("CONCORDANCE_IDLE_TIMEOUT_S", env_int("SESSION_IDLE_SECONDS", 15 * 60))
SESSION_COOKIE_AGE = CONCORDANCE_IDLE_TIMEOUT_S
SESSION_SAVE_EVERY_REQUEST = True  # idle timeout, not absolute: HIPAA automatic logoff
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
_secure_default = not DEBUG and env_bool("CONCORDANCE_TLS", True)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", _secure_default)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", _secure_default)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _secure_default)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if _secure_default else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Content-Security-Policy (django-csp 4): scripts and styles only from our own static files, so no
# inline <script>, no on* attributes and no style="" attributes anywhere in the templates.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    },
}
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None

# --- Logging: no PHI. Request bodies and query strings are never logged. ------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "WARNING"},
        "axes": {"level": "WARNING"},  # sign-in events go to the audit log, not to the process log
        "fontTools": {"level": "WARNING"},  # fpdf2 subsets the legal PDF's fonts; its INFO lines are noise
        "django_auth_ldap": {"level": "WARNING"},  # it logs usernames at INFO; the audit log has sign-ins
        "mozilla_django_oidc": {"level": "WARNING"},
    },
}

# --- Periodic work (Celery beat runs beside the worker) ------------------------------------------
# Seconds between integration passes when no dedicated ``manage.py audit_integrator`` runs (the demo):
# events reach the Merkle tree, and so the proof viewer and the status page, within about this long.
AUDIT_INTEGRATE_SECONDS = env_int("AUDIT_INTEGRATE_SECONDS", 10)
CELERY_BEAT_SCHEDULE = {
    "audit-integrate": {"task": "audit.tasks.integrate_log", "schedule": AUDIT_INTEGRATE_SECONDS},
    "audit-checkpoint": {
        "task": "audit.tasks.write_checkpoint",
        "schedule": env_int("AUDIT_CHECKPOINT_SECONDS", 300),
    },
    "review-sweep": {
        "task": "portal.review.tasks.sweep_uncompared",
        "schedule": env_int("REVIEW_SWEEP_SECONDS", 300),
    },
    "review-stats": {
        "task": "portal.review.tasks.refresh_review_stats",
        "schedule": env_int("REVIEW_STATS_SECONDS", 600),
    },
    "audit-verify": {
        "task": "audit.tasks.verify_log",
        "schedule": env_int("AUDIT_VERIFY_SECONDS", 24 * 3600),
    },
    "legal-export-reaper": {
        "task": "portal.legal.tasks.reap_stale_exports",
        "schedule": env_int("EXPORT_REAP_SECONDS", 15),
    },
    "peer-notification-sweep": {
        "task": "portal.peer.tasks.sweep_notifications",
        "schedule": env_int("NOTIFICATION_SWEEP_SECONDS", 120),
    },
    "reinference-reap": {
        "task": "inference.tasks.reap_reinference",
        "schedule": env_int("REINFERENCE_REAP_SECONDS", 15),
    },
}

# --- Re-inference runs ----------------------------------------------------------------------------
# Studies per chunk (one task, one generation batch); how long a worker's claim on a chunk lasts without
# a renewal before the reaper hands it to another (the working process renews it every
# LEASE_RENEW_SECONDS, see portal.core.leases: a dead worker's chunk is retaken within lease + reap
# interval, a slow live one keeps it); how often a chunk may be lost with its worker before its studies
# are recorded as failed; the largest cohort one run may freeze.
REINFERENCE_CHUNK_SIZE = env_int("REINFERENCE_CHUNK_SIZE", 32)
REINFERENCE_LEASE_SECONDS = env_int("REINFERENCE_LEASE_SECONDS", 30)
LEASE_RENEW_SECONDS = env_int("LEASE_RENEW_SECONDS", 10)
# The same for a legal export build: its heartbeat_at is renewed by the building process.
EXPORT_LEASE_SECONDS = env_int("EXPORT_LEASE_SECONDS", 30)
REINFERENCE_MAX_ATTEMPTS = env_int("REINFERENCE_MAX_ATTEMPTS", 3)
REINFERENCE_MAX_COHORT = env_int("REINFERENCE_MAX_COHORT", 200_000)

# --- Model runtime (inference.runtime; see docs/runtime.md) ----------------------------------------
# One intra-op thread per session: one worker process per core scales better, and a fixed thread count
# keeps results reproducible. Providers in order of preference (CUDAExecutionProvider needs
# onnxruntime-gpu); unavailable ones are skipped. Batch = most prompts one generation call decodes
# together; running rows = most of them a static-cache graph decodes at once (the others join as rows
# finish; measured in docs/runtime.md).
INFERENCE_THREADS = env_int("INFERENCE_THREADS", 1)
INFERENCE_PROVIDERS = env_list("INFERENCE_PROVIDERS", ["CPUExecutionProvider"])
INFERENCE_BATCH_SIZE = env_int("INFERENCE_BATCH_SIZE", 32)
INFERENCE_RUNNING_ROWS = env_int("INFERENCE_RUNNING_ROWS", 8)
INFERENCE_MEMORY_BUDGET_MB = env_int("INFERENCE_MEMORY_BUDGET_MB", 64)
INFERENCE_MAX_NEW_TOKENS = env_int("INFERENCE_MAX_NEW_TOKENS", 256)
INFERENCE_GRAPH_OPTIMIZATION = env_str("INFERENCE_GRAPH_OPTIMIZATION", "all")

# HSTS preloading submits a public domain to browsers' built-in lists; an intranet portal's host name
# is not on the public internet, so the preload flag is a choice (SECURE_HSTS_PRELOAD), not a warning.
SILENCED_SYSTEM_CHECKS = ["security.W021"]
