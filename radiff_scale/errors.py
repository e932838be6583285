"""Errors a user can cause and fix.

Anything raised as :class:`RadiffError` is the user's mistake (bad file, bad option,
bad config): the CLI prints its message on one line and exits with status 2, never a
traceback. Everything else is our bug and keeps its traceback.
"""


class RadiffError(Exception):
    """A one-line, user-facing error. The message should name the file or option at fault."""

    exit_code = 2
