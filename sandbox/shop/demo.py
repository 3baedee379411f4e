"""Demo users, and an admin "browser" that fills in and submits admin forms through Django's test client.

seed_demo makes its changes the way people do, through the admin pages, so
each change is logged with a real request as its context: the user, the
path, the method, and one transaction per submitted form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from html import unescape
from html.parser import HTMLParser

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db.models import Model
from django.test import Client
from django.urls import reverse

from audit_log.loading import get_log_entry_model

#: The demo superuser, and the password every demo user gets.
ADMIN_USERNAME = "admin"
DEMO_PASSWORD = "sandbox"

#: Staff users: username -> (first name, last name, their desk's address).
STAFF = {
    "alice": ("Alice", "Andersen", "10.0.1.21"),  # catalog
    "bob": ("Bob", "Berg", "10.0.1.34"),  # customer service
    "carol": ("Carol", "Christensen", "10.0.2.15"),  # warehouse
    "dave": ("Dave", "Dahl", "10.0.1.77"),  # a summer temp; his account is deleted at the end
}
STAFF_GROUP = "Shop staff"


def ensure_superuser(username: str = ADMIN_USERNAME, password: str = DEMO_PASSWORD) -> Model:
    """Create the demo superuser, or make sure it is active, a superuser, and has ``password``."""
    user_model = get_user_model()
    user, created = user_model._default_manager.get_or_create(
        **{user_model.USERNAME_FIELD: username}, defaults={"email": f"{username}@example.com"}
    )
    fields = []
    if not (user.is_active and user.is_staff and user.is_superuser):
        user.is_active = user.is_staff = user.is_superuser = True
        fields += ["is_active", "is_staff", "is_superuser"]
    if created or not user.check_password(password):
        user.set_password(password)
        fields.append("password")
    if fields:
        user.save(update_fields=None if created else fields)
    return user


def ensure_staff(username: str) -> Model:
    """Create a staff user of the shop (in the "Shop staff" group) unless it exists."""
    first_name, last_name, _ = STAFF[username]
    user_model = get_user_model()
    user = user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}).first()
    if user is None:
        user = user_model(
            **{user_model.USERNAME_FIELD: username},
            first_name=first_name,
            last_name=last_name,
            email=f"{username}@example.com",
            is_staff=True,
        )
        user.set_password(DEMO_PASSWORD)
        user.save()
    user.groups.add(staff_group())
    return user


def staff_group() -> Group:
    """Return the group that may manage the shop and read the audit log."""
    group, _ = Group.objects.get_or_create(name=STAFF_GROUP)
    shop = ContentType.objects.filter(app_label="shop")
    entry_type = ContentType.objects.get_for_model(get_log_entry_model())
    permissions = Permission.objects.filter(content_type__in=shop) | Permission.objects.filter(
        content_type=entry_type, codename__startswith="view_"
    )
    group.permissions.add(*permissions)
    return group


def admin_url(obj_or_model, view: str = "change") -> str:
    """Return the admin URL of an object (``change``, ``history``, ``delete``) or a model (``changelist``, ``add``)."""
    opts = obj_or_model._meta
    name = f"admin:{opts.app_label}_{opts.model_name}_{view}"
    if view in {"changelist", "add"}:
        return reverse(name)
    return reverse(name, args=[obj_or_model.pk])


class DemoError(RuntimeError):
    """An admin form was refused: the demo data no longer fits the admin."""


class FormParser(HTMLParser):
    """Collect what a browser would submit from one ``<form id=...>`` of a page.

    Text inputs, hidden inputs, checked checkboxes and radios, selected options
    (the first one if none is selected) and textareas; buttons, files and
    disabled controls are left out, as are formset templates (``__prefix__``).
    """

    def __init__(self, form_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.found = False
        self.inside = False
        self.fields: list[tuple[str, str]] = []
        self._select: tuple[str, bool] | None = None
        self._options: list[tuple[str, bool]] = []
        self._option: dict[str, object] | None = None
        self._textarea: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form":
            if attributes.get("id") == self.form_id:
                self.found = self.inside = True
            return
        if not self.inside or "disabled" in attributes:
            return
        name = attributes.get("name") or ""
        if tag == "input":
            kind = (attributes.get("type") or "text").lower()
            if not name or kind in {"submit", "button", "image", "reset", "file"}:
                return
            if kind in {"checkbox", "radio"}:
                if "checked" in attributes:
                    self._add(name, attributes.get("value") or "on")
            else:
                self._add(name, attributes.get("value") or "")
        elif tag == "select":
            self._select = (name, "multiple" in attributes)
            self._options = []
        elif tag == "option" and self._select is not None:
            self._option = {"value": attributes.get("value"), "selected": "selected" in attributes}
            self._text = []
        elif tag == "textarea":
            self._textarea = name
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._textarea is not None or self._option is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self.inside:
            self.inside = False
        elif tag == "option" and self._option is not None:
            value = self._option["value"]
            self._options.append(
                (str(value) if value is not None else "".join(self._text).strip(), bool(self._option["selected"]))
            )
            self._option = None
        elif tag == "select" and self._select is not None:
            name, multiple = self._select
            selected = [value for value, chosen in self._options if chosen]
            if not selected and not multiple and self._options:
                selected = [self._options[0][0]]
            for value in selected:
                self._add(name, value)
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            # Browsers drop one newline right after <textarea>.
            self._add(self._textarea, "".join(self._text).removeprefix("\r\n").removeprefix("\n"))
            self._textarea = None

    def _add(self, name: str, value: str) -> None:
        if name and "__prefix__" not in name:
            self.fields.append((name, value))


def form_fields(html: str, form_id: str) -> list[tuple[str, str]]:
    """Return the ``(name, value)`` pairs a browser would submit from the form ``form_id`` of ``html``."""
    parser = FormParser(form_id)
    parser.feed(html)
    parser.close()
    if not parser.found:
        raise DemoError(f"The page has no form #{form_id}.")
    return parser.fields


Changes = Mapping[str, str | Iterable[str] | None]


class AdminBrowser:
    """One staff member using the admin: open a page, change some of its form's fields, press Save.

    Args:
        user: Who is logged in.
        remote_addr: The address their requests come from.
    """

    def __init__(self, user: Model, remote_addr: str = "127.0.0.1") -> None:
        self.user = user
        self.client = Client(REMOTE_ADDR=remote_addr)
        self.client.force_login(user)

    def submit(self, url: str, form_id: str, changes: Changes, button: str = "_save") -> str:
        """Load ``url``, apply ``changes`` to its form and submit it; return where the admin redirects to.

        ``changes`` maps field names to a value, a list of values, or None to
        leave the field out (an unchecked checkbox).

        Raises:
            DemoError: If the admin did not accept the form.
        """
        page = self.client.get(url)
        if page.status_code != 200:
            raise DemoError(f"GET {url} answered {page.status_code}.")
        data: dict[str, list[str]] = {}
        for name, value in form_fields(page.content.decode(), form_id):
            data.setdefault(name, []).append(value)
        for name, value in changes.items():
            if value is None:
                data.pop(name, None)
            elif isinstance(value, str):
                data[name] = [value]
            else:
                data[name] = [str(item) for item in value]
        data[button] = ["Save"]
        return self.post(url, data)

    def post(self, url: str, data: Mapping[str, object]) -> str:
        """POST ``data`` to ``url`` and return the redirect target.

        Raises:
            DemoError: If the admin answered anything but a redirect.
        """
        response = self.client.post(url, data)
        if response.status_code != 302:
            raise DemoError(f"POST {url} as {self.user} was refused ({response.status_code}): {errors(response)}")
        return response["Location"]

    def add(self, model: type[Model], changes: Changes) -> str:
        """Fill in the model's add form and save it."""
        return self.submit(admin_url(model, "add"), f"{model._meta.model_name}_form", changes)

    def change(self, obj: Model, changes: Changes) -> str:
        """Change fields on the object's change form and save it."""
        return self.submit(admin_url(obj), f"{obj._meta.model_name}_form", changes)

    def delete(self, obj: Model) -> str:
        """Confirm the object's deletion page."""
        return self.post(admin_url(obj, "delete"), {"post": "yes"})

    def revert(self, obj: Model, entry: Model) -> str:
        """Open "Revert to before this change" for ``entry`` from the object's History tab, and confirm it."""
        opts = obj._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_audit_revert", args=[obj.pk, entry.pk])
        page = self.client.get(url)
        if page.status_code != 200:
            raise DemoError(f"GET {url} answered {page.status_code}.")
        return self.post(url, {"post": "yes"})

    def action(self, model: type[Model], action: str, objects: Iterable[Model]) -> str:
        """Run a changelist action on ``objects``."""
        data = {"action": action, "_selected_action": [str(obj.pk) for obj in objects], "index": "0"}
        return self.post(admin_url(model, "changelist"), data)

    def list_edit(self, model: type[Model], values: Mapping[Model, Mapping[str, str]], query: str = "") -> str:
        """Change ``list_editable`` fields of several rows of the changelist and save them at once."""
        url = admin_url(model, "changelist") + query
        page = self.client.get(url)
        rows = {
            value: name.removesuffix("-id")
            for name, value in form_fields(page.content.decode(), "changelist-form")
            if re.fullmatch(r"form-\d+-id", name)
        }
        changes = {}
        for obj, fields in values.items():
            prefix = rows.get(str(obj.pk))
            if prefix is None:
                raise DemoError(f"{obj} is not on the changelist {url}.")
            changes.update({f"{prefix}-{name}": value for name, value in fields.items()})
        return self.submit(url, "changelist-form", changes)


def errors(response) -> str:
    """The admin's error messages on a page, as one line of text."""
    text = response.content.decode(errors="replace")
    found = re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', text, flags=re.DOTALL)
    found += re.findall(r'<p class="errornote">(.*?)</p>', text, flags=re.DOTALL)
    messages = [unescape(re.sub(r"<[^>]+>", " ", item)).strip() for item in found]
    return "; ".join(" ".join(message.split()) for message in messages if message) or text[:300]
