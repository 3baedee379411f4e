"""Settings of the sandbox: a shop whose models are audit-logged, and the audit-log admin.

The database is the one ``DATABASE_URL`` names. Without it, an embedded
PostgreSQL from PyPI keeps its data in ``.pgdata/`` at the repository root
(git-ignored; ``SANDBOX_PGDATA`` picks another folder) and the demo data lives
in its ``sandbox`` database, which ``python -m sandbox`` creates.
"""

import os
from pathlib import Path

from tools.postgres import database_settings

ROOT = Path(__file__).resolve().parent.parent
PGDATA = Path(os.environ.get("SANDBOX_PGDATA") or ROOT / ".pgdata")

# A local demo: never deploy these settings.
SECRET_KEY = "sandbox-insecure-demo-key-do-not-deploy"
DEBUG = os.environ.get("SANDBOX_DEBUG", "1") == "1"
# "testserver": seed_demo drives the admin with Django's test client.
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]

DATABASES = {"default": database_settings(data_dir=PGDATA)}
if not os.environ.get("DATABASE_URL"):
    DATABASES["default"]["NAME"] = "sandbox"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # The first shop migration has an ArrayField (products' tags before they became a table).
    "django.contrib.postgres",
    "audit_log",
    "django_filters",
    "audit_log_admin",
    "sandbox.history",
    "sandbox.shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After AuthenticationMiddleware, so the context knows the user.
    "audit_log.middleware.RequestContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "sandbox.urls"
WSGI_APPLICATION = "sandbox.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUDIT_LOG_CONTEXT_MODEL = "history.AuditLogContext"
AUDIT_LOG_ENTRY_MODEL = "history.AuditLogEntry"
# Labels for the context types seed_demo records besides requests and commands.
AUDIT_LOG_CONTEXT_TYPE_CHOICES = {"celery-task": "Celery task", "data-fix": "Data fix"}
