"""Management command support."""
