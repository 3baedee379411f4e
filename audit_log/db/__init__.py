"""Database backend and migration operations."""
