"""Moved to tfgate.clients.cli.console; this name stays only until pipeline/cli.py moves there too (issue 14)."""

from tfgate.clients.cli.console import EXIT_USAGE, console, errors, fail, quiet_library_logs

__all__ = ["EXIT_USAGE", "console", "errors", "fail", "quiet_library_logs"]
