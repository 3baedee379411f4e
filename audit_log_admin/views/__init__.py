"""Admin pages beyond the History tab and the log changelist, one module per page family."""
