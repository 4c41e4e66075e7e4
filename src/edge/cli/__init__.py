"""The ``edge`` command line: parses options, calls the Python API, prints with rich."""
from edge.cli.app import app, main

__all__ = ["app", "main"]
