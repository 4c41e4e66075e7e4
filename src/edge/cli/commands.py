"""Registers every command module on the app. One module per command group, each a thin layer."""

from edge.cli import bench_cmd, data_cmd, demo_cmd, export_cmd, ios_cmd, train_cmd  # noqa: F401
