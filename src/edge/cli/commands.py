"""Registers every command module on the app. One module per command group, each a thin layer."""

# In pipeline order: `edge --help` lists the commands in the order they are imported here.
from edge.cli import train_cmd, export_cmd, bench_cmd, predict_cmd, data_cmd, demo_cmd, ios_cmd  # noqa: F401, I001
from edge.cli import serve_cmd  # noqa: F401  (the web demo, after the iOS one)
