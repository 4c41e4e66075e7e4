"""Errors a user can cause, and how any exception is shown in one line.

The CLI turns an ``EdgeError`` into one sentence on stderr and exit code 2.
"""

from __future__ import annotations

MAX_LINE = 200  # characters of a third-party message quoted in edge's own sentences


class EdgeError(Exception):
    """A problem with the user's input (paths, data, model files, options); never a bug."""

    exit_code = 2


def one_line(exc: BaseException, limit: int = MAX_LINE) -> str:
    """The first informative line of an exception's message (a line mentioning an error when the
    message is a multi-line log), at most ``limit`` characters; the type's name when it is empty."""
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    flagged = [line for line in lines if "error" in line.lower()] if len(lines) > 1 else []
    line = (flagged or lines)[0]
    return line if len(line) <= limit else line[: limit - 3] + "..."
