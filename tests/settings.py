"""Settings for the test suite: a real PostgreSQL from DATABASE_URL, else an embedded one."""

import os

from tools.postgres import database_settings

SECRET_KEY = "tests-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
USE_TZ = True
TIME_ZONE = "Europe/Oslo"

_default = database_settings()
DATABASES = {
    "default": _default,
    # A second database on the same server, for contexts on several aliases.
    "other": {**_default, "NAME": f"{_default['NAME']}_other", "TEST": {"NAME": f"test_{_default['NAME']}_other"}},
}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",  # the test app has an ArrayField (Django 6.1 checks for it)
    "audit_log",
    "django_filters",
    "audit_log_admin",
    "tests.testapp",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "audit_log.middleware.RequestContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.urls"
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
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast tests

AUDIT_LOG_CONTEXT_MODEL = "testapp.AuditLogContext"
AUDIT_LOG_ENTRY_MODEL = "testapp.AuditLogEntry"
AUDIT_LOG_CONTEXT_TYPE_CHOICES = {"celery-task": "Celery task"}
# The suite runs once more with the log partitioned (.ci/run): AUDIT_LOG_PARTITIONING=month.
AUDIT_LOG_PARTITIONING = os.environ.get("AUDIT_LOG_PARTITIONING") or None
