"""The diff formatter's modules: ``audit_log_admin.diff`` still offers what moved out of it, and a
subclass of ``DiffFormatter`` overrides the hooks of every part the admin pages call."""

import pytest

from audit_log_admin import context_display, diff, diff_data, entry_text, formatter_base, json_diff, value_format
from audit_log_admin import word_diff as word_diff_module
from audit_log_admin.diff import DiffFormatter, DisplayValue

MOVED = [
    (diff_data, "ColumnChange"),
    (diff_data, "EntryDiff"),
    (diff_data, "compute_diff"),
    (diff_data, "DisplayValue"),
    (diff_data, "LinkDisplay"),
    (diff_data, "JsonKeyRow"),
    (diff_data, "JsonDiffDisplay"),
    (diff_data, "DiffRow"),
    (diff_data, "FormattedDiff"),
    (formatter_base, "field_label"),
    (formatter_base, "LinkInfo"),
    (formatter_base, "ModelInfo"),
    (value_format, "local_time"),
    (json_diff, "one_line"),
    (json_diff, "pretty_json"),
    (word_diff_module, "TextSegment"),
    (word_diff_module, "word_diff"),
]


@pytest.mark.parametrize(("module", "name"), MOVED, ids=[name for _, name in MOVED])
def test_diff_module_reexports_what_its_sibling_modules_define(module, name):
    assert getattr(diff, name) is getattr(module, name)
    assert name in diff.__all__


def test_diff_module_all_names_exist():
    assert [name for name in diff.__all__ if not hasattr(diff, name)] == []


def test_context_display_leaves_out_the_options_the_one_line_context_leaves_out():
    assert context_display.COMMON_COMMAND_OPTIONS is entry_text.COMMON_COMMAND_OPTIONS
    assert "verbosity" in entry_text.COMMON_COMMAND_OPTIONS


class EveryPartFormatter(DiffFormatter):
    """Overrides one hook of each part: entry text, value formatting and the base's lookups."""

    def format_context(self, entry):
        return "context-from-subclass"

    def summarize(self, entry):
        return "summary-from-subclass"

    def format_number(self, model_field, value):
        return DisplayValue(text=f"number-from-subclass {value}")

    def object_text(self, obj):
        return "object-from-subclass"


def test_formatter_subclass_overrides_every_part_on_the_admin_pages(
    superuser_client, invoice, log_url, history_url, settings
):
    settings.AUDIT_LOG_ADMIN_FORMATTER = "tests.admin.test_diff_modules.EveryPartFormatter"
    page = superuser_client.get(log_url()).content.decode()
    assert "context-from-subclass" in page
    assert "summary-from-subclass" in page
    assert "object-from-subclass" in page
    history = superuser_client.get(history_url(invoice))  # the History tab shows the full diffs
    rows = {row.label: row for entry in history.context["entries"] for row in entry.diff.rows}
    assert rows["Amount"].new.text.startswith("number-from-subclass")
