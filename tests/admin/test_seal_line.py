"""The log changelist shows the newest seal of the log."""

import pytest

from audit_log import seal, seal_verify

pytestmark = pytest.mark.django_db


def test_changelist_without_seals_says_nothing_about_them(superuser_client, invoice, log_url):
    response = superuser_client.get(log_url())
    assert response.status_code == 200
    assert "audit-log-seal" not in response.content.decode()


def test_changelist_shows_the_newest_seal_and_its_verification(superuser_client, invoice, log_url):
    made = seal.seal_log()
    page = superuser_client.get(log_url()).content.decode()
    assert f"Sealed through entry #{made.last_id} (seal #{made.seal_id}," in page
    assert "Verified" not in page
    seal_verify.verify_log()
    page = superuser_client.get(log_url()).content.decode()
    assert f"Sealed through entry #{made.last_id}" in page
    assert "Verified" in page
