"""The ``edge`` command line: parses options, calls the Python API, prints with rich."""
from edge.cli.main import main

__all__ = ["main"]
