"""The synthetic dataset generator: layout, real image files, determinism, options, errors."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge.data.synth import MAX_CLASSES, SHAPES, class_table, synth
from edge.errors import EdgeError


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_writes_class_folders_of_real_jpegs(tmp_path):
    result = synth(tmp_path / "data", classes=5, per_class=4, image_size=48, seed=1, quiet=True)
    assert result.out_dir == tmp_path / "data"
    assert result.labels == sorted(["circle", "square", "triangle", "star", "cross"])
    assert result.counts == {label: 4 for label in result.labels}
    assert result.total == 20
    assert sorted(p.name for p in result.out_dir.iterdir()) == [".edge-synth.json", *result.labels]
    for label in result.labels:
        files = sorted((result.out_dir / label).iterdir())
        assert [f.name for f in files] == [f"{label}_{i:04d}.jpg" for i in range(4)]
        for f in files:
            with Image.open(f) as img:
                assert img.format == "JPEG"
                assert img.size == (48, 48)
                assert img.mode == "RGB"
    assert not list(tmp_path.glob(".*")), "temporary directory left behind"


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path):
    a = synth(tmp_path / "a", classes=3, per_class=3, image_size=40, seed=7, image_format="mixed", quiet=True)
    b = synth(tmp_path / "b", classes=3, per_class=3, image_size=40, seed=7, image_format="mixed", quiet=True)
    c = synth(tmp_path / "c", classes=3, per_class=3, image_size=40, seed=8, image_format="mixed", quiet=True)
    assert _digest(a.out_dir) == _digest(b.out_dir)
    assert set(_digest(a.out_dir).values()).isdisjoint(_digest(c.out_dir).values())


def test_images_of_one_class_vary_and_classes_differ_in_colour(tmp_path):
    result = synth(tmp_path / "d", classes=5, per_class=12, image_size=48, seed=0, quiet=True)
    means = {}
    for label in result.labels:
        arrays = [np.asarray(Image.open(f), dtype=np.float32) for f in sorted((result.out_dir / label).iterdir())]
        assert len({a.tobytes() for a in arrays}) == len(arrays), "duplicate images"
        assert np.std([a.mean() for a in arrays]) > 1.0, "no nuisance variation"
        # The object colour: the most saturated pixels of each image, averaged.
        tops = []
        for a in arrays:
            sat = a.max(axis=2) - a.min(axis=2)
            tops.append(a[sat >= np.percentile(sat, 90)].mean(axis=0))
        means[label] = np.mean(tops, axis=0)
    labels = list(means)
    gaps = [np.abs(means[x] - means[y]).max() for i, x in enumerate(labels) for y in labels[i + 1 :]]
    assert min(gaps) > 30, f"two classes share a colour family: {means}"


def test_png_and_mixed_formats(tmp_path):
    png = synth(tmp_path / "png", classes=2, per_class=3, image_size=32, image_format="png", quiet=True)
    files = list(png.out_dir.rglob("*/*.*"))
    assert files and all(f.suffix == ".png" for f in files)
    with Image.open(files[0]) as img:
        assert img.format == "PNG"
    mixed = synth(tmp_path / "mixed", classes=2, per_class=20, image_size=32, image_format="mixed", quiet=True)
    assert {f.suffix for f in mixed.out_dir.rglob("*/*.*")} == {".png", ".jpg"}


def test_more_classes_than_shapes_get_distinct_readable_names(tmp_path):
    names = [c.name for c in class_table(len(SHAPES) + 4)]
    assert len(set(names)) == len(names)
    assert all(name.replace("_", "").isalpha() for name in names)
    looks = {(c.shape, c.palette, c.texture) for c in class_table(MAX_CLASSES)}
    assert len(looks) == MAX_CLASSES
    result = synth(tmp_path / "many", classes=len(SHAPES) + 4, per_class=1, image_size=32, quiet=True)
    assert len(result.labels) == len(SHAPES) + 4


def test_refuses_non_empty_directory_unless_forced(tmp_path):
    out = tmp_path / "busy"
    synth(out, classes=3, per_class=1, image_size=32, quiet=True)
    with pytest.raises(EdgeError, match="not empty.*--force"):
        synth(out, classes=2, per_class=1, image_size=32, quiet=True)
    result = synth(out, classes=2, per_class=1, image_size=32, force=True, quiet=True)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == result.labels
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary folders left behind"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert synth(empty, classes=2, per_class=1, image_size=32, quiet=True).total == 2


def test_force_never_replaces_a_folder_synth_did_not_draw(tmp_path):
    """The user's folder holding class-like sub-folders is not edge's: --force refuses, nothing is lost."""
    out = tmp_path / "mine"
    (out / "circle").mkdir(parents=True)
    (out / "circle" / "holiday.jpg").write_bytes(b"my photo")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(EdgeError, match="not written by edge data synth.*even with --force") as info:
        synth(out, classes=2, per_class=1, image_size=32, force=True, quiet=True)
    assert str(info.value).count(". ") == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "circle" / "holiday.jpg").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"], "nothing drawn beside it"


def test_failed_force_keeps_the_old_dataset(tmp_path, monkeypatch):
    """The replacement is drawn aside: a failure half-way leaves the old dataset complete and no debris."""
    import edge.data.synth as synth_module

    out = tmp_path / "data"
    synth(out, classes=2, per_class=2, image_size=32, quiet=True)
    before = _digest(out)
    calls = {"n": 0}
    real = synth_module.draw_image

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(synth_module, "draw_image", failing)
    with pytest.raises(KeyboardInterrupt):
        synth(out, classes=3, per_class=2, image_size=32, force=True, quiet=True)
    assert _digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_unwritable_parent_is_one_sentence(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(EdgeError, match="Cannot create the output folder .*file") as info:
        synth(tmp_path / "file" / "data", classes=2, per_class=1, quiet=True)
    assert str(info.value).count(". ") == 0


def test_cli_defaults_come_from_the_api():
    import inspect

    from edge.cli import data_cmd

    api = inspect.signature(synth).parameters
    cli = inspect.signature(data_cmd.synth_command).parameters
    for name in ("classes", "per_class", "image_size", "seed", "image_format", "force"):
        assert cli[name].default.default == api[name].default, name


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"classes": 0}, "classes"),
        ({"classes": MAX_CLASSES + 1}, "classes"),
        ({"per_class": 0}, "per class"),
        ({"image_size": 8}, "image size"),
        ({"image_format": "gif"}, "format"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_options_are_one_sentence_errors(tmp_path, kwargs, message):
    with pytest.raises(EdgeError, match=message) as info:
        synth(tmp_path / "x", **({"per_class": 1, "quiet": True} | kwargs))
    assert str(info.value).count(". ") == 0 and str(info.value).endswith(".")
    assert not (tmp_path / "x").exists()


def test_file_as_destination_is_refused(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(EdgeError, match="not a directory"):
        synth(target, classes=2, per_class=1, quiet=True)


def test_importing_synth_does_not_load_tensorflow():
    code = "import sys, edge.data.synth, edge.cli.data_cmd; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_synth_writes_dataset_and_prints_summary(tmp_path):
    from typer.testing import CliRunner

    from edge.cli import data_cmd  # noqa: F401  (registers `edge data`)
    from edge.cli.app import app

    out = tmp_path / "cli"
    args = ["data", "synth", str(out), "--classes", "3", "--per-class", "2", "--image-size", "32", "--seed", "3"]
    result = CliRunner().invoke(app, args + ["--format", "png"])
    assert result.exit_code == 0, result.output
    assert "total" in result.output and "edge train" in result.output
    assert len(list(out.rglob("*.png"))) == 6
    again = CliRunner().invoke(app, args)
    assert isinstance(again.exception, EdgeError) and "not empty" in str(again.exception)


def test_cli_user_error_exits_2_with_one_sentence(tmp_path, monkeypatch, capsys):
    from edge.cli.main import main

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    monkeypatch.setattr(sys, "argv", ["edge", "data", "synth", str(busy), "--per-class", "1"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "Traceback" not in err
