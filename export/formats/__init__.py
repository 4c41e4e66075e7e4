"""edge.export.formats: one module per export format, each defining its ``FORMAT`` record.

The registry that finds them is ``edge.formats`` (core); adding a format is a module here plus
one line in ``edge.formats.REGISTRY``.
"""
