"""Errors a user can cause. The CLI turns each into one sentence on stderr and exit code 2."""

from __future__ import annotations


class EdgeError(Exception):
    """A problem with the user's input (paths, data, model files, options); never a bug."""

    exit_code = 2
