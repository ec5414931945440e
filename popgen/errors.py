"""The one exception type the CLI turns into a one-line message and exit code 2."""

from __future__ import annotations

import os


class PopgenError(Exception):
    """A user-facing error: bad input, bad config, unavailable device.

    The message is one line that names the file (when there is one) and the
    problem, e.g. ``cohort.bed: truncated: expected 1253 bytes, found 1000``.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)
