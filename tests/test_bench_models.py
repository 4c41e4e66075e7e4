"""edge bench on real exported artifacts of the session's trained run: every format side by side.

Exports the ``trained_run`` fixture once per module (TFLite fp32 + int8, ONNX fp32 + int8 into one
export directory, Core ML fp16 beside it), then benches them together with the Keras model over
a ``--threads 1,2`` sweep with a short timing budget.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.errors import EdgeError

QUICK = dict(warmup=2, runs=15, time_budget=0.5)


@pytest.fixture(scope="module")
def exported(export_set, trained_run, tmp_path_factory):
    """An export folder with the fp32 and int8 TFLite/ONNX artifacts of the shared export (and its
    report, as edge export writes it), plus the shared Core ML fp16 entry."""
    import json
    import shutil

    from edge.artifacts import REPORT_FILE

    report, _ = export_set
    out = tmp_path_factory.mktemp("bench_export") / "export"
    out.mkdir()
    entries = [e for e in report.entries if e.format in ("tflite", "onnx") and e.quantize in ("fp32", "int8")]
    assert len(entries) == 4 and all(e.ok for e in entries), [(e.format, e.quantize, e.reason) for e in entries]
    for e in entries:
        shutil.copy2(e.path, out / Path(e.path).name)
    data = report.to_dict()
    data["entries"] = [{**e.__dict__, "path": str(out / Path(e.path).name), "file": Path(e.path).name} for e in entries]
    data["source_run_absolute"], data["source_run_relative"] = str(trained_run), ""
    (out / REPORT_FILE).write_text(json.dumps(data))
    coreml = next(e for e in report.entries if e.format == "coreml" and e.quantize == "fp16")
    return out, coreml


@pytest.fixture(scope="module")
def swept(exported, trained_run):
    from edge.bench import bench

    export_dir, coreml = exported
    paths = [export_dir, trained_run / "model.keras"] + ([coreml.path] if coreml.ok else [])
    return bench(paths, threads="1,2", **QUICK), coreml


def test_multi_model_thread_sweep(swept, trained_run):
    result, coreml = swept
    by_name: dict[str, list] = {}
    for row in result.rows:
        by_name.setdefault(row.name, []).append(row)
    names = [n for n in by_name if n.endswith((".tflite", ".onnx"))]
    assert sorted(n.rsplit("_", 1)[-1] for n in names) == ["fp32.onnx", "fp32.tflite", "int8.onnx", "int8.tflite"]
    assert Path(result.reference).resolve() == (trained_run / "model.keras").resolve()  # from the report's source run
    assert "test split" in result.data or "val split" in result.data
    for name in names:
        rows = by_name[name]
        assert [r.threads for r in rows] == [1, 2]
        for row in rows:
            assert row.runtime.startswith(("LiteRT 2.", "onnxruntime 1.")) and f"{row.threads} thread" in row.runtime
            assert row.min_ms <= row.p50_ms <= row.p90_ms <= row.p99_ms
            assert row.runs >= 5 and row.throughput_ips > 0 and row.size_bytes > 10_000
            assert row.load_s is not None and row.peak_mem_mb is not None and row.peak_mem_mb >= 0
            assert row.reference_accuracy == pytest.approx(by_name["model.keras"][0].accuracy)
            assert row.quantize == name.rsplit("_", 1)[-1].split(".")[0]
        if "fp32" in name:
            assert rows[0].agreement >= 0.99 and abs(rows[0].drop_pts) < 1.0
        # accuracy is computed once per model, whatever the thread count
        assert rows[0].accuracy == rows[1].accuracy and rows[0].confusion_matrix == rows[1].confusion_matrix
    (keras,) = by_name["model.keras"]
    assert keras.agreement == 1.0 and keras.drop_pts == 0.0 and keras.p50_ms > 0
    assert keras.runtime.startswith("TensorFlow") and keras.threads >= 1
    assert sum(sum(r) for r in keras.confusion_matrix) == keras.count == result.count > 0
    assert any("uint8 input/output" in w for w in result.warnings)  # edge's default int8 TFLite I/O
    if coreml.ok:
        (row,) = by_name[coreml.path.split("/")[-1]]
        assert row.latency_note == "n/a on this OS" and row.p50_ms is None and row.mean_ms is None
        assert row.accuracy is not None and row.agreement is not None and row.threads is None


def test_cli_on_export_dir_with_class_folders(exported, synth_data, tmp_path, edge_cli):
    export_dir, _ = exported
    done = edge_cli("bench", str(export_dir), "--data", str(synth_data), "--threads", "1", "--runs", "10",
                             "--warmup", "1", "--time-budget", "0.5", "--max-drop", "100", "--json",
                             str(tmp_path / "b.json"), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["count"] == sum(1 for p in synth_data.rglob("*") if p.is_file() and not p.name.startswith(".")) and data["ok"] is True
    assert {r["format"] for r in data["models"]} == {"tflite", "onnx"} and all(r["passed"] for r in data["models"])
    assert (tmp_path / "out" / "bench.png").stat().st_size > 5000
    assert "p50 ms" in done.stdout


def test_unknown_class_in_data_folder(exported, synth_data, tmp_path):
    from edge.bench import bench

    export_dir, _ = exported
    data = tmp_path / "data"
    shutil.copytree(synth_data, data)
    (data / "hexagon").mkdir()
    first = next(p for p in (data / "circle").iterdir())
    shutil.copy(first, data / "hexagon" / first.name)
    with pytest.raises(EdgeError, match="does not know: hexagon"):
        bench([export_dir / next(p.name for p in export_dir.glob("*_fp32.tflite"))], data=data, measure_latency=False)


def edge_cli_or_local():
    """``edge bench ARGS`` in a fresh process (bench_cmd imported explicitly: works before registration)."""
    code = "import sys; from edge.cli import bench_cmd; from edge.cli.main import main; sys.argv[0] = 'edge'; main()"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "COLUMNS": "200"}
    return lambda *args: subprocess.run([sys.executable, "-c", code, "bench", *args], capture_output=True, text=True,
                                        timeout=300, env=env)
