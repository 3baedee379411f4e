"""Many-to-many fields of audited models: which auto-created tables log their links, and under whom.

A many-to-many field with no ``through=`` model of its own gets a table Django
creates and names (``shop_product_tags``), with an "auto-created" model
Django builds for it. Adding a tag (``product.tags.add(tag)``) inserts a row
there and leaves the product's table alone, so the link is logged by that
table's triggers, and **under the model that declares the field**: the
entry's content type is the product's, its ``object_id`` the value of the row's
key to the product, its ``table_name`` the link table, and ``changes`` the
link row (``{"id": 5, "product_id": 7, "tag_id": 3}``; INSERT for a link
added, DELETE for one removed). So an object's history holds its own changes
and its links' together.

An explicit ``through=`` model is an ordinary model: audited like any other
when it has an ``AuditLogsField``. Nothing here applies to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import ManyToManyField, Model

from .fields import AuditLogsField


@dataclass(frozen=True)
class ThroughLink:
    """An auto-created many-to-many table, seen from the model that declares its field.

    Attributes:
        parent: The model declaring the field (``Product`` for ``Product.tags``).
        field: The many-to-many field.
    """

    parent: type[Model]
    field: ManyToManyField[Any, Any]

    @property
    def through(self) -> type[Model]:
        """The auto-created model of the field's table."""
        through = self.field.remote_field.through
        assert isinstance(through, type)  # resolved: the field belongs to a rendered model
        return through

    @property
    def parent_field_name(self) -> str:
        """Name of the table's foreign key to the declaring model (``from_...`` when the field refers to it)."""
        return str(self.field.m2m_field_name())

    @property
    def target_field_name(self) -> str:
        """Name of the table's foreign key to the related model."""
        return str(self.field.m2m_reverse_field_name())


def through_link(model: type[Model]) -> ThroughLink | None:
    """Return the field whose auto-created table ``model`` is, or None for any other model.

    Args:
        model: Any model (current or historical).

    Returns:
        The link, found on the model named by ``model._meta.auto_created``.
    """
    parent = model._meta.auto_created
    if not isinstance(parent, type):
        return None
    label = model._meta.label_lower
    for field in parent._meta.local_many_to_many:
        through = field.remote_field.through
        # Labels, not identity: a historical registry may hold another class of the same model.
        if isinstance(through, type) and through._meta.label_lower == label:
            return ThroughLink(parent, field)
    return None


def auto_created_links(model: type[Model]) -> list[ThroughLink]:
    """Return the many-to-many fields ``model`` declares whose tables Django creates (no ``through=``)."""
    links = []
    for field in model._meta.local_many_to_many:
        through = field.remote_field.through
        if isinstance(through, type) and through._meta.auto_created:
            links.append(ThroughLink(model, field))
    return links


def link_audit(link: ThroughLink, parent_audit: AuditLogsField | None) -> AuditLogsField | None:
    """Return the options that audit a many-to-many table: those of its declaring model, unless they opt out.

    Args:
        link: The many-to-many field and the model declaring it.
        parent_audit: The options auditing the declaring model, or None if it is not audited.

    Returns:
        ``parent_audit``, or None if the model is not audited or names the field in ``m2m_exclude``.
    """
    if parent_audit is None or link.field.name in parent_audit.m2m_exclude:
        return None
    return parent_audit
