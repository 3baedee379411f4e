"""Migration operations."""
