"""Every admin page names a context type by its label ("Request"), never by its stored slug ("http-request")."""

import re

import pytest
from django.contrib.contenttypes.models import ContentType

from tests.admin.factories import LogEntryFactory
from tests.testapp.models import Invoice

pytestmark = pytest.mark.django_db

REQUEST = {"method": "POST", "path": "/admin/testapp/invoice/1/change/"}


def test_changelist_shows_built_in_context_type_labels(superuser_client, log_url):
    LogEntryFactory(context_type="http-request", context=REQUEST)
    LogEntryFactory(context_type="management-command", context={"command": "seed_demo", "args": [], "kwargs": {}})
    LogEntryFactory(context_type="unknown", context={"db_user": "app"})
    content = superuser_client.get(log_url()).content.decode()
    labels = re.findall(r'<span class="audit-log-context-type">([^<]*)</span>', content)
    assert labels == ["No context", "Management command", "Request"]
    assert "http-request" not in content.split('id="changelist-filter"')[0]  # the filter suggests the slugs


def test_history_tab_shows_the_context_type_label(superuser_client, invoice, history_url):
    LogEntryFactory(
        content_type=ContentType.objects.get_for_model(Invoice), object_id=str(invoice.pk), context_type="revert"
    )
    content = superuser_client.get(history_url(invoice)).content.decode()
    wheres = re.findall(r'<div class="audit-log-where">([^<]*)', content)
    assert wheres[0].strip() == "Revert"


def test_entry_page_shows_the_context_type_label(superuser_client, entry_url):
    entry = LogEntryFactory(context_type="http-request", context=REQUEST)
    content = superuser_client.get(entry_url(entry)).content.decode()
    assert re.search(r">\s*Request\b", content)


def test_context_type_filter_suggests_types_with_their_labels(superuser_client, log_url, settings):
    settings.AUDIT_LOG_CONTEXT_TYPE_CHOICES = {"celery-task": "Celery task", "unknown": "Outside the app"}
    content = superuser_client.get(log_url()).content.decode()
    options = re.findall(r'<option value="([^"]*)"(?: label="([^"]*)")?>', content.split("<datalist")[1])
    assert options == [
        ("celery-task", "Celery task"),
        ("http-request", "Request"),
        ("management-command", "Management command"),
        ("restore", "Restore"),
        ("revert", "Revert"),
        ("unknown", "Outside the app"),
    ]


def test_context_type_filter_takes_the_slug(superuser_client, log_url):
    LogEntryFactory(context_type="http-request", context=REQUEST)
    LogEntryFactory(context_type="unknown")
    response = superuser_client.get(log_url(context_type="http-request"))
    assert [entry.context_type for entry in response.context["cl"].result_list] == ["http-request"]
