"""``edge demo`` (the README's first command) end to end, at a tiny size, through the real CLI."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_demo_smoke_run_makes_every_artifact_and_a_bench(tmp_path, edge_cli):
    out = tmp_path / "demo"
    done = edge_cli("demo", "--out", str(out), "--per-class", "24", "--epochs", "2", timeout=900)
    assert done.returncode in (0, 1), done.stdout + done.stderr  # 1: a tiny model may miss an int8 budget
    assert "Traceback" not in done.stderr
    report = json.loads((out / "exports" / "export_report.json").read_text())
    assert report["complete"] is True and report["planned"] == len(report["entries"])
    formats = {e["format"] for e in report["entries"]}
    assert formats == {"tflite", "onnx", "coreml"}
    bench = json.loads((out / "exports" / "bench.json").read_text())
    assert bench["models"] and all(row["accuracy"] is not None for row in bench["models"])
    timed = [row for row in bench["models"] if row.get("p50_ms") is not None]
    if timed:  # the chart plots accuracy against latency
        assert (out / "exports" / "bench.png").stat().st_size > 5000
    else:  # a 2-epoch model can be so unsure that the gate rejects every file this OS times (seen once)
        assert not (out / "exports" / "bench.png").exists() and done.returncode == 1
    assert "Result:" in done.stdout and (out / "runs" / "shapes" / "spec.json").is_file()
    assert (done.returncode == 0) == (report["ok"] and bench["ok"])
    # a second run with --force replaces edge's own demo (it carries edge's markers)
    again = edge_cli("demo", "--out", str(out), "--per-class", "24", "--epochs", "1", "--force", timeout=900)
    assert again.returncode in (0, 1) and "Traceback" not in again.stderr, again.stderr
