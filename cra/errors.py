"""The errors cra raises on purpose, for library callers and the CLI alike.

Library code raises these and never imports click; the CLI turns them into a one-line
`Error: ...` and exit status 1 at its edge (`cra.cli`). Each message says what went wrong and
what to do about it, the way sqlite-utils' and llm's errors do.
"""


class CraError(Exception):
    """Base class: anything cra refuses or cannot do, with a message meant for a person."""


class DatabaseError(CraError):
    """The database cannot be opened, read or written (missing, corrupt, locked, read-only, too new)."""


class NotFoundError(CraError):
    """Something named by the caller does not exist: a run, dataset, session, eval or file."""


class ConfigError(CraError):
    """A setting, option value or configuration file is invalid."""


class InputFormatError(CraError):
    """Input data (a file to import, a JSONL row, a request body) is not in the expected format."""


class MissingDependencyError(CraError):
    """An optional dependency is not installed; the message names the extra that provides it."""


class StageError(CraError):
    """A training, evaluation, export or serving step could not complete."""
