"""Capture, seen from the `cra` side: installing the hooks, the privacy switch, status, the spool."""
