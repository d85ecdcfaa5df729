"""The project's error types for mistakes a user makes (a leaf: imports nothing of the project).

``UserError`` marks an error whose message alone tells the user what to fix: it names the flag,
config field or file, what was received and what was expected. Every command run through
``mvtrack_jax.cli.run`` prints such an error as one ``error: …`` line and exits 2, without a
traceback (``--verbosity=1`` or ``MVTRACK_TRACEBACK=1`` shows it). ``InputFileError`` marks a file the user
named that cannot be used (missing, corrupt, of the wrong kind): one line, exit 1, as the OS's own path errors.
Anything else is a bug or an environment failure and keeps its traceback.
"""


class UserError(ValueError):
  """A mistake in what the user gave (a flag, a config field, a file); the message names it."""


class ConfigError(UserError):
  """A run config field with a value that cannot work (wrong type, out of range, not finite)."""


class InputFileError(OSError):
  """A file the user named cannot be read or is not what was expected; the message names the file."""
