"""The Django admin for the audit log: per-object history, a filterable log, readable diffs."""
