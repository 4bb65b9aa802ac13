"""The one exception type the command line turns into a one-line error message."""


class NmtError(Exception):
    """A problem the user can fix: bad input, bad config, missing file.

    The message names the file, line or key at fault. The CLI prints it on one
    line and exits with status 1; anything else is a bug and keeps its traceback.
    """
