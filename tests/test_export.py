"""edge export: every format x kind passes its gate, metadata reads back, failures are loud and local.

One small trained run (``trained_run`` from conftest) is exported once per test session to every
kind of every format (``export_set``); the other export, bench, Core ML and iOS tests reuse it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.errors import EdgeError

pytestmark = pytest.mark.slow

TFLITE_KINDS = ("fp32", "fp16", "dynamic", "int8")
ONNX_KINDS = ("fp32", "fp16", "int8")
MAX_DROP = 3.0  # conftest.EXPORT_SET_MAX_DROP
REPORT_FIELDS = ("path", "format", "quantize", "size_bytes", "agreement", "accuracy", "reference_accuracy",
                 "max_prob_diff", "verified_by", "status", "changed", "changed_unsure", "changed_reference_wrong")


def _coreml_available() -> bool:
    from edge import formats

    try:
        formats.get("coreml")
        import coremltools  # noqa: F401
    except (EdgeError, ImportError):
        return False
    return True


@pytest.fixture(scope="module")
def exported(export_set):
    """The shared export (conftest ``export_set``): every TFLite, ONNX and Core ML kind of the run,
    verified on all the synthetic images; the tiny from-scratch model gets a 3-point int8 budget."""
    return export_set


def _entries(report):
    return {(e.format, e.quantize): e for e in report.entries}


def test_every_format_and_kind_passes_its_gate(exported, trained_run):
    report, out = exported
    entries = _entries(report)
    expected = {("tflite", k) for k in TFLITE_KINDS} | {("onnx", k) for k in ONNX_KINDS}
    assert expected <= set(entries)
    assert any("onnx has no dynamic" in s for s in report.skipped)
    assert report.reference_accuracy > 0.6, "the fixture model must actually be trained"
    for key in expected:
        e = entries[key]
        assert e.status == "passed", (key, e.reason)
        assert Path(e.path).is_file() and Path(e.path).name == f"{report.model_name}_{key[1]}.{key[0]}"
        assert e.size_bytes == Path(e.path).stat().st_size
        if key[1] == "fp32":
            assert e.agreement >= 0.995 and e.max_prob_diff <= 1e-3
        if key[1] == "int8":
            assert e.drop_pts <= MAX_DROP
    assert entries[("tflite", "int8")].size_bytes < 0.5 * entries[("tflite", "fp32")].size_bytes
    assert entries[("onnx", "int8")].size_bytes < 0.5 * entries[("onnx", "fp32")].size_bytes
    if ("coreml", "fp16") in entries:
        assert entries[("coreml", "fp16")].status in ("passed", "not verified")
    assert report.ok
    assert not list(out.glob(".*partial*")), "no temporary files are left behind"


def test_report_json_has_the_promised_fields(exported):
    report, out = exported
    data = json.loads((out / "export_report.json").read_text())
    assert data["ok"] is True and data["held_out_count"] == report.held_out_count
    for entry in data["entries"]:
        for field in REPORT_FIELDS:
            assert field in entry, field
        assert entry["changed"] == round((1 - entry["agreement"]) * report.held_out_count)
        assert 0 <= entry["changed_reference_wrong"] <= entry["changed"] and entry["changed_unsure"] <= entry["changed"]
        if entry["format"] in ("tflite", "onnx"):
            assert entry["verified_by"].split()[0] in ("LiteRT", "onnxruntime")
            assert entry["reference_accuracy"] == pytest.approx(data["reference_accuracy"])
    assert data["options"]["max_drop_pts"] == MAX_DROP


def test_metadata_reads_back_from_every_artifact(exported, trained_run):
    from edge import formats
    from edge.export.formats.onnx import read_metadata as onnx_metadata
    from edge.export.formats.tflite_metadata import read_metadata, read_standard_metadata
    from edge.spec import ModelSpec

    report, out = exported
    spec = ModelSpec.load(trained_run)
    for e in report.entries:
        if e.status != "passed":
            continue
        predictor = formats.load(e.path)
        assert predictor.spec.labels == spec.labels
        assert predictor.spec.normalization == spec.normalization
        assert predictor.spec.input_size == spec.input_size
    tfl = out / f"{spec.name}_int8.tflite"
    meta = read_metadata(tfl)
    assert json.loads(meta["edge.labels"]) == spec.labels
    # shipped models name their run by identity (name@run id), never by a path on this disk
    assert meta["edge.source_run"] == f"{spec.name}@{spec.run_id}" and spec.run_id
    assert "/" not in meta["edge.source_run"]
    assert report.source_run_relative and (out / report.source_run_relative).resolve() == trained_run.resolve()
    standard = read_standard_metadata(tfl)  # the standard TFLite metadata, as metadata readers see it
    assert standard["labels"] == spec.labels
    props = onnx_metadata(out / f"{spec.name}_fp16.onnx")
    assert json.loads(props["edge.labels"]) == spec.labels
    assert json.loads(props["edge.normalization"])["mean"] == list(spec.normalization.mean)


def test_artifacts_take_raw_pixels(exported):
    from edge import formats
    from edge.export.formats.tflite import io_details

    report, out = exported
    entries = _entries(report)
    int8 = io_details(Path(entries[("tflite", "int8")].path))
    assert int8["input_dtype"] == "uint8" and int8["output_dtype"] == "uint8"
    assert int8["input_quantization"] == [1.0, 0], "the stored uint8 value must be the raw pixel"
    assert io_details(Path(entries[("tflite", "fp32")].path))["input_dtype"] == "float32"
    import onnx

    for kind in ONNX_KINDS:
        graph = onnx.load(entries[("onnx", kind)].path).graph
        assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
        assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    # probabilities: rows sum to one in every runtime
    predictor = formats.load(entries[("onnx", "int8")].path)
    images = np.random.default_rng(0).integers(0, 256, (3, *predictor.spec.input_shape), dtype=np.uint8)
    np.testing.assert_allclose(predictor(images).sum(1), 1.0, atol=0.02)


def test_int8_io_and_qat(trained_run, synth_data, tmp_path):
    """int8 input/output on request; QAT yields an integer model that keeps accuracy."""
    from edge.export import export
    from edge.export.formats.tflite import io_details

    report = export(trained_run, formats=["tflite"], quantize=["int8"], out=tmp_path / "io", int8_io="int8",
                    calibration_count=32, data=synth_data, max_drop=MAX_DROP)
    entry = report.entries[0]
    assert entry.status == "passed", entry.reason
    details = io_details(Path(entry.path))
    assert details["input_dtype"] == "int8" and details["input_quantization"] == [1.0, -128]
    assert details["output_dtype"] == "int8"

    report = export(trained_run, formats=["tflite"], quantize=["int8"], out=tmp_path / "qat", qat=True, qat_epochs=1,
                    calibration_count=32, data=synth_data, max_drop=5.0)
    entry = report.entries[0]
    assert entry.details.get("method") == "qat", entry.reason
    assert entry.status == "passed", entry.reason
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=entry.path)
    conv_weights = [t for t in interpreter.get_tensor_details() if t["name"].endswith("Conv2D") or "conv" in t["name"].lower()]
    assert conv_weights and any(np.dtype(t["dtype"]) == np.int8 for t in conv_weights)


def test_broken_export_is_caught_with_nonzero_exit(trained_run, tmp_path, monkeypatch, capsys):
    """Inject a wrong normalization into the TFLite conversion: the gate rejects it, exit 1."""
    from edge.export.formats import tflite
    from edge.keras_setup import keras

    real_convert = tflite.convert

    def convert_with_wrong_normalization(model, *args, **kwargs):
        broken = keras.models.clone_model(model)
        broken.set_weights(model.get_weights())
        preprocess = broken.get_layer("preprocess")
        preprocess.scale, preprocess.offset = 1.0 / 255.0, 0.0  # [0, 1] instead of the spec's [-1, 1]
        return real_convert(broken, *args, **kwargs)

    monkeypatch.setattr(tflite, "convert", convert_with_wrong_normalization)
    out = tmp_path / "broken"
    code = _run_cli(monkeypatch, "export", str(trained_run), "--format", "tflite", "--quantize", "fp32",
                    "--out", str(out))
    assert code == 1
    assert "failed" in capsys.readouterr().out
    name = f"{json.loads((trained_run / 'spec.json').read_text())['name']}_fp32.tflite"
    assert not (out / name).exists(), "a failed artifact must not be left under its final name"
    assert (out / "rejected" / name).is_file()
    entry = json.loads((out / "export_report.json").read_text())["entries"][0]
    assert entry["status"] == "failed" and "agreement" in entry["reason"]


def test_one_format_failing_keeps_the_others(trained_run, exported, tmp_path, monkeypatch):
    import dataclasses
    import shutil

    from edge import formats
    from edge.export import export

    report, src_out = exported
    out = tmp_path / "mixed"
    shutil.copytree(src_out, out)
    onnx_format = formats.get("onnx")

    def explode(*args, **kwargs):
        raise RuntimeError("converter crashed: Unsupported op FancyOp in layer 'fancy'")

    monkeypatch.setitem(formats._LOADED, "onnx", dataclasses.replace(onnx_format, export=explode))
    report = export(trained_run, formats=["onnx", "tflite"], quantize=["fp32"], out=out, force=True)
    entries = _entries(report)
    assert entries[("onnx", "fp32")].status == "error"
    assert "FancyOp" in entries[("onnx", "fp32")].reason
    assert entries[("tflite", "fp32")].status == "passed"
    assert not report.ok
    assert (out / f"{report.model_name}_fp32.tflite").is_file()
    assert (out / f"{report.model_name}_int8.onnx").is_file(), "other artifacts already there are kept"


def test_no_overwrite_without_force(exported, trained_run, edge_cli):
    report, out = exported
    target = out / f"{report.model_name}_fp32.onnx"
    before = target.stat().st_mtime_ns
    result = edge_cli("export", str(trained_run), "--format", "onnx", "--quantize", "fp32", "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert "--force" in result.stderr and "Traceback" not in result.stderr
    assert target.stat().st_mtime_ns == before


def test_cli_exports_with_data_dir(trained_run, synth_data, tmp_path, edge_cli):
    out = tmp_path / "cli"
    result = edge_cli("export", str(trained_run), "--format", "onnx", "--quantize", "fp32", "--data", str(synth_data),
                      "--out", str(out), "--max-drop", "0.5")
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads((out / "export_report.json").read_text())
    images = [p for p in synth_data.rglob("*") if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    assert data["held_out"] == str(synth_data) and data["held_out_count"] == len(images)
    assert data["entries"][0]["status"] == "passed"


@pytest.mark.parametrize(
    "args, message",
    [
        (("export", "/nonexistent/run"), "does not exist"),
        (("export", "{run}", "--format", "tflite,caffe"), "Unknown format 'caffe'"),
        (("export", "{run}", "--quantize", "int3"), "Unknown quantization 'int3'"),
        (("export", "{run}", "--format", "onnx", "--quantize", "dynamic"), "None of the requested"),
    ],
)
def test_cli_user_errors_exit_2(trained_run, monkeypatch, capsys, args, message):
    code = _run_cli(monkeypatch, *(a.format(run=trained_run) for a in args))
    err = capsys.readouterr().err
    assert code == 2 and message in err.replace("\n", " ")


def test_help_lists_every_combination(monkeypatch, capsys):
    code = _run_cli(monkeypatch, "export", "--help")
    text = capsys.readouterr().out
    assert code == 0
    for word in ("--format", "--quantize", "--out", "--data", "--max-drop", "--force", "tflite", "onnx", "dynamic"):
        assert word in text


def test_registry_and_verification_units(tmp_path):
    from edge import formats
    from edge.verify import compare

    with pytest.raises(EdgeError, match="Unknown format"):
        formats.get("caffe")
    with pytest.raises(EdgeError, match="Cannot tell the model format"):
        formats.for_path(tmp_path / "model.pt")
    assert formats.for_path("a/b_int8.tflite").name == "tflite"
    ref = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    cand = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.3, 0.7]])
    result = compare(ref, cand, np.array([0, 1, 0, 1]))
    assert result.agreement == 0.75 and result.reference_accuracy == 1.0 and result.accuracy == 0.75
    assert result.drop_pts == pytest.approx(25.0) and result.max_prob_diff == pytest.approx(0.2)


def _run_cli(monkeypatch, *args) -> int:
    """Run ``edge`` in this process (so monkeypatches apply); returns the exit code."""
    import edge.cli.export_cmd  # noqa: F401  (registers the command)
    from edge.cli.main import main

    monkeypatch.setattr(sys, "argv", ["edge", *args])
    monkeypatch.setenv("COLUMNS", "200")
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_int8_auto_tries_remedies_and_reports_them(trained_run, synth_data, tmp_path, monkeypatch):
    """An unreachable budget: every applicable remedy is tried, recorded, and the artifact still fails."""
    import dataclasses

    from edge import formats
    from edge.export import export
    from edge.formats import Budget

    onnx_format = formats.get("onnx")
    unreachable = {**onnx_format.budgets, "int8": Budget(min_agreement=1.01)}  # agreement never exceeds 100%
    monkeypatch.setitem(formats._LOADED, "onnx", dataclasses.replace(onnx_format, budgets=unreachable))
    out = tmp_path / "auto"
    report = export(trained_run, formats=["onnx"], quantize=["int8"], out=out, data=synth_data,
                    int8_auto=True, per_channel=False, calibration_count=8)
    entry = report.entries[0]
    assert entry.status == "failed" and "--int8-auto tried 2 remedies" in entry.reason
    assert [a["remedy"] for a in entry.attempts] == ["post-training int8", "calibration x4 (32 images)",
                                                      "per-channel weights"]
    assert all(a["size_bytes"] > 0 and a["accuracy"] is not None for a in entry.attempts)
    assert not (out / f"{report.model_name}_int8.onnx").exists()
    assert not report.ok


def test_int8_auto_tflite_remedies_run_in_order(trained_run, synth_data, tmp_path, monkeypatch):
    """TFLite's remedies: more calibration, QAT (the file stays int8), then float fallback for the worst ops -- all real."""
    import dataclasses

    from edge import formats
    from edge.export import export
    from edge.formats import Budget

    tflite_format = formats.get("tflite")
    unreachable = {**tflite_format.budgets, "int8": Budget(min_agreement=1.01)}
    monkeypatch.setitem(formats._LOADED, "tflite", dataclasses.replace(tflite_format, budgets=unreachable))
    out = tmp_path / "auto"
    report = export(trained_run, formats=["tflite"], quantize=["int8"], out=out, data=synth_data, int8_auto=True,
                    calibration_count=8, qat_epochs=1, quiet=True)
    (entry,) = report.entries
    remedies = [a["remedy"] for a in entry.attempts]
    assert remedies[0] == "post-training int8" and remedies[1].startswith("calibration x4")
    assert remedies[2:] == ["quantization-aware training", "float fallback for the 5 worst ops"]
    assert all(a["status"] == "failed" and a["size_bytes"] > 0 for a in entry.attempts), entry.attempts
    assert entry.status == "failed" and "--int8-auto tried 3 remedies" in entry.reason
    assert not (out / f"{report.model_name}_int8.tflite").exists() and (out / "rejected").is_dir()
