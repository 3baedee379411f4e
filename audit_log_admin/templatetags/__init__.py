"""Template tags of the log-entry admin."""
