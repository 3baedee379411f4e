"""Who may do what to the log: the grants that make it append-only for the application's role.

The trigger and guard functions run as their owner (``SECURITY DEFINER``), so
the role the application connects with needs nothing on the log table but
``SELECT`` (for the admin). :func:`grant_statements` writes the statements
that leave it exactly that; ``manage.py audit_log_grants`` prints or applies
them, and :func:`report` says what a role can do to the log now.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.apps import apps
from django.db.backends.base.base import BaseDatabaseWrapper

from . import guard, sql
from .loading import get_log_entry_model

#: What a role must not have on the log table.
WRITE_PRIVILEGES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE")


@dataclass
class Plan:
    """The statements that put the log's privileges right, and what they cannot fix.

    Attributes:
        statements: SQL to run, in order; idempotent.
        warnings: Problems statements cannot fix (a superuser application
            role, one that owns the log), for humans.
    """

    statements: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _log_tables() -> list[str]:
    """The tables whose privileges matter: the log, and this app's own (the seals)."""
    tables = [get_log_entry_model()._meta.db_table]
    if apps.is_installed("audit_log"):
        tables += [model._meta.db_table for model in apps.get_app_config("audit_log").get_models()]
    return tables


def grant_statements(connection: BaseDatabaseWrapper, app_role: str, owner: str | None = None) -> Plan:
    """Return the statements that leave ``app_role`` nothing but SELECT on the log.

    Args:
        connection: The database the log lives on (read for the current owner,
            the log's sequence and our functions).
        app_role: The role the application connects with.
        owner: Make this role the owner of the log and of our functions (the
            role migrations run as); default: leave ownership as it is.

    Returns:
        The plan: statements to run, and warnings they cannot fix.
    """
    plan = Plan()
    role = sql.quote_ident(app_role)
    log_table = get_log_entry_model()._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT r.rolsuper, pg_get_userbyid(c.relowner), pg_get_serial_sequence(%s, 'id') "
            "FROM pg_class AS c LEFT JOIN pg_roles AS r ON r.rolname = %s WHERE c.oid = to_regclass(%s)",
            [sql.quote_name(log_table), app_role, sql.quote_name(log_table)],
        )
        row = cursor.fetchone()
        if row is None:
            plan.warnings.append(f"The log table {log_table} does not exist here: run migrate first.")
            return plan
        superuser, current_owner, sequence = row
        cursor.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc AS p WHERE p.proname LIKE 'audit\\_log\\_%%' "
            "AND pg_get_userbyid(p.proowner) <> %s ORDER BY 1",
            [owner or current_owner],
        )
        foreign_functions = [name for (name,) in cursor.fetchall()]
    if superuser is None:
        plan.warnings.append(f"There is no role {app_role!r}: create it, or name the role the application uses.")
    elif superuser:
        plan.warnings.append(
            f"{app_role!r} is a superuser: superusers bypass every privilege and can rewrite the log. "
            "Connect the application as an ordinary role."
        )
    if (owner or current_owner) == app_role:
        plan.warnings.append(
            f"{app_role!r} owns the log table, and an owner may change its privileges back. Make the role that "
            "runs migrations its owner: audit_log_grants --owner ROLE."
        )
    if owner and owner != current_owner:
        for table in _log_tables():
            plan.statements.append(f"ALTER TABLE {sql.quote_name(table)} OWNER TO {sql.quote_ident(owner)}")
    # Functions run with their owner's privileges: that role must be able to write the log.
    plan.statements += [
        f"ALTER FUNCTION {function} OWNER TO {sql.quote_ident(owner or current_owner)}"
        for function in foreign_functions
    ]
    for table in _log_tables():
        qtable = sql.quote_name(table)
        plan.statements += [
            f"REVOKE ALL ON TABLE {qtable} FROM PUBLIC",
            f"REVOKE ALL ON TABLE {qtable} FROM {role}",
            f"GRANT SELECT ON TABLE {qtable} TO {role}",
        ]
    if sequence:
        plan.statements.append(f"REVOKE ALL ON SEQUENCE {sequence} FROM PUBLIC, {role}")
    retention = guard.retention_reference(log_table)
    plan.statements.append(f"REVOKE ALL ON FUNCTION {retention}(timestamptz, integer) FROM PUBLIC, {role}")
    return plan


@dataclass(frozen=True)
class Report:
    """What the connected role can do to the log.

    Attributes:
        role: The role.
        superuser: Whether it is a superuser (it can do anything).
        owner: Whether it owns the log table.
        privileges: Which of :data:`WRITE_PRIVILEGES` it has on the log.
    """

    role: str
    superuser: bool
    owner: bool
    privileges: tuple[str, ...]

    @property
    def append_only(self) -> bool:
        """True if the role can only read the log."""
        return not (self.superuser or self.owner or self.privileges)

    def describe(self) -> str:
        """One line for ``audit_log_status``."""
        if self.append_only:
            return f"role {self.role} can read the log but not change it"
        why = (
            "is a superuser"
            if self.superuser
            else "owns the log"
            if self.owner
            else "may " + ", ".join(self.privileges)
        )
        return (
            f"role {self.role} {why}: it could rewrite history. For the application's role, run "
            f"`manage.py audit_log_grants --app-role {self.role}` (see the README's trust model)"
        )


def report(connection: BaseDatabaseWrapper, role: str | None = None) -> Report | None:
    """Return what ``role`` (default: the one ``connection`` uses) can do to the log table.

    Returns:
        The report, or None when the log table or the role does not exist.
    """
    table = sql.quote_name(get_log_entry_model()._meta.db_table)
    checks = ", ".join(f"has_table_privilege(r.rolname, c.oid, '{privilege}')" for privilege in WRITE_PRIVILEGES)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT r.rolname, r.rolsuper, pg_has_role(r.rolname, c.relowner, 'USAGE'), {checks} "
            "FROM pg_roles AS r, pg_class AS c WHERE r.rolname = coalesce(%s, current_user) "
            "AND c.oid = to_regclass(%s)",
            [role, table],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    name, superuser, owner, *allowed = row
    granted = tuple(privilege for privilege, ok in zip(WRITE_PRIVILEGES, allowed, strict=True) if ok)
    return Report(role=name, superuser=superuser, owner=owner, privileges=() if superuser else granted)


def report_for(connection: BaseDatabaseWrapper, role: str | None = None) -> str:
    """Return :func:`report` as one line (or what stops it)."""
    found = report(connection, role)
    return found.describe() if found else "log privileges: the log table or the role does not exist"
