"""The sandbox: a small shop whose every change is audit-logged, with the audit-log admin on top.

``python -m sandbox`` (what ``make demo`` runs) sets everything up and serves
the admin; ``python sandbox/manage.py ...`` runs any other command.
"""
