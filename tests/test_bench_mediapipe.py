"""edge bench's ``mediapipe`` entry: MediaPipe Tasks' ImageClassifier given the photo files, against the
model's own top-1 through edge's decode and resize (``edge.runtimes.mediapipe``).

The model is conftest's hand-made colour classifier (channel means -> softmax, 8x8) exported to TFLite
in seconds: fp32, int8 with uint8 input (MediaPipe takes it) and int8 with int8 input (MediaPipe refuses
it). The photos are conftest's noisy colour images plus one green photo filed under "red", so a model's
accuracy (9 of 10) differs from its agreement with itself (10 of 10). Tests that need MediaPipe use the
``mediapipe_python`` fixture and skip without ``.venv-mediapipe``; the others stand a fake in for it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge.bench import bench, report
from edge.bench.runner import BenchSettings
from edge.data.resize import VARIANTS
from edge.errors import EdgeError
from edge.runtimes import mediapipe as mediapipe_runtime
from edge.runtimes.mediapipe import ENV, INT8_INPUT, KEY, OPTION, VENV, Classified, Found, locate

LABELS = ["red", "green", "blue"]  # conftest.COLOURS, the colour model's output order
QUICK = dict(measure_latency=False, warmup=0, runs=1)


@pytest.fixture(scope="module")
def colour_tflite(tmp_path_factory, make_colour_model, make_colour_images):
    """(fp32, int8 uint8-input, int8 int8-input .tflite files, the photo folder)."""
    from edge import export

    root = tmp_path_factory.mktemp("mediapipe_bench")
    keras = make_colour_model(root / "run")
    photos = make_colour_images(root / "photos")
    odd = np.clip(np.array([20, 190, 40]) + np.random.default_rng(1).integers(-20, 20, (12, 16, 3)), 0, 255)
    Image.fromarray(odd.astype(np.uint8)).save(photos / "red" / "odd.png")  # green, filed as red
    common = dict(formats=["tflite"], data=photos, max_drop=100.0, calibration_count=8, quiet=True)
    export(keras, quantize=["fp32", "int8"], out=root / "export", **common)
    export(keras, quantize=["int8"], out=root / "int8io", int8_io="int8", **common)
    return (root / "export" / "colours_fp32.tflite", root / "export" / "colours_int8.tflite",
            root / "int8io" / "colours_int8.tflite", photos)


def _shown(path: str) -> int:
    """What a photo shows (the colour model's answer through edge): its folder, but odd.png is green."""
    return LABELS.index("green" if Path(path).name == "odd.png" else Path(path).parent.name)


def _filed(path: str) -> int:
    return LABELS.index(Path(path).parent.name)


def _rows(result) -> dict[str, object]:
    return {row.path: row for row in result.rows}


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


# ---------------------------------------------------------------------------------------------- finding it

def test_locate_explicit_then_the_environment_then_the_venv_here(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    missing = locate(cwd=tmp_path)
    assert missing.python is None and "make mediapipe-venv" in missing.note and OPTION in missing.note
    assert len(missing.note) <= 80  # one line at 80 columns
    venv = _executable(tmp_path / VENV / "bin" / "python")
    assert locate(cwd=tmp_path) == Found(venv, VENV)
    monkeypatch.chdir(tmp_path)
    assert locate().python == venv  # the current directory by default

    named = _executable(tmp_path / "elsewhere" / "python")
    monkeypatch.setenv(ENV, str(named))
    assert locate(cwd=tmp_path) == Found(named, ENV)  # the environment beats the venv
    explicit = _executable(tmp_path / "mine" / "python")
    assert locate(explicit, cwd=tmp_path) == Found(explicit, OPTION)  # and an explicit path beats both

    monkeypatch.setenv(ENV, str(tmp_path / "nope"))
    gone = locate(cwd=tmp_path)  # named but absent: said, no falling back to the venv
    assert gone.python is None and ENV in gone.note and "nope" in gone.note and "\n" not in gone.note


def test_a_venv_python_keeps_its_symlink(tmp_path):
    """A venv's python is a link to the base interpreter: resolving it would leave the venv (and MediaPipe)."""
    link = tmp_path / "venv" / "bin" / "python"
    link.parent.mkdir(parents=True)
    link.symlink_to(sys.executable)
    assert locate(link).python == link


@pytest.mark.parametrize(("bad", "words"), [("", "needs the path"), ("nope/python", "does not exist"),
                                            (".", "is a folder"), ("plain.txt", "is not an executable")])
def test_an_explicit_interpreter_is_checked_in_one_sentence(tmp_path, monkeypatch, bad, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plain.txt").write_text("not a program")
    with pytest.raises(EdgeError, match=words) as caught:
        BenchSettings(mediapipe_python=bad)
    assert len(str(caught.value).splitlines()) == 1 and str(caught.value).endswith(".")
    assert OPTION in str(caught.value)


# ---------------------------------------------------------------------------------------------- the numbers

def test_answers_are_wired_in_against_the_models_own(colour_tflite, monkeypatch, tmp_path):
    """MediaPipe stood in for by fixed answers: agreement is against the model's top-1 through edge,
    accuracy against the folders, the lowest counts in ``resize agr``, a refusal is a note, unreadable
    photos a warning; all the models go to one subprocess."""
    fp32, int8, int8io, photos = colour_tflite
    calls = []

    def answers(python, models, files, timeout=None):
        calls.append(([Path(m) for m in models], [str(f) for f in files]))
        shown = [_shown(f) for f in files]
        return {fp32: Classified(np.zeros(len(files), int)),  # always "red"
                int8: Classified(np.array([-1, *shown[1:]]), unreadable={str(files[0]): "bad photo"}),
                int8io: Classified(None, refused=INT8_INPUT)}

    monkeypatch.setattr(mediapipe_runtime, "version", lambda python, timeout=0: "0.0-test")
    monkeypatch.setattr(mediapipe_runtime, "classify_files", answers)
    result = bench([fp32, int8, int8io], data=photos, mediapipe_python=sys.executable, out=tmp_path, quiet=True,
                   **QUICK)
    ((models, paths),) = calls
    assert models == [fp32, int8, int8io] and sorted(paths) == sorted(str(p) for p in photos.rglob("*.png"))
    rows = _rows(result)
    shown, filed = np.array([_shown(p) for p in paths]), np.array([_filed(p) for p in paths])
    assert (shown != filed).sum() == 1

    red = rows[str(fp32)]
    assert red.resize_agreement[KEY] == pytest.approx(np.mean(shown == 0)) == pytest.approx(0.3)
    assert red.resize_accuracy[KEY] == pytest.approx(np.mean(filed == 0)) == pytest.approx(0.4)
    assert report.row_cells(red)[report.RESIZE_COLUMN] == "30.0%"  # the worst, MediaPipe's

    mostly = rows[str(int8)]  # the first photo unread (-1): a disagreement, and wrong
    assert mostly.resize_agreement[KEY] == pytest.approx(0.9)
    assert mostly.resize_accuracy[KEY] == pytest.approx(np.sum((shown == filed)[1:]) / 10)
    assert any("could not read 1 of 10 photos" in w and "bad photo" in w for w in result.warnings)

    refused = rows[str(int8io)]
    assert KEY not in refused.resize_agreement and refused.mediapipe_note == f"refused ({INT8_INPUT})"
    assert result.mediapipe == {"python": str(Path(sys.executable).absolute()), "version": "0.0-test"}

    saved = json.loads((tmp_path / report.JSON_FILE).read_text())
    assert {m["path"]: m["resize_agreement"].get(KEY) for m in saved["models"]} == {
        str(fp32): pytest.approx(0.3), str(int8): pytest.approx(0.9), str(int8io): None}
    assert saved["mediapipe"]["version"] == "0.0-test"
    md = (tmp_path / report.MARKDOWN_FILE).read_text()
    assert f"| {KEY} |" in md and "| refused (int8 input) |" in md and "MediaPipe Tasks 0.0-test" in md


def test_no_resize_variants_no_mediapipe(colour_tflite, monkeypatch):
    fp32, _, _, photos = colour_tflite
    monkeypatch.setattr(mediapipe_runtime, "locate", lambda *a, **k: pytest.fail("looked for MediaPipe"))
    result = bench([fp32], data=photos, resize_variants=False, mediapipe_python=sys.executable, write=False,
                   quiet=True, **QUICK)
    assert result.mediapipe == {} and result.rows[0].resize_agreement == {}


def test_no_interpreter_is_one_note_and_the_bench_completes(colour_tflite, monkeypatch, tmp_path):
    fp32, _, _, photos = colour_tflite
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.chdir(tmp_path)  # no .venv-mediapipe here
    result = bench([fp32], data=photos, out=tmp_path / "out", quiet=True, **QUICK)
    (row,) = result.rows
    assert row.accuracy == pytest.approx(0.9) and set(row.resize_agreement) == set(VARIANTS)
    assert result.mediapipe == {"note": locate(cwd=tmp_path).note}
    assert locate(cwd=tmp_path).note in (tmp_path / "out" / report.MARKDOWN_FILE).read_text()


# ---------------------------------------------------------------------------------------------- with MediaPipe

def test_mediapipe_on_the_photo_files(colour_tflite, mediapipe_python, tmp_path):
    """The real thing: MediaPipe decodes and resizes the photos itself and answers as the model does through
    edge (agreement 100%, accuracy 90% like the model's); the int8-input file is refused, not an error."""
    fp32, int8, int8io, photos = colour_tflite
    result = bench([fp32, int8, int8io], data=photos, mediapipe_python=mediapipe_python, out=tmp_path, quiet=True,
                   **QUICK)
    saved = {m["path"]: m for m in json.loads((tmp_path / report.JSON_FILE).read_text())["models"]}
    for model in (fp32, int8):
        entry = saved[str(model)]
        assert entry["resize_agreement"][KEY] == 1.0, model
        assert entry["resize_accuracy"][KEY] == pytest.approx(0.9) == pytest.approx(entry["accuracy"]), model
        assert entry["mediapipe_note"] == ""
    assert KEY not in saved[str(int8io)]["resize_agreement"]
    assert saved[str(int8io)]["mediapipe_note"] == f"refused ({INT8_INPUT})"
    assert result.mediapipe["version"] == mediapipe_runtime.version(mediapipe_python)
    assert not any("MediaPipe" in w and "read" in w for w in result.warnings)


# ---------------------------------------------------------------------------------------------- the CLI

def test_cli_table_at_80_columns_with_mediapipe_and_no_log_noise(colour_tflite, mediapipe_python, tmp_path, edge_cli):
    fp32, _, int8io, photos = colour_tflite
    done = edge_cli("bench", str(fp32), str(int8io), "--data", str(photos), OPTION, str(mediapipe_python),
                    "--no-latency", "--out", str(tmp_path), columns=80)
    assert done.returncode == 0, done.stdout + done.stderr
    assert all(len(line.rstrip()) <= 80 for line in done.stdout.splitlines()), done.stdout
    assert KEY in done.stdout and "refused (int8 input)" in done.stdout and "MediaPipe Tasks" in done.stdout
    for noise in ("XNNPACK delegate", "W0000", "I0000", "absl::InitializeLog"):
        assert noise not in done.stdout + done.stderr


def test_cli_without_an_interpreter_says_so_and_completes(colour_tflite, tmp_path, edge_cli):
    fp32, _, _, photos = colour_tflite
    done = edge_cli("bench", str(fp32), "--data", str(photos), "--no-latency", "--out", str(tmp_path),
                    env={ENV: str(tmp_path / "nope")}, columns=80)
    assert done.returncode == 0, done.stdout + done.stderr
    said = [line for line in done.stdout.splitlines() if ENV in line]
    assert len(said) == 1 and "make mediapipe-venv" in done.stdout
    saved = json.loads((tmp_path / report.JSON_FILE).read_text())
    assert set(saved["mediapipe"]) == {"note"} and KEY not in saved["models"][0]["resize_agreement"]


def test_cli_refuses_a_bad_interpreter_as_the_api_does(colour_tflite, tmp_path, edge_cli):
    fp32, _, _, photos = colour_tflite
    bad = str(tmp_path / "nope" / "python")
    done = edge_cli("bench", str(fp32), "--data", str(photos), OPTION, bad)
    assert done.returncode == 2
    (line,) = [line for line in done.stderr.splitlines() if line.strip()]
    with pytest.raises(EdgeError) as caught:
        bench([fp32], data=photos, mediapipe_python=bad, write=False, quiet=True)
    assert str(caught.value) in line and "does not exist" in line
