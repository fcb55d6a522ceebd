"""Errors a user can cause: one class, in a module of its own that imports nothing of the package.

The library raises :class:`UserError` for a problem with the user's input (a missing file, a
damaged checkpoint, a setting out of range); the ``icm`` command line prints it as one line,
never a traceback. A module of its own so that the library never imports its command line.
"""


class UserError(Exception):
    """A problem with the user's input: printed as ``icm: error: <message>``, exit status 2."""
