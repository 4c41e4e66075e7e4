"""TrainConfig owns validation: the API and the CLI refuse the same bad values with the same
sentence, before any work (no scan, no TensorFlow); the CLI reads its defaults from the config;
train() never changes the caller's config. Fast: nothing here trains a model."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from edge.errors import EdgeError
from edge.train.config import TrainConfig, flag, format_split

# (option as train() takes it, CLI arguments, words the sentence must contain)
BAD = [
    ({"epochs": -1}, ["--epochs", "-1"], "at least 1"),
    ({"epochs": 0}, ["--epochs", "0"], "at least 1"),
    ({"fine_tune_epochs": -2}, ["--fine-tune-epochs", "-2"], "at least 0"),
    ({"image_size": 0}, ["--image-size", "0"], "between 32 and 1024 pixels"),
    ({"image_size": -5}, ["--image-size", "-5"], "between 32 and 1024 pixels"),
    ({"image_size": 100000}, ["--image-size", "100000"], "runs out of memory"),
    ({"batch_size": 0}, ["--batch-size", "0"], "at least 1"),
    ({"learning_rate": 0.0}, ["--lr", "0"], "greater than 0"),
    ({"fine_tune_learning_rate": -1e-4}, ["--fine-tune-lr", "-0.0001"], "greater than 0"),
    ({"dropout": 1.0}, ["--dropout", "1"], "below 1"),
    ({"label_smoothing": -0.1}, ["--label-smoothing", "-0.1"], "at least 0"),
    ({"patience": -1}, ["--patience", "-1"], "at least 0"),
    ({"fine_tune_views": -1}, ["--fine-tune-views", "-1"], "at least 0"),
    ({"fine_tune_schedule": "linear"}, ["--fine-tune-schedule", "linear"], "one of cosine, constant"),
    ({"class_weights": "balance"}, ["--class-weights", "balance"], "one of auto, balanced, none"),
    ({"resize": "lanczos"}, ["--resize", "lanczos"], "one of stretch-bilinear, stretch-mediapipe"),
    ({"mixed_precision": "yes"}, ["--mixed-precision", "yes"], "one of auto, on, off"),
    ({"devices": "cpu:0"}, ["--devices", "cpu:0"], "cpu:N with N at least 1"),
    ({"devices": "tpu"}, ["--devices", "tpu"], "cpu:N"),
    ({"split": "60/20"}, ["--split", "60/20"], "three non-negative"),
    ({"split": "0/50/50"}, ["--split", "0/50/50"], "non-zero train part"),
    ({"seed": -1}, ["--seed", "-1"], "between 0 and"),
    ({"alpha": 0.0}, ["--alpha", "0"], "greater than 0"),
    ({"alpha": 0.5, "backbone": "resnet50"}, ["--alpha", "0.5", "--backbone", "resnet50"], "applies only to"),
    ({"backbone": "vgg99"}, ["--backbone", "vgg99"], "Unknown backbone 'vgg99'"),
]
IDS = [" ".join(cli) for _, cli, _ in BAD]


def _one_sentence(message: str) -> None:
    assert message.endswith(".") and message.count(". ") == 0, message
    assert "\n" not in message.strip()


@pytest.mark.parametrize("options, cli, words", BAD, ids=IDS)
def test_api_refuses_bad_values_before_any_work(options, cli, words, tmp_path):
    """The data folder does not exist: only a config error raised before the scan names the option."""
    from edge.train import train

    with pytest.raises(EdgeError) as direct:
        TrainConfig(**options)
    with pytest.raises(EdgeError) as through_train:
        train(tmp_path / "missing", run_dir=tmp_path / "run", quiet=True, **options)
    assert words in str(direct.value)
    assert str(through_train.value) == str(direct.value)
    _one_sentence(str(direct.value))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("options, cli, words", BAD, ids=IDS)
def test_cli_refuses_the_same_values_with_the_same_sentence(options, cli, words, tmp_path, monkeypatch, capsys):
    """``edge train`` through its real entry point (in this process, for speed): exit 2, the API's sentence."""
    from edge.cli.main import main

    with pytest.raises(EdgeError) as api:
        TrainConfig(**options)
    monkeypatch.setattr(sys, "argv", ["edge", "train", str(tmp_path / "missing"), "--run-dir", str(tmp_path / "run"),
                                      *cli])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "Traceback" not in err
    assert err == f"error: {' '.join(str(api.value).split())}"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, words", [
    (["--epochs", "-1"], "epochs (--epochs) must be at least 1, not -1."),
    (["--image-size", "0"], "image_size (--image-size) must be between 32 and 1024 pixels, not 0"),
    (["--class-weights", "balance"], "class_weights (--class-weights) must be one of auto, balanced, none"),
])
def test_real_cli_process_refuses_before_any_work(args, words, edge_cli, tmp_path):
    """A real ``python -m edge train`` process on a real dataset: exit 2, one sentence, no run directory."""
    from edge.data.synth import synth

    data = synth(tmp_path / "data", classes=2, per_class=3, image_size=32, quiet=True).out_dir
    proc = edge_cli("train", str(data), "--run-dir", str(tmp_path / "run"), "--weights", "none", *args, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and words in " ".join(proc.stderr.split())
    assert "Dataset" not in proc.stdout  # refused before the scan
    assert not (tmp_path / "run").exists() and not (Path.cwd() / "runs" / "data").exists()


def test_values_are_normalised():
    config = TrainConfig(split="60/20/20", class_weights="None", mixed_precision=" OFF ", devices="CPU:2",
                         csv=Path("labels.csv"))
    assert config.split == pytest.approx((0.6, 0.2, 0.2))
    assert config.class_weights == "none"  # through the API "None" meant balanced before
    assert config.mixed_precision == "off" and config.devices == "cpu:2" and config.csv == "labels.csv"
    assert TrainConfig(split=[8, 1, 1]).split == pytest.approx((0.8, 0.1, 0.1))
    assert TrainConfig(split="80/10/10").split == TrainConfig().split
    import numpy as np

    numpy_values = TrainConfig(epochs=np.int64(3), dropout=np.float32(0.5))
    assert type(numpy_values.epochs) is int and type(numpy_values.dropout) is float
    import json

    json.dumps(numpy_values.to_dict())


def test_the_record_names_the_layer_fine_tuning_started_from():
    """spec.json and the resume check hold the resolved cut: when a backbone's default cut changes, an
    old run still says what it fine-tuned, and an unfinished one is not continued with another cut."""
    from edge.backbones import get_backbone

    assert TrainConfig().fine_tune_from is None  # the option stays unset ...
    assert TrainConfig().to_dict()["fine_tune_from"] == get_backbone("mobilenet_v2").fine_tune_from == "block_14_expand"
    assert TrainConfig(backbone="resnet50").resume_key()["fine_tune_from"] == get_backbone("resnet50").fine_tune_from
    assert TrainConfig(fine_tune_from="block_15_expand").to_dict()["fine_tune_from"] == "block_15_expand"
    assert TrainConfig().resume_key() != {**TrainConfig().resume_key(), "fine_tune_from": None}  # stop 18's record


@pytest.mark.parametrize("options", [{"epochs": "5"}, {"epochs": 2.5}, {"image_size": True}, {"augment": "no"},
                                     {"split": (0.8, 0.2)}, {"split": "a/b/c"}, {"class_weights": None},
                                     {"learning_rate": float("nan")}, {"csv": ""}, {"weights": None}])
def test_wrong_types_are_one_sentence(options):
    with pytest.raises(EdgeError) as info:
        TrainConfig(**options)
    _one_sentence(str(info.value))


def test_split_string_works_through_the_api(tmp_path):
    """``split="60/20/20"`` (the CLI's form) passes validation; before, it was a raw TypeError."""
    from edge.train import train

    with pytest.raises(EdgeError, match="does not exist"):
        train(tmp_path / "missing", run_dir=tmp_path / "run", split="60/20/20", quiet=True)


def test_train_copies_the_callers_config(tmp_path):
    from edge.train import train

    config = TrainConfig(epochs=3, extra={"note": 1})
    with pytest.raises(EdgeError, match="does not exist"):
        train(tmp_path / "missing", run_dir=tmp_path / "run", config=config, epochs=5, batch_size=4, quiet=True)
    assert config.epochs == 3 and config.batch_size == TrainConfig().batch_size and config.extra == {"note": 1}
    with pytest.raises(TypeError, match="unknown option 'epoch'"):
        train(tmp_path / "missing", config=config, epoch=5)


def test_csv_allow_outside_reaches_the_scan(tmp_path, monkeypatch, capsys):
    """The config field and ``--csv-allow-outside`` are passed to scan(); without them scan is called as before."""
    import edge.train.runner as runner
    from edge.cli.main import main

    seen = []

    def fake_scan(*args, **kwargs):
        seen.append(kwargs.get("allow_outside", False))
        raise EdgeError("Stopped after the scan.")

    monkeypatch.setattr(runner, "scan", fake_scan)
    for allow in (False, True):
        with pytest.raises(EdgeError, match="Stopped"):
            runner.train(tmp_path, run_dir=tmp_path / "run", weights="none", csv_allow_outside=allow, quiet=True)
    base = ["edge", "train", str(tmp_path), "--run-dir", str(tmp_path / "run"), "--weights", "none"]
    for extra in ([], ["--csv-allow-outside"]):
        monkeypatch.setattr(sys, "argv", base + extra)
        with pytest.raises(SystemExit):
            main()
    assert seen == [False, True, False, True]
    assert TrainConfig().csv_allow_outside is False


def test_cli_defaults_are_the_configs():
    """Every ``edge train`` default equals TrainConfig's, and none is restated as a literal in the CLI."""
    from edge.cli import train_cmd

    defaults = TrainConfig()
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    params = inspect.signature(train_cmd.train).parameters
    covered = 0
    for name, param in params.items():
        if name not in fields:
            continue
        covered += 1
        option = param.default
        expected = format_split(defaults.split) if name == "split" else getattr(defaults, name)
        assert option.default == expected, name
        assert flag(name) in option.param_decls[0], name
    assert covered == len(fields) - 1  # every field but ``extra`` has a flag

    source = Path(inspect.getsourcefile(train_cmd)).read_text()
    func = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef) and n.name == "train")
    for arg, default in zip(func.args.args[-len(func.args.defaults):], func.args.defaults):
        is_option = isinstance(default, ast.Call) and getattr(default.func, "attr", None) == "Option"
        if arg.arg in fields and is_option and default.args:
            first = default.args[0]
            assert not (isinstance(first, ast.Constant) and first.value is not None), f"{arg.arg} restates a default"
    assert "_check_choice" not in source


def test_validation_imports_no_tensorflow():
    code = ("import sys\nfrom edge.train.config import TrainConfig\nfrom edge.errors import EdgeError\n"
            "TrainConfig(split='60/20/20')\ntry:\n    TrainConfig(image_size=0)\nexcept EdgeError:\n    pass\n"
            "import edge.cli.train_cmd\nprint('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
