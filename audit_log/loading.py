"""Resolve the configured context and log-entry models, like ``get_user_model()``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured

from .conf import UNSET_MODEL, conf

if TYPE_CHECKING:
    from .models import BaseContext, BaseLogEntry


def _resolve(setting: str, label: str) -> type:
    if label == UNSET_MODEL:
        raise ImproperlyConfigured(f"{setting} is not set: set it to 'app_label.ModelName' of your model.")
    try:
        return apps.get_model(label, require_ready=False)
    except ValueError:
        raise ImproperlyConfigured(f"{setting} must be of the form 'app_label.ModelName', not {label!r}.") from None
    except LookupError:
        # TransactionTestCase.available_apps and override_settings(INSTALLED_APPS)
        # narrow the registry for a while; a model registered before is still
        # the one the triggers write to.
        app_label, _, model_name = label.partition(".")
        registered = apps.all_models.get(app_label, {}).get(model_name.lower())
        if registered is not None:
            return registered
        raise ImproperlyConfigured(
            f"{setting} refers to model {label!r}, which is not installed: check the name and INSTALLED_APPS."
        ) from None


def get_context_model() -> type[BaseContext]:
    """Return the model named by ``AUDIT_LOG_CONTEXT_MODEL``.

    Raises:
        ImproperlyConfigured: If the setting is missing, malformed or names no
            installed model.
    """
    return _resolve("AUDIT_LOG_CONTEXT_MODEL", conf.context_model)


def get_log_entry_model() -> type[BaseLogEntry]:
    """Return the model named by ``AUDIT_LOG_ENTRY_MODEL``.

    Raises:
        ImproperlyConfigured: If the setting is missing, malformed or names no
            installed model.
    """
    return _resolve("AUDIT_LOG_ENTRY_MODEL", conf.entry_model)
