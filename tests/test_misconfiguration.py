"""A missing or misspelt log-model setting gives system checks with hints, never a traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def check(tmp_path, body, *, admin=True):
    """Run ``manage.py check`` with the test settings changed by ``body``; return (exit code, output)."""
    lines = ["from tests.settings import *  # noqa: F403", body]
    if not admin:
        lines.append('INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "audit_log_admin"]  # noqa: F405')
    (tmp_path / "misconfigured.py").write_text("\n".join(lines) + "\n")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        "DJANGO_SETTINGS_MODULE": "misconfigured",
    }
    result = subprocess.run(  # our own interpreter and arguments
        [sys.executable, "-m", "django", "check"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("admin", [True, False], ids=["with the admin", "without the admin"])
@pytest.mark.parametrize(
    ("body", "error_id"),
    [("del AUDIT_LOG_ENTRY_MODEL", "audit_log.E002"), ("del AUDIT_LOG_CONTEXT_MODEL", "audit_log.E001")],
    ids=["entry model unset", "context model unset"],
)
def test_unset_model_settings_give_only_our_check(tmp_path, body, error_id, admin):
    code, output = check(tmp_path, body, admin=admin)
    assert code == 1
    assert "Traceback" not in output
    assert f"({error_id})" in output
    assert "HINT: Define a model in one of your apps" in output
    assert "System check identified 1 issue" in output


@pytest.mark.parametrize("admin", [True, False], ids=["with the admin", "without the admin"])
def test_misspelt_entry_model_gives_our_check_first_and_no_traceback(tmp_path, admin):
    code, output = check(tmp_path, 'AUDIT_LOG_ENTRY_MODEL = "testapp.AuditLogEntri"', admin=admin)
    assert code == 1
    assert "Traceback" not in output
    assert "(audit_log.E002) AUDIT_LOG_ENTRY_MODEL refers to model 'testapp.AuditLogEntri'" in output
    assert "follow from this one" in output
