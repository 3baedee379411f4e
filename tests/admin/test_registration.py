from django.contrib import admin

from audit_log_admin.admin import LogEntryAdmin, register_log_entry_admin
from tests.testapp.models import AuditLogEntry


def test_log_entry_admin_is_registered_for_the_configured_model():
    assert isinstance(admin.site.get_model_admin(AuditLogEntry), LogEntryAdmin)


def test_register_log_entry_admin_registers_on_any_site():
    site = admin.AdminSite(name="other")
    assert register_log_entry_admin(site)
    assert isinstance(site.get_model_admin(AuditLogEntry), LogEntryAdmin)


def test_register_log_entry_admin_leaves_an_existing_registration_alone():
    class MyLogAdmin(LogEntryAdmin):
        list_per_page = 10

    site = admin.AdminSite(name="mine")
    site.register(AuditLogEntry, MyLogAdmin)
    assert not register_log_entry_admin(site)
    assert type(site.get_model_admin(AuditLogEntry)) is MyLogAdmin


def test_register_log_entry_admin_can_be_turned_off(settings):
    settings.AUDIT_LOG_ADMIN_REGISTER = False
    site = admin.AdminSite(name="off")
    assert not register_log_entry_admin(site)
    assert not site.is_registered(AuditLogEntry)
