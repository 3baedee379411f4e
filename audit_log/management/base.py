"""``AuditLoggedCommand``: a management command whose changes record the command run."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from ..context import LazyContext, activate
from ..loading import get_context_model


class AuditLoggedCommand(BaseCommand):
    """A ``BaseCommand`` whose changes are logged with the command as context.

    Subclass it instead of ``BaseCommand``. The context (``context_type =
    "management-command"``, the command's name, arguments and options) is built
    by the context model's ``create_from_management_command(...)``, which you
    can override, and applies on every PostgreSQL database while the command
    runs, whether from ``manage.py`` or ``call_command()``.
    """

    def execute(self, *args: Any, **options: Any) -> str | None:
        """Run the command inside its audit context."""
        model = get_context_model()

        def build() -> Any:
            return model.create_from_management_command(command_cls=type(self), args=args, kwargs=options)

        # Lenient: options come from a command line and must never cost a write.
        with activate(LazyContext(build, strict=False)):
            return super().execute(*args, **options)
