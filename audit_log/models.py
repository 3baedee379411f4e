"""Abstract models: the context, the log entry, and the base class of audited models."""

from __future__ import annotations

import datetime
import decimal
import functools
import json
import operator
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self, TypeVar

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.functions import Cast
from django.http import HttpRequest
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _

from .conf import conf
from .fields import AuditLogsField, ContentTypeId
from .indexes import BrinIndex, DeletionsIndex
from .request_info import request_details
from .routing import for_display
from .serialization import jsonable
from .sql import UNKNOWN_CONTEXT_TYPE

if TYPE_CHECKING:
    from django.core.management.base import BaseCommand

    from .history import Reverted

#: ``context_type`` the request middleware records.
HTTP_REQUEST = "http-request"
#: ``context_type`` that ``AuditLoggedCommand`` records.
MANAGEMENT_COMMAND = "management-command"
#: ``context_type`` of the writes of ``revert()`` and ``restore()`` (``audit_log.history_write``).
REVERT = "revert"
RESTORE = "restore"

#: Display labels of the built-in context types; ``AUDIT_LOG_CONTEXT_TYPE_CHOICES`` overrides or adds to them.
BUILTIN_CONTEXT_TYPE_LABELS: dict[str, Any] = {
    HTTP_REQUEST: _("Request"),
    MANAGEMENT_COMMAND: _("Management command"),
    UNKNOWN_CONTEXT_TYPE: _("No context"),
    REVERT: _("Revert"),
    RESTORE: _("Restore"),
}


def context_type_labels() -> dict[str, str]:
    """Return the display label of every known context type, in the active language.

    The built-in types' labels, then ``AUDIT_LOG_CONTEXT_TYPE_CHOICES``,
    which may relabel them too. Read on every call, so ``override_settings`` works.
    """
    labels = {value: str(label) for value, label in BUILTIN_CONTEXT_TYPE_LABELS.items()}
    labels.update(conf.context_type_choices)
    return labels


def context_type_label(context_type: str) -> str:
    """Return the display label of ``context_type``; an unlisted type is shown as it is stored."""
    return context_type_labels().get(context_type, context_type)


def uuid7() -> uuid.UUID:
    """Return a time-ordered UUID (RFC 9562, version 7).

    Context ids grow with time, so the log's BRIN index on ``context_id``
    finds one request's entries without a B-tree on the write path.
    """
    milliseconds = time.time_ns() // 1_000_000
    random = int.from_bytes(os.urandom(10), "big")
    value = (milliseconds & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((random >> 62) & 0xFFF) << 64
    value |= 0b10 << 62  # variant
    value |= random & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def user_label(user: Any) -> str:
    """Return a readable snapshot of ``user`` that outlives the user row."""
    if user is None or not getattr(user, "is_authenticated", False):
        return ""
    get_username = getattr(user, "get_username", None)
    label = get_username() if callable(get_username) else str(user)
    return str(label)[:255]


class ExactJSONDecoder(json.JSONDecoder):
    """Decode JSON numbers with a fraction as ``Decimal``, so logged values are exact.

    ``json.loads`` would turn a logged ``123456789012345.12345`` into a float
    (``123456789012345.12``); an audit log must give back what was stored.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("parse_float", decimal.Decimal)
        super().__init__(*args, **kwargs)


_EXACT_DECODER = ExactJSONDecoder()


def exact_json_decoder(**kwargs: Any) -> json.JSONDecoder:
    """Return an :class:`ExactJSONDecoder`; the shared one when no options are asked for.

    ``JSONField`` calls its ``decoder`` for every value it reads, and building
    a decoder costs more than decoding a log entry's ``changes``.
    """
    return ExactJSONDecoder(**kwargs) if kwargs else _EXACT_DECODER


def _fast_decoder(decoder: Any) -> json.JSONDecoder | None:
    if decoder is None:
        return json.JSONDecoder()
    if decoder is exact_json_decoder:
        return _EXACT_DECODER
    return None  # another decoder: leave it to Django


class UndecodableJSON(str):
    """The text of a stored JSON value that Python cannot decode, as PostgreSQL returned it.

    ``jsonb`` holds values Python's ``json`` cannot read back: arrays or objects
    nested deeper than the interpreter's recursion limit (PostgreSQL takes
    thousands of levels, e.g. written by raw SQL), or integers longer than
    Python's limit on digits (a ``numeric`` column's value). ``LogJSONField``
    returns this instead of raising, so a page that shows the row still
    renders; code that expects decoded JSON sees a string and can test for
    this class to show the text as stored. Never save it back: it would be
    written as a JSON string.
    """

    __slots__ = ()


class LogJSONField(models.JSONField):
    """A ``JSONField`` that decodes what PostgreSQL returns with its decoder's scanner, directly.

    A log page reads two JSON values per entry. PostgreSQL returns ``jsonb``
    as compact text with nothing around the value, and ``json.loads()``
    spends more on its per-call checks than on decoding a small entry; the
    scanner alone gives the same result (about 8% of a 50-entry history
    fetch, measured). Anything else (padding, trailing data, bad JSON, a
    decoder of your own) takes Django's way. Migrations see a plain
    ``JSONField``, so using it needs none.

    Reading never raises: text that cannot be decoded comes back as
    :class:`UndecodableJSON`.
    """

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        """Decode ``value`` in one scanner call when it is plain JSON text, else as Django does.

        Returns:
            The decoded value; :class:`UndecodableJSON` (the text as stored)
            if it is nested too deeply or holds a number too long for Python.
        """
        try:
            if type(value) is str:
                decoder = self._scanner_decoder
                if decoder is not None:
                    try:
                        result, end = decoder.scan_once(value, 0)  # type: ignore[attr-defined]  # set by JSONDecoder.__init__
                    except (StopIteration, ValueError):
                        pass  # not JSON from the first character: Django's way says why
                    else:
                        if end == len(value):
                            return result
            return super().from_db_value(value, expression, connection)
        except (RecursionError, ValueError):
            # Too deep for the decoder's recursion, or an integer past
            # sys.get_int_max_str_digits(): one row must not break every page that lists it.
            return UndecodableJSON(value if isinstance(value, str) else repr(value))

    @cached_property
    def _scanner_decoder(self) -> json.JSONDecoder | None:
        return _fast_decoder(self.decoder)

    def deconstruct(self) -> Any:
        """Describe the field as Django's ``JSONField``: decoding is no part of the schema."""
        name, _, args, kwargs = super().deconstruct()
        return name, "django.db.models.JSONField", args, kwargs


class ContextFields(models.Model):
    """Who and where: the fields a context and every log entry share."""

    context_type = models.CharField(max_length=64)
    context = LogJSONField(default=dict, encoder=DjangoJSONEncoder)
    # No database foreign key: deleting a user must not delete or rewrite the log.
    performed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    performed_by_label = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        abstract = True


class BaseContext(ContextFields):
    """Who and where: the context copied onto every log entry written inside it.

    Subclass it in your app with ``Meta.managed = False`` and name the subclass
    in ``AUDIT_LOG_CONTEXT_MODEL``. It never has a table: its fields define the
    record the triggers read from the context each write carries (a JSON
    object in the transaction-local setting ``audit_log.context``, see
    ``audit_log.context``); every concrete field must also exist, with the
    same column name, on the log-entry model (a system check verifies this). Add fields to
    both models to record more, and override :meth:`create_from_request` or
    :meth:`create_from_management_command` to fill them.
    """

    context_id = models.UUIDField(primary_key=True, default=uuid7, editable=False)

    class Meta:
        abstract = True

    @classmethod
    def create_from_request(cls, request: HttpRequest) -> Self:
        """Build the context of an HTTP request (not saved: the triggers read it lazily).

        Called by ``RequestContextMiddleware`` at the request's first write, so
        requests that write nothing pay nothing. What it records from the
        request is cleaned and capped (``audit_log.request_info``): nothing a
        client sends can make it raise. Values your override adds are cut to
        their field's ``max_length``.

        Args:
            request: The current request.

        Returns:
            An unsaved context instance.
        """
        user = getattr(request, "user", None)
        if user is not None and not user.is_authenticated:
            user = None
        return cls(
            context_type=HTTP_REQUEST,
            performed_by=user,
            performed_by_label=user_label(user),
            context=request_details(request),
        )

    @classmethod
    def create_from_management_command(
        cls,
        command_cls: type[BaseCommand],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
    ) -> Self:
        """Build the context of a management command run.

        Args:
            command_cls: The command's class.
            args: Its positional arguments.
            kwargs: Its options; values that JSON cannot hold (files, dates,
                paths ...) are converted to text.

        Returns:
            An unsaved context instance.
        """
        return cls(
            context_type=MANAGEMENT_COMMAND,
            context={
                "command": command_name(command_cls),
                "args": jsonable(list(args)),
                "kwargs": jsonable({key: value for key, value in kwargs.items() if key not in {"stdout", "stderr"}}),
            },
        )


def command_name(command_cls: type[BaseCommand]) -> str:
    """Return the name a command is run by (its module's last component)."""
    return command_cls.__module__.rsplit(".", 1)[-1]


class Action(models.TextChoices):
    """What a log entry records. Stored values are the SQL verbs."""

    INSERT = "INSERT", _("Created")
    UPDATE = "UPDATE", _("Changed")
    DELETE = "DELETE", _("Deleted")


class LogEntryQuerySet(models.QuerySet[Any]):
    """Query helpers for log entries."""

    def for_object(self, obj: models.Model) -> Self:
        """Entries of one object (of its concrete model)."""
        content_type = ContentType.objects.db_manager(self.db).get_for_model(obj)
        return self.filter(content_type=content_type, object_id=str(obj.pk))

    def for_model(self, model: type[models.Model]) -> Self:
        """Entries of every object of ``model``."""
        return self.filter(content_type=ContentType.objects.db_manager(self.db).get_for_model(model))

    def changed(self, column: str) -> Self:
        """Entries whose ``changes`` mention ``column`` (inserts and deletes mention all)."""
        return self.filter(changes__has_key=column)

    def same_transaction_as(self, entry: BaseLogEntry) -> Self:
        """Entries written in the same database transaction as ``entry``."""
        return self.filter(transaction_id=entry.transaction_id)

    def from_read_database(self) -> Self:
        """These entries, read from ``AUDIT_LOG_READ_DATABASE`` when it is set and no ``using()`` chose a database.

        For display: a replica may lag behind the primary, so code that must
        see the newest entries (or acts on what it reads) reads without it.
        See ``audit_log.routing``.
        """
        return for_display(self)


class BaseLogEntry(ContextFields):
    """One INSERT, UPDATE or DELETE of one row, written by the triggers.

    Subclass it in your app and name the subclass in ``AUDIT_LOG_ENTRY_MODEL``.
    ``object_id`` is text, so integer, bigint, UUID and text primary keys share
    one table. Every concrete field of the context model is copied here too.
    Nothing here has a database foreign key: deleting a user, a content type or
    the logged object never deletes or rewrites an entry.
    """

    id = models.BigAutoField(primary_key=True)
    content_type = models.ForeignKey(
        ContentType,
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,  # covered by the (content_type, object_id, id) index
        related_name="+",
    )
    # Collation "C": the per-object index compares bytes, not locale rules.
    object_id = models.TextField(db_collation="C")
    log_object = GenericForeignKey("content_type", "object_id")
    table_name = models.CharField(max_length=255)
    action = models.CharField(max_length=6, choices=Action.choices)
    at = models.DateTimeField()
    changes = LogJSONField(
        encoder=DjangoJSONEncoder,
        decoder=exact_json_decoder,  # type: ignore[arg-type]  # Django takes any callable; the stubs want a class
    )
    transaction_id = models.BigIntegerField()

    # Copied from the context, with the fields of ContextFields.
    context_id = models.UUIDField(null=True, blank=True)

    objects = LogEntryQuerySet.as_manager()

    class Meta:
        abstract = True
        ordering = ("-id",)
        verbose_name = _("audit log entry")
        verbose_name_plural = _("audit log entries")
        # Every index costs every audited write, so only the per-object history
        # (and the user filter, through the foreign key's index) get B-trees.
        # Time, transaction ids and (time-ordered) context ids grow with the
        # log, so BRIN indexes find them for a fraction of a B-tree's write
        # cost and size. (Not autosummarize: it made bulk inserts ~2x slower;
        # autovacuum summarizes new ranges of an insert-only table anyway.)
        # minmax_multi: new entries reuse free space VACUUM found in old pages,
        # and with one min-max interval per range each such entry would widen
        # its old range to "now" (see BrinIndex).
        indexes = [
            models.Index(fields=["content_type", "object_id", "id"]),
            BrinIndex(fields=["at"], pages_per_range=32, minmax_multi=True),
            BrinIndex(fields=["transaction_id"], pages_per_range=32, minmax_multi=True),
            BrinIndex(fields=["context_id"], pages_per_range=32, minmax_multi=True),
            # Only DELETE entries: the "Recover deleted" list, newest first per model.
            DeletionsIndex(fields=["content_type", "id"]),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.table_name} #{self.object_id} ({self.at:%Y-%m-%d %H:%M:%S})"

    @property
    def context_type_label(self) -> str:
        """Display label of ``context_type``, e.g. "Request" (see :func:`context_type_label`)."""
        return context_type_label(self.context_type)

    def state_before(self) -> models.Model | None:
        """Return the object this entry changed as it was just before, rebuilt from the log.

        See ``audit_log.history.state_before``: an unsaved instance whose
        ``_audit_state`` tells what could not be rebuilt; None before the
        object's INSERT.
        """
        from . import history

        state = history.state_before(self)
        return state.instance if state is not None else None

    def state_after(self) -> models.Model | None:
        """Return the object this entry changed as the entry left it (None after a DELETE)."""
        from . import history

        state = history.state_after(self)
        return state.instance if state is not None else None

    def revert(self, *, performed_by: Any = None, context: Mapping[str, Any] | None = None) -> Reverted:
        """Bring the object back to its state before this entry (``audit_log.history.revert``)."""
        from . import history

        return history.revert(self, performed_by=performed_by, context=context)

    def restore(self, *, performed_by: Any = None, context: Mapping[str, Any] | None = None) -> Reverted:
        """Insert the object this DELETE entry removed again, with its key (``audit_log.history.restore``)."""
        from . import history

        return history.restore(self, performed_by=performed_by, context=context)


_M = TypeVar("_M", bound=models.Model)


class AuditLoggedQuerySet(models.QuerySet[_M]):
    """Query helpers for audited models: ``AuditLoggedModel.objects`` is built from it.

    A model that declares a manager of its own keeps these helpers by building
    it from a queryset that inherits this one::

        class InvoiceQuerySet(AuditLoggedQuerySet):
            def unpaid(self):
                return self.exclude(status="paid")

        class Invoice(AuditLoggedModel):
            objects = InvoiceQuerySet.as_manager()
    """

    def audited(self, *args: models.Q, **lookups: Any) -> Self:
        """Objects with at least one log entry matching the lookups, each object once.

        ``Invoice.objects.audited(action="UPDATE", performed_by=user)`` are
        the invoices that ``user`` ever changed. Unlike
        ``filter(audit_logs__action="UPDATE")``, which joins the log and
        returns an object once per matching entry, this is a correlated
        ``EXISTS``: one query, each object once, and every object's probe is
        a lookup in the log's per-object index ``(content_type, object_id, id)``.
        The entries of a multi-table-inheritance child include those of its
        parents' tables (same key), as its History tab does.

        It is one statement on the model's database, like any query of the
        model, not on ``AUDIT_LOG_READ_DATABASE``: the objects it returns may
        be saved, which a replica refuses. ``.using("replica")`` runs it there.

        Args:
            *args: ``Q`` objects on the log-entry model.
            **lookups: Lookups on the log-entry model (``action``,
                ``performed_by``, ``at__gte``, ``context_type``, ``changes__has_key`` ...).

        Returns:
            The objects that have such an entry.
        """
        return self.filter(models.Exists(self.audit_log_entries(*args, **lookups)))

    def audit_log_entries(self, *args: models.Q, **lookups: Any) -> models.QuerySet[Any]:
        """Return the log entries of the outer query's object (``OuterRef("pk")``) that match the lookups.

        The subquery :meth:`audited` tests with ``EXISTS``; annotate with it,
        e.g. ``Subquery(Invoice.objects.audit_log_entries().values("at")[:1])``
        for the newest entry's time (entries are ordered newest first).

        Args:
            *args: ``Q`` objects on the log-entry model.
            **lookups: Lookups on the log-entry model.

        Returns:
            A queryset of log entries that refers to the outer query's ``pk``.
        """
        model = self.model._meta.concrete_model or self.model
        field = next((f for f in model._meta.get_fields() if isinstance(f, AuditLogsField)), None)
        if field is not None and not isinstance(field.related_model, str):
            entry_model: type[models.Model] = field.related_model
        else:
            from .loading import get_log_entry_model  # the entry model is defined after this module

            entry_model = get_log_entry_model()
        # The object's own table and its multi-table-inheritance parents' tables log under their own models.
        content_types = [ContentTypeId.for_model(m) for m in (model, *model._meta.get_parent_list())]
        object_id = entry_model._meta.get_field("object_id")
        key: Any = models.OuterRef("pk")
        if isinstance(object_id, models.CharField | models.TextField):
            # The triggers store pk::text (a UUID's canonical form, an integer's digits): compare the same
            # text. The log column's "C" collation wins over the cast's default one, so the index is used.
            key = Cast(key, output_field=models.TextField())
        # OR, not __in: an __in list must hold plain values, and these are expressions (no query of their own).
        tables = functools.reduce(operator.or_, (models.Q(content_type_id=ct) for ct in content_types))
        return entry_model._base_manager.filter(tables, *args, object_id=key, **lookups)


class AuditLoggedModel(models.Model):
    """Base class of audited models: every INSERT, UPDATE and DELETE of the table is logged.

    Adds ``audit_logs``, the reverse generic relation to the log entries, and
    ``objects``, a manager with the helpers of :class:`AuditLoggedQuerySet`
    (``Invoice.objects.audited(action="UPDATE")``). A model that declares its
    own ``objects`` replaces it: build yours from a subclass of
    ``AuditLoggedQuerySet`` to keep them.
    """

    audit_logs = AuditLogsField()

    objects = AuditLoggedQuerySet.as_manager()

    class Meta:
        abstract = True

    @classmethod
    def audit_state(cls, pk: Any, *, at: datetime.datetime, using: str | None = None) -> Self | None:
        """Return the object with key ``pk`` as it was at ``at``, rebuilt from the log; deleted ones too.

        See ``audit_log.history.state_at``: an unsaved instance whose
        ``_audit_state`` tells what could not be rebuilt; None if no such
        object existed then.
        """
        from . import history

        state = history.state_at(cls, pk, at, using=using)
        return state.instance if state is not None else None  # type: ignore[return-value]  # built by cls.from_db


# The seal chain's concrete models, registered with the app along with this module.
from .seal_models import Seal, SealChunk  # noqa: E402, F401
