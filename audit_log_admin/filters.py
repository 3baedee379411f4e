"""Filtering the log: a django-filter ``FilterSet`` and the one bridge that puts it in the admin sidebar.

The admin applies every query-string parameter that no list filter claims as a
raw ``QuerySet.filter()`` lookup, and answers a bad value with a redirect to
``?e=1``. :class:`FilterSetListFilter` claims all of its ``FilterSet``'s
parameters, validates them with the ``FilterSet``'s form, shows that form (with
its errors) in the sidebar, and filters with it. So ``?transaction=abc`` shows
"Enter a whole number." next to the field, never an error page.

Use it on any ``ModelAdmin``::

    class MyAdmin(admin.ModelAdmin):
        list_filter = [FilterSetListFilter]
        filterset_class = MyFilterSet
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import django_filters
from django import forms
from django.apps import apps
from django.contrib import messages
from django.contrib.admin import ListFilter
from django.contrib.admin import site as admin_site
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Max, Min, Model, Q, QuerySet
from django.http import QueryDict
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django_filters.widgets import DateRangeWidget, SuffixedMultiWidget

from audit_log.m2m import auto_created_links
from audit_log.models import Action, context_type_labels
from audit_log.triggers import is_audited, resolve_columns

from .permissions import LogVisibility, log_visibility

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin
    from django.contrib.admin.views.main import ChangeList
    from django.http import HttpRequest

#: Largest value of a PostgreSQL ``bigint`` (transaction ids).
BIGINT_MAX = 2**63 - 1


def audited_models() -> list[type[Model]]:
    """Return every installed model whose table is audited."""
    return [model for model in apps.get_models() if is_audited(model)]


def audited_content_type_choices() -> list[tuple[str, str]]:
    """Return ``(content type id, "App | Model")`` for every audited model, sorted by label.

    Content types come from Django's cache, so after the first request this
    costs no query.
    """
    content_types = ContentType.objects.get_for_models(*audited_models())
    choices = [
        (str(content_type.pk), f"{model._meta.app_config.verbose_name} | {capfirst(model._meta.verbose_name)}")
        for model, content_type in content_types.items()
    ]
    return sorted(choices, key=lambda choice: choice[1].lower())


def known_context_types() -> list[str]:
    """Return the context types worth suggesting: the built-in ones and ``AUDIT_LOG_CONTEXT_TYPE_CHOICES``."""
    return sorted(context_type_labels())


def context_type_suggestions() -> list[tuple[str, str]]:
    """Return ``(context type, label)`` of :func:`known_context_types`: the filter takes the type, shows the label."""
    labels = context_type_labels()
    return [(value, labels[value]) for value in known_context_types()]


class FilterForm(forms.Form):
    """The form of the log's ``FilterSet``: ids that cannot clash with the rest of the admin page."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "audit-log-filter-%s")
        super().__init__(*args, **kwargs)


class DatalistTextInput(forms.TextInput):
    """A text input with suggestions (an HTML ``<datalist>``) that still accepts any value.

    Suggestions are values, or ``(value, label)`` pairs: the browser fills in
    the value and shows the label beside it.
    """

    template_name = "audit_log_admin/widgets/datalist.html"

    def __init__(self, suggestions: Any = (), attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        self.suggestions = suggestions

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        """Add the suggestions and the datalist's id to the widget's context."""
        context = super().get_context(name, value, attrs)
        suggestions = self.suggestions() if callable(self.suggestions) else self.suggestions
        list_id = f"{context['widget']['attrs'].get('id') or name}-suggestions"
        context["widget"]["attrs"]["list"] = list_id
        context["widget"]["list_id"] = list_id
        context["widget"]["suggestions"] = [
            (item[0], item[1]) if isinstance(item, tuple | list) else (item, "") for item in suggestions
        ]
        return context


class DateTimeRangeWidget(DateRangeWidget):
    """Two ``datetime-local`` inputs, ``<name>_after`` and ``<name>_before``."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        widgets = [forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M") for _ in range(2)]
        # Skip RangeWidget.__init__, which would put two plain text inputs in.
        SuffixedMultiWidget.__init__(self, widgets, attrs)


class IntegerFilter(django_filters.NumberFilter):
    """A whole-number filter (``NumberFilter`` would accept ``1.5``)."""

    field_class = forms.IntegerField


class LogEntryFilterSet(django_filters.FilterSet):
    """Filters of the log-entry changelist.

    Subclass it to add filters for your own entry fields, and set it as
    ``filterset_class`` on your ``LogEntryAdmin`` subclass. Parameter names are
    the filter names (``?model=7&action=UPDATE&changed=status``), except the
    time range: ``at_after`` and ``at_before``.
    """

    model = django_filters.ChoiceFilter(
        field_name="content_type_id",
        label=_("Model"),
        choices=audited_content_type_choices,
        empty_label=_("All models"),
    )
    action = django_filters.ChoiceFilter(choices=Action.choices, label=_("Action"), empty_label=_("All actions"))
    user = django_filters.CharFilter(
        method="filter_user",
        label=_("User"),
        help_text=_("A username. Users deleted since match their name at the time."),
    )
    at = django_filters.DateTimeFromToRangeFilter(
        method="filter_at", label=_("Date/time"), widget=DateTimeRangeWidget, help_text=_("From, to (both included).")
    )
    object_id = django_filters.CharFilter(
        label=_("Object ID"), help_text=_("The primary key. With a model, found through the per-object index.")
    )
    context_type = django_filters.CharFilter(
        label=_("Context type"), widget=DatalistTextInput(suggestions=context_type_suggestions)
    )
    path = django_filters.CharFilter(
        field_name="context__path",
        lookup_expr="startswith",
        label=_("Request path"),
        help_text=_("Requests whose path starts with this."),
    )
    changed = django_filters.CharFilter(
        method="filter_changed",
        label=_("Changed field"),
        help_text=_(
            "A field or column name, e.g. status, or a many-to-many field (its links added and removed). "
            "Creations and deletions record every field."
        ),
    )
    transaction = IntegerFilter(
        field_name="transaction_id",
        label=_("Transaction"),
        min_value=0,
        max_value=BIGINT_MAX,
        help_text=_("Everything changed in the same database transaction."),
    )
    context_id = django_filters.UUIDFilter(
        label=_("Context ID"), help_text=_("Everything done in the same request, command or context block.")
    )

    #: The admin whose changelist this filters; :class:`FilterSetListFilter` sets it.
    model_admin: ModelAdmin[Any] | None = None

    class Meta:
        form = FilterForm

    def visibility(self) -> LogVisibility:
        """Return which models' entries the request's user may see (everything without a request)."""
        if self.request is None:
            return LogVisibility()
        site = self.model_admin.admin_site if self.model_admin is not None else admin_site
        return log_visibility(self.request, site)

    def get_form_class(self) -> type[forms.Form]:
        """Build the form, its model choices narrowed to the models whose entries the user may see.

        A model the user may not see is then refused like an id that names no
        model ("Select a valid choice").
        """
        form_class: type[forms.Form] = super().get_form_class()
        visibility = self.visibility()
        model_filter = self.filters.get("model")
        field = form_class.base_fields.get("model")  # this FilterSet's own copy of the filter's field
        if model_filter is not None and isinstance(field, forms.ChoiceField) and not visibility.everything:
            choices = model_filter.extra.get("choices", ())
            field.choices = [
                (value, label)
                for value, label in (choices() if callable(choices) else choices)
                if str(value).isdigit() and visibility.shows(int(value))
            ]
        return form_class

    def filter_user(self, queryset: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        """Entries by the user with this username; by the name snapshot if no such user exists now.

        Matching the user by id uses the foreign key's index and finds the
        user's entries whatever their name was at the time.
        """
        user_model = get_user_model()
        users = list(
            user_model._default_manager.using(queryset.db)
            .filter(**{user_model.USERNAME_FIELD: value})
            .values_list("pk", flat=True)[:2]
        )
        if users:
            return queryset.filter(performed_by_id__in=users)
        return queryset.filter(performed_by_label=value)

    def filter_at(self, queryset: QuerySet[Any], name: str, value: slice) -> QuerySet[Any]:
        """Entries written in a time range (see :func:`bounded_by_id` for how it stays fast)."""
        lookups = {}
        if value.start is not None:
            lookups["at__gte"] = value.start
        if value.stop is not None:
            lookups["at__lte"] = value.stop
        return bounded_by_id(queryset, **lookups) if lookups else queryset

    def filter_changed(self, queryset: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        """Entries whose ``changes`` mention a column, given a field name, attribute name or column name.

        ``changes`` is keyed by column, so ``customer`` also matches its column
        ``customer_id``, in the selected model or, without one, in any audited
        model. The name itself always matches too: columns no longer on a
        model are still in the log. The name of a many-to-many field matches
        the entries of its table (its links added and removed).
        """
        visibility = self.visibility()
        # Only the user's models: a hidden model's field names must not turn into columns that match.
        models = [model for model in audited_models() if visibility.shows_model(model)]
        selected = self.form.cleaned_data.get("model")
        if selected:
            model = ContentType.objects.get_for_id(int(selected)).model_class()
            models = [model] if model is not None else []
        columns = {value}
        tables: set[str] = set()
        for model in models:
            columns.update(resolve_columns(model, [value])[0])
            tables.update(link.through._meta.db_table for link in auto_created_links(model) if link.field.name == value)
        matches = Q(changes__has_key=value) if len(columns) == 1 else Q(changes__has_any_keys=sorted(columns))
        if tables:
            matches |= Q(table_name__in=sorted(tables))
        return queryset.filter(matches)


def bounded_by_id(queryset: QuerySet[Any], **lookups: Any) -> QuerySet[Any]:
    """Filter the log by time (``at__gte`` ...), also bounded by the matching entries' lowest and highest id.

    The changelist reads the primary key backwards (newest first) and stops
    after one page. Filtered on time alone, PostgreSQL walks the key from the
    newest entry back to the time range: 745,000 rows for one day a year ago in
    a million-row log. The id bounds, found through the BRIN index on ``at`` by
    one query that costs as much as the range holds rows, let it start at the
    range instead: the same rows, in milliseconds.

    Args:
        queryset: The entries.
        **lookups: Lookups on ``at``.

    Returns:
        The filtered entries (none if no entry is in the range).
    """
    window = queryset.model._base_manager.using(queryset.db).filter(**lookups).order_by().values("id")
    # The LIMIT keeps the planner from turning MIN/MAX into walks along the primary key
    # (the slow plan above): it plans the range scan on its own.
    bounds = window[:BIGINT_MAX].aggregate(low=Min("id"), high=Max("id"))
    if bounds["low"] is None:
        return queryset.none()
    return queryset.filter(**lookups, id__range=(bounds["low"], bounds["high"]))


def parameter_names(filterset_class: type[django_filters.FilterSet]) -> list[str]:
    """Return every query-string parameter a ``FilterSet``'s form reads.

    A filter whose widget has several inputs (a range) reads one parameter per
    input: ``at_after`` and ``at_before`` for ``at``.
    """
    names = []
    for name, filter_ in filterset_class.base_filters.items():
        widget = filter_.field.widget
        if isinstance(widget, SuffixedMultiWidget):
            names += [widget.suffixed(name, suffix) for suffix in widget.suffixes]
        elif isinstance(widget, forms.MultiWidget):
            names += [f"{name}{suffix}" for suffix in widget.widgets_names]  # type: ignore[attr-defined]  # set in __init__; not in django-stubs
        else:
            names.append(name)
    return names


def url_without_empty_filters(request: HttpRequest, model_admin: ModelAdmin[Any]) -> str | None:
    """Return the request's URL without its empty ``FilterSet`` parameters; None if it has none.

    A GET form sends every field, so ``?user=&action=UPDATE&at_after=``
    means ``?action=UPDATE``: the same list under a longer address. The
    parameters of every :class:`FilterSetListFilter` in the admin's
    ``list_filter`` are checked; a value of only spaces is empty too (the
    form strips it). Other parameters (``q``, ``o``, ``p``, the date
    hierarchy's ...) stay as they are, in their order.

    Args:
        request: The changelist request.
        model_admin: The admin whose changelist it is.

    Returns:
        The path with the remaining query string, or None if nothing is dropped (or not a GET).
    """
    if request.method != "GET":
        return None
    names: set[str] = set()
    for list_filter in model_admin.list_filter:
        if isinstance(list_filter, type) and issubclass(list_filter, FilterSetListFilter):
            filterset_class = list_filter.filterset_class or getattr(model_admin, "filterset_class", None)
            if filterset_class is not None:
                names.update(parameter_names(filterset_class))
    kept = QueryDict(mutable=True)
    dropped = False
    for name, values in request.GET.lists():
        if name in names:
            non_empty = [value for value in values if value.strip()]
            dropped = dropped or len(non_empty) < len(values)
            values = non_empty
        if values:
            kept.setlist(name, values)
    if not dropped:
        return None
    return f"{request.path}?{kept.urlencode()}" if kept else request.path


class FilterSetListFilter(ListFilter):
    """Show a django-filter ``FilterSet`` in the admin's filter sidebar and filter the changelist with it.

    The ``FilterSet`` class is the model admin's ``filterset_class`` (or this
    class's, in a subclass). Every parameter its form reads is claimed here, so
    Django never passes it to ``QuerySet.filter()``. Invalid values are shown
    as form errors (and a message) and match no entries. To keep empty
    parameters out of the URL without JavaScript, redirect to
    :func:`url_without_empty_filters` in ``changelist_view``, as ``LogEntryAdmin`` does.
    """

    title = _("Filter entries")
    template = "audit_log_admin/filterset.html"
    filterset_class: type[django_filters.FilterSet] | None = None

    def __init__(
        self,
        request: HttpRequest,
        params: dict[str, list[str]],
        model: type[Model],
        model_admin: ModelAdmin[Any],
    ) -> None:
        super().__init__(request, params, model, model_admin)
        filterset_class = self.filterset_class or getattr(model_admin, "filterset_class", None)
        if filterset_class is None:
            raise ImproperlyConfigured(
                f"{type(model_admin).__name__} uses FilterSetListFilter but sets no filterset_class."
            )
        self.parameters = parameter_names(filterset_class)
        data = QueryDict(mutable=True)
        for name in self.parameters:
            if name in params:
                values = params.pop(name)
                values = values if isinstance(values, list) else [values]
                self.used_parameters[name] = values
                data.setlist(name, values)
        self.filterset = filterset_class(
            data=data if self.used_parameters else None,
            queryset=model._default_manager.none(),
            request=request,
        )
        # Before the form is built, so the FilterSet can fit its choices to the admin (LogEntryFilterSet does).
        self.filterset.model_admin = model_admin
        if self.filterset.is_bound and not self.filterset.is_valid():
            messages.error(request, self.error_message())

    def error_message(self) -> str:
        """Describe the invalid filter values in one message."""
        form = self.filterset.form
        problems = [
            f"{form.fields[name].label if name in form.fields else name}: {' '.join(errors)}"
            for name, errors in form.errors.items()
        ]
        return str(_("Invalid filter: %(problems)s")) % {"problems": "; ".join(problems)}

    def has_output(self) -> bool:
        """Always show the form."""
        return True

    def expected_parameters(self) -> list[str | None]:
        """Return the parameters this filter claims."""
        return list(self.parameters)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """Filter with the valid form; match nothing if any value is invalid."""
        if not self.filterset.is_bound:
            return queryset
        if not self.filterset.is_valid():
            return queryset.none()
        return self.filterset.filter_queryset(queryset)

    def choices(self, changelist: ChangeList) -> Any:
        """Yield the one "choice" the template renders: the form, and how to keep or clear the rest."""
        claimed = set(self.parameters)
        kept = QueryDict(mutable=True)
        for name, values in sorted(changelist.filter_params.items()):
            if name not in claimed:
                kept.setlist(name, values if isinstance(values, list) else [values])
        yield {
            "form": self.filterset.form,
            "hidden": [(name, value) for name, values in kept.lists() for value in values],
            "active": bool(self.used_parameters),
            "clear_query_string": "?" + kept.urlencode(),
        }
