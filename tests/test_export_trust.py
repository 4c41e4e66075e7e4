"""Export and bench keep their promises about files (issue #10, items 3, 5 and 10).

* export_report.json always describes the folder it is in (rewritten after every artifact, paths
  relative to itself), and bench never follows a report path out of the folder it was given;
* a spec that does not fit its model is refused in one sentence, before anything is written;
* artifacts name their run by identity, and an export folder is benchable from any directory.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edge import artifacts


def _report(folder: Path, entries: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / artifacts.REPORT_FILE).write_text(json.dumps({"entries": entries}))


def test_listed_artifacts_never_leave_the_folder(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    for name in ("a.onnx", "b.onnx"):
        (other / name).write_bytes(b"x")
    here = tmp_path / "here"
    _report(here, [
        {"format": "onnx", "quantize": "fp32", "status": "passed", "path": str(other / "a.onnx")},  # absolute: elsewhere
        {"format": "onnx", "quantize": "fp16", "status": "passed", "file": "../other/b.onnx"},  # climbs out
        {"format": "onnx", "quantize": "int8", "status": "passed", "file": "c.onnx"},
        {"format": "onnx", "quantize": "int8", "status": "failed", "file": "rejected/d.onnx"},
    ])
    (here / "c.onnx").write_bytes(b"x")
    (here / "rejected").mkdir()
    (here / "rejected" / "d.onnx").write_bytes(b"x")
    listed = artifacts.listed_artifacts(here)
    assert [item.path.name for item in listed] == ["c.onnx"]  # not other/*, not the failed one
    # an absolute path is trusted only by its name, inside the folder
    (here / "a.onnx").write_bytes(b"x")
    assert sorted(i.path.name for i in artifacts.listed_artifacts(here)) == ["a.onnx", "c.onnx"]


def test_unreadable_report_is_one_sentence(tmp_path):
    from edge.errors import EdgeError

    (tmp_path / artifacts.REPORT_FILE).write_text("{not json")
    with pytest.raises(EdgeError, match="not a readable export report"):
        artifacts.listed_artifacts(tmp_path)


def _copy_run(trained_run: Path, dest: Path) -> Path:
    shutil.copytree(trained_run, dest, ignore=shutil.ignore_patterns("export", "checkpoints", "logs"))
    return dest


@pytest.mark.slow
def test_interrupted_export_leaves_a_report_of_what_is_there(trained_run, tmp_path, monkeypatch):
    import dataclasses

    from edge import export, formats

    run = _copy_run(trained_run, tmp_path / "run")
    out = tmp_path / "out"
    onnx_format = formats.get("onnx")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setitem(formats._LOADED, "onnx", dataclasses.replace(onnx_format, export=interrupted))
    with pytest.raises(KeyboardInterrupt):
        export(run, formats=["tflite", "onnx"], quantize=["fp32"], out=out, quiet=True)
    data = json.loads((out / artifacts.REPORT_FILE).read_text())
    assert data["complete"] is False and data["planned"] == 2
    name = json.loads((run / "spec.json").read_text())["name"]
    assert [(e["format"], e["status"], e["file"]) for e in data["entries"]] == [("tflite", "passed", f"{name}_fp32.tflite")]
    assert [i.path.name for i in artifacts.listed_artifacts(out)] == [f"{name}_fp32.tflite"]
    assert not list(out.glob(".*partial*"))  # no half-written artifact under any name


@pytest.mark.slow
@pytest.mark.parametrize("edit", ["labels", "input_size"])
def test_a_spec_that_does_not_fit_its_model_is_refused(trained_run, tmp_path, edit, edge_cli):
    run = _copy_run(trained_run, tmp_path / "run")
    spec_path = run / "spec.json"
    spec = json.loads(spec_path.read_text())
    if edit == "labels":
        spec["labels"] = [*spec["labels"], "extra"]
    else:
        spec["input_size"] = [s * 2 for s in spec["input_size"]]
    spec_path.write_text(json.dumps(spec))
    done = edge_cli("export", str(run), "--format", "onnx", "--quantize", "fp32")
    assert done.returncode == 2, done.stdout + done.stderr
    message = done.stderr.strip().splitlines()[-1]
    assert ("labels but the model outputs" if edit == "labels" else "says the input is") in message
    assert "Traceback" not in done.stderr and not (run / "export" / f"{spec['name']}_fp32.onnx").exists()


@pytest.mark.slow
def test_export_folder_benches_from_any_directory_and_ships_no_path(trained_run, tmp_path, edge_cli):
    from edge import formats

    work = tmp_path / "work"
    _copy_run(trained_run, work / "runs" / "shapes")
    done = edge_cli("export", "runs/shapes", "--format", "onnx", "--quantize", "fp32", cwd=work)
    assert done.returncode == 0, done.stdout + done.stderr
    export_dir = work / "runs" / "shapes" / "export"
    (artifact,) = export_dir.glob("*_fp32.onnx")
    source_run = formats.for_path(artifact).read_metadata(artifact)["edge.source_run"]
    assert "/" not in source_run and "@" in source_run  # an identity, not a path on this disk
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = edge_cli("bench", str(export_dir), "--no-latency", "--out", str(tmp_path / "b"), cwd=elsewhere)
    assert done.returncode == 0, done.stdout + done.stderr
    bench = json.loads((tmp_path / "b" / "bench.json").read_text())
    assert bench["count"] > 0 and bench["reference"].endswith("model.keras")


def test_bench_benches_only_what_the_report_vouches_for(tmp_path):
    from edge.bench import models

    folder = tmp_path / "export"
    _report(folder, [])  # an export that was interrupted before its first artifact
    (folder / "old_int8.onnx").write_bytes(b"left over from an earlier export")
    with pytest.raises(Exception, match="lists no usable artifact"):
        models.expand([folder])


def test_an_output_folder_that_cannot_be_written_is_one_sentence_before_any_work(colour_case, tmp_path, edge_cli):
    root, model, photos = colour_case
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done = edge_cli("export", str(model), "--format", "onnx", "--quantize", "fp32", "--data", str(photos),
                    "--out", str(blocker / "export"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Cannot write to the output folder" in done.stderr and "Traceback" not in done.stderr
    assert str(blocker) in done.stderr
