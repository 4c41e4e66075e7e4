"""The command line as a user meets it: help, version, completion, -q/-v, --json, logs, "the latest".

Most checks run the app in-process (typer's CliRunner) or on hand-made ONNX models; the one that
trains is marked slow.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from edge import discover, logs
from edge.errors import EdgeError

COMMANDS = [["train"], ["export"], ["bench"], ["predict"], ["data", "synth"], ["data", "flowers"], ["ios", "install"],
            ["ios", "contract"]]


@pytest.fixture(scope="module")
def cli():
    from edge.cli import commands  # noqa: F401  (registers the commands)
    from edge.cli.app import app

    runner = CliRunner()

    def invoke(*args: str, width: int = 100):
        return runner.invoke(app, list(args), env={"COLUMNS": str(width)}, prog_name="edge")

    return invoke


# ---------------------------------------------------------------------------------------------- help

@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_shows_flags_as_flags_and_examples(cli, command):
    done = cli(*command, "--help")
    assert done.exit_code == 0, done.output
    assert "<bool>" not in done.output  # --force, not --force <bool>
    assert "Examples" in done.output
    example = re.search(r"Examples\s*\n\s*(edge [^\n]+)", done.output)
    assert example and example.group(1).startswith("edge " + " ".join(command)), done.output


@pytest.mark.parametrize("command", [[], *COMMANDS], ids=lambda c: " ".join(c) or "edge")
def test_help_fits_80_columns_without_cutting_a_word(cli, command):
    """Rich's help table cuts a word it cannot wrap (a long flag alias, "a/b/c/d" help) with an ellipsis."""
    done = cli(*command, "--help", width=80)
    assert done.exit_code == 0, done.output
    assert "…" not in done.output, done.output
    assert max(len(line) for line in done.output.splitlines()) <= 80


def test_root_version_completion_and_options(cli):
    assert cli("-V").output.strip() == cli("--version").output.strip()
    assert re.fullmatch(r"edge \d+\.\d+\.\d+\S*", cli("-V").output.strip())
    root = cli("--help").output
    for option in ("--install-completion", "--show-completion", "--verbose", "--quiet", "-V"):
        assert option in root
    assert "<bool>" not in root
    assert root.index("train") < root.index("export") < root.index("bench") < root.index("predict")


def test_int8_io_advice_is_consistent(cli):
    """uint8 I/O for MediaPipe and raw-pixel consumers; int8 only when the app feeds pixel - 128 itself."""
    text = " ".join(cli("export", "--help", width=200).output.split())
    assert "MediaPipe" in text and "refuse int8 input" in text and "only when the app feeds that itself" in text
    import inspect

    from edge.export.formats import tflite

    warning = re.sub(r'"\s+f?"', "", inspect.getsource(tflite.inspect))  # the implicitly joined literals
    assert "Keep uint8 for MediaPipe Tasks" in warning and "only pays when the app feeds pixel - 128 itself" in warning


def test_defaults_shown_come_from_the_api():
    from edge.bench.runner import BenchSettings
    from edge.cli import bench_cmd, export_cmd
    from edge.export.plan import ExportSettings

    assert ExportSettings() == export_cmd.DEFAULTS and BenchSettings() == bench_cmd.DEFAULTS


def test_quiet_and_verbose_together_is_one_sentence(edge_cli):
    done = edge_cli("-q", "-v", "bench")
    assert done.returncode == 2 and "not both" in done.stderr and "Traceback" not in done.stderr


# ---------------------------------------------------------------------------------------------- the latest run/export

def _run(root: Path, name: str, finished: float | None) -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / "model.keras").write_bytes(b"x")
    if finished is not None:
        (path / "spec.json").write_text("{}")
        os.utime(path / "spec.json", (finished, finished))
    return path


def test_latest_run_is_the_most_recently_finished(tmp_path):
    now = time.time()
    _run(tmp_path, "old", now - 100)
    newest = _run(tmp_path, "new", now - 10)
    _run(tmp_path, "unfinished", None)
    found = discover.latest_run(tmp_path)
    assert found.path == newest and "new" in found.describe()


def test_latest_run_refuses_when_ambiguous_or_absent(tmp_path):
    with pytest.raises(EdgeError, match="No finished run under"):
        discover.latest_run(tmp_path / "runs")
    second = int(time.time()) - 50
    _run(tmp_path, "a", second + 0.1)
    _run(tmp_path, "b", second + 0.7)
    with pytest.raises(EdgeError, match="within the same second") as caught:
        discover.latest_run(tmp_path)
    assert len(str(caught.value).splitlines()) == 1


def test_latest_export(tmp_path):
    with pytest.raises(EdgeError, match="No export folder"):
        discover.latest_export(tmp_path)
    now = time.time()
    for name, age in (("a", 100), ("b", 5)):
        report = tmp_path / name / "export" / "export_report.json"
        report.parent.mkdir(parents=True)
        report.write_text("{}")
        os.utime(report, (now - age, now - age))
    assert discover.latest_export(tmp_path).path == tmp_path / "b" / "export"


def test_cli_without_a_run_says_so_in_one_sentence(tmp_path, edge_cli):
    for command, expect in ((["export", "--format", "tflite,coreml"], "No finished run under runs/"),
                            (["bench"], "No export folder under runs/")):
        done = edge_cli(*command, cwd=tmp_path)
        assert done.returncode == 2, done.stdout + done.stderr
        assert expect in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) <= 2


# ---------------------------------------------------------------------------------------------- logs

def test_logs_silenced_and_back(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    try:
        logs.configure(verbose=False)
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == logs.QUIET_TF_LEVEL
        for name in ("tensorflow", "absl", "coremltools", "onnxruntime", "tf2onnx"):
            assert logging.getLogger(name).getEffectiveLevel() >= logging.ERROR
        # onnxruntime's quantizer logs through the root logger: the record is dropped by its path
        record = logging.LogRecord("root", logging.WARNING, "/x/site-packages/onnxruntime/quantization/qdq.py", 1,
                                   "Axis 1 is out-of-range for weight", None, None)
        assert not logging.getLogger().filter(record)
        ours = logging.LogRecord("root", logging.WARNING, "/x/src/edge/thing.py", 1, "edge's own", None, None)
        assert logging.getLogger().filter(ours)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            logs.configure(verbose=False)  # re-adds its filter in front of the "default" one
            warnings.warn_explicit("noise", UserWarning, "x.py", 1, module="coremltools.models")
            warnings.warn_explicit("ours", UserWarning, "x.py", 1, module="edge.predict")
        assert [str(w.message) for w in caught] == ["ours"]
        logs.configure(verbose=True)
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
        assert logging.getLogger().filter(record)
        assert logging.getLogger("coremltools").getEffectiveLevel() < logging.ERROR
    finally:
        logs.configure(verbose=False)


def test_third_party_import_noise_is_gone():
    """TensorFlow's absl lines and coremltools' warnings on import: none by default, all with -v."""
    code = ("import sys; from edge import logs; logs.configure(verbose=len(sys.argv) > 1); "
            "import coremltools, tensorflow, edge.keras_setup; print('ok')")  # whoever imports TensorFlow first
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert quiet.returncode == 0 and quiet.stdout.strip() == "ok"
    assert quiet.stderr.strip() == "", quiet.stderr
    if sys.platform != "darwin":
        loud = subprocess.run([sys.executable, "-c", code, "-v"], capture_output=True, text=True, timeout=300,
                              env=env)
        assert "_MLModelProxy" in loud.stderr  # coremltools' macOS-only module: the warning is back with -v
        assert os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "0"  # configure(verbose=True) ran in the child only


def test_palettization_dependency_is_pinned_and_installed():
    """coremltools' k-means palettization (--coreml-compression palettize*) imports scikit-learn, which
    coremltools does not require: a clean install without the pin fails those exports."""
    from importlib.metadata import version

    root = Path(__file__).resolve().parents[1]
    pin = re.search(r'"scikit-learn==([^"]+)"', (root / "pyproject.toml").read_text())
    assert pin, "pyproject.toml must pin scikit-learn"
    assert version("scikit-learn") == pin.group(1)
    from sklearn.cluster import KMeans  # noqa: F401  what coremltools' palettizer imports


# ---------------------------------------------------------------------------------------------- --json and -q

def _colour_case(tmp_path: Path, make_colour_onnx) -> tuple[Path, Path]:
    make_colour_onnx(tmp_path / "colour.onnx")
    for label, rgb in {"red": (200, 10, 10), "green": (10, 200, 10), "blue": (10, 10, 200)}.items():
        (tmp_path / "data" / label).mkdir(parents=True)
        Image.new("RGB", (8, 8), rgb).save(tmp_path / "data" / label / "0.png")
    return tmp_path / "colour.onnx", tmp_path / "data"


def test_bench_json_to_stdout_alone_and_quiet(tmp_path, edge_cli, make_colour_onnx):
    model, data = _colour_case(tmp_path, make_colour_onnx)
    args = ["bench", str(model), "--data", str(data), "--labels", "red,green,blue", "--runs", "3", "--warmup", "0",
            "--out", str(tmp_path / "out")]
    done = edge_cli(*args, "--json", "-")
    assert done.returncode == 0, done.stderr
    data_out = json.loads(done.stdout)  # nothing else on stdout
    assert data_out == json.loads((tmp_path / "out" / "bench.json").read_text())
    assert "colour.onnx" in done.stderr  # the table went to stderr
    quiet = edge_cli("-q", *args, columns=80)
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert "colour.onnx" in quiet.stdout and "wrote" not in quiet.stdout and "reference" not in quiet.stdout
    to_file = edge_cli(*args, "-q", "--json", str(tmp_path / "b.json"))
    assert to_file.returncode == 0 and "colour.onnx" in to_file.stdout
    assert json.loads((tmp_path / "b.json").read_text())["models"][0]["name"] == "colour.onnx"


@pytest.mark.slow
def test_train_export_bench_as_typed(tmp_path, edge_cli):
    """The design card: ``edge train DATA && edge export --format tflite,coreml && edge bench``, with --json."""
    from edge.data.synth import synth

    synth(tmp_path / "shapes", classes=3, per_class=12, image_size=32, seed=0)
    train = edge_cli("train", "shapes", "--weights", "none", "--alpha", "0.35", "--image-size", "32", "--epochs", "1",
                     "--fine-tune-epochs", "0", "--batch-size", "8", "-q", "--json", "-", cwd=tmp_path)
    assert train.returncode == 0, train.stderr
    trained = json.loads(train.stdout)
    assert Path(trained["run_dir"]) == Path("runs/shapes") and "test" in trained["metrics"]
    assert trained["spec"]["labels"] == ["circle", "square", "triangle"]
    export = edge_cli("export", "--format", "tflite,coreml", "--max-drop", "100", "--no-verify", cwd=tmp_path,
                      columns=80)
    assert export.returncode == 0, export.stderr
    assert "Using the most recent finished run: runs/shapes" in export.stdout
    foreign = [line for line in export.stderr.splitlines() if line.strip()]
    assert len(foreign) <= 3, export.stderr  # at most a handful of lines that are not edge's own
    bench = edge_cli("bench", "--no-latency", cwd=tmp_path, columns=80)
    assert bench.returncode == 0, bench.stderr
    assert "Using the most recent export folder: runs/shapes/export" in bench.stdout
    assert "shapes_fp16.mlpackage" in bench.stdout and "…" not in bench.stdout
