"""Errors a user can cause and fix.

Anything raised as :class:`RadiffError` is the user's mistake (bad file, bad option,
bad config): the CLI prints its message on one line and exits with status 2, never a
traceback. Everything else is our bug and keeps its traceback.
"""


class RadiffError(Exception):
    """A one-line, user-facing error. The message should name the file or option at fault."""

    exit_code = 2


class FlatImageError(RadiffError):
    """An image with no noise scale (constant, or fewer than 2 finite pixels): it cannot be normalised.

    The user's mistake when the image is theirs (a cutout to train on, a background to
    condition on), so it stays a RadiffError; code that meets it on windows of its own
    making (a blanked region of a map) catches exactly this type and carries on, and
    never swallows another user error on the way.
    """
