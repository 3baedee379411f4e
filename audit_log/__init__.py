"""Audit logging for Django, done by PostgreSQL triggers."""

__version__ = "1.0.0"
