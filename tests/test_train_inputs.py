"""Dataset layouts, the bad-input catalogue (message + exit code), image conversions, split determinism."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge.data.images import load_image
from edge.data.scan import scan
from edge.data.split import stratified_split
from edge.errors import EdgeError


def _image(path: Path, color=(200, 30, 30), mode="RGB", size=(40, 30), fmt=None, **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "I;16":
        img = Image.fromarray((np.arange(size[0] * size[1]).reshape(size[1], size[0]) * 20).astype(np.uint16))
    else:
        img = Image.new("RGB", size, color).convert(mode)
    img.save(path, format=fmt, **save)
    return path


def _dataset(root: Path, classes=("a", "b", "c"), per_class=5) -> Path:
    for c, name in enumerate(classes):
        for i in range(per_class):
            _image(root / name / f"{name}{i}.png", color=(40 * c, 10 * i, 100))
    return root


# --- layouts ---------------------------------------------------------------------------------

def test_class_folders_sorted_labels(tmp_path):
    data = scan(_dataset(tmp_path / "d", classes=("zebra", "ant", "mole")))
    assert data.layout == "folders" and data.labels == ["ant", "mole", "zebra"]
    assert len(data.samples) == 15 and not data.skipped


def test_presplit_layout_is_respected(tmp_path):
    root = tmp_path / "d"
    _dataset(root / "train", per_class=4)
    _dataset(root / "val", per_class=2)
    _dataset(root / "test", per_class=1)
    data = scan(root)
    assert data.layout == "presplit"
    assert {k: len(v) for k, v in data.presplit.items()} == {"train": 12, "val": 6, "test": 3}
    assert all("/val/" in s.path for s in data.presplit["val"])


def test_csv_layout(tmp_path):
    root = _dataset(tmp_path / "d")
    rows = ["filename,label"] + [f"{p.relative_to(root)},{'odd' if i % 2 else 'even'}"
                                 for i, p in enumerate(sorted(root.rglob("*.png")))]
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    data = scan(root, csv_file=root / "labels.csv")
    assert data.layout == "csv" and data.labels == ["even", "odd"] and len(data.samples) == 15


def test_split_is_deterministic_stratified_and_seed_dependent(tmp_path):
    data = scan(_dataset(tmp_path / "d", per_class=20))
    a = stratified_split(data.samples, (0.8, 0.1, 0.1), seed=1)
    b = stratified_split(list(reversed(data.samples)), (0.8, 0.1, 0.1), seed=1)
    c = stratified_split(data.samples, (0.8, 0.1, 0.1), seed=2)
    assert a == b
    assert a["test"] != c["test"]
    assert [len(a[k]) for k in ("train", "val", "test")] == [48, 6, 6]
    assert sorted(np.bincount([s.label for s in a["val"]])) == [2, 2, 2]


# --- bad files are skipped and listed ----------------------------------------------------------

def test_bad_files_are_skipped_and_listed(tmp_path):
    root = _dataset(tmp_path / "d")
    good = root / "a" / "a0.png"
    (root / "a" / "truncated.jpg").write_bytes(_jpeg_bytes()[:300])
    (root / "a" / "fake.jpg").write_text("this is not an image")
    (root / "a" / "empty.png").write_bytes(b"")
    (root / "b" / "notes.txt").write_text("hello")
    (root / "b" / ".hidden.png").write_bytes(good.read_bytes())
    (root / "c" / ".DS_Store").write_bytes(b"\0\0")
    data = scan(root)
    reasons = {Path(s.path).name: s.reason for s in data.skipped}
    assert set(reasons) == {"truncated.jpg", "fake.jpg", "empty.png", "notes.txt", ".hidden.png", ".DS_Store"}
    assert "0 bytes" in reasons["empty.png"] and "hidden" in reasons[".hidden.png"]
    assert "not a readable image" in reasons["truncated.jpg"] and "not a readable image" in reasons["fake.jpg"]
    assert len(data.samples) == 15


def _jpeg_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16", "LA"])
def test_image_modes_become_rgb(tmp_path, mode):
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    path = _image(tmp_path / f"x.{fmt.lower()}", mode=mode, fmt=fmt)
    arr = load_image(path, (16, 24))
    assert arr.shape == (16, 24, 3) and arr.dtype == np.uint8


def test_rgba_is_composited_on_white(tmp_path):
    path = tmp_path / "t.png"
    Image.new("RGBA", (8, 8), (255, 0, 0, 0)).save(path)
    assert (load_image(path, (8, 8)) == 255).all()


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif, quality=95)
    arr = load_image(path, (40, 20))  # displayed image is 20 wide x 40 high
    assert arr[5, 10, 0] > 200 and arr[5, 10, 2] < 60  # top is red after rotation
    assert arr[35, 10, 2] > 200


def test_sixteen_bit_keeps_range(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 65535, np.uint16)).save(path)
    assert load_image(path, (4, 4)).min() == 255


# --- fatal cases: one sentence, exit code 2 ------------------------------------------------------

def _fatal(edge_cli, *args):
    extra = () if "--weights" in args else ("--weights", "none")
    proc = edge_cli("train", *args, *extra, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    message = " ".join(proc.stderr.split())
    assert message.startswith("error:") and message.count(". ") == 0, message
    return message


def test_missing_directory(edge_cli, tmp_path):
    assert "does not exist" in _fatal(edge_cli, str(tmp_path / "nope"))


def test_no_images(edge_cli, tmp_path):
    (tmp_path / "d" / "a").mkdir(parents=True)
    (tmp_path / "d" / "a" / "readme.txt").write_text("x")
    assert "No images found" in _fatal(edge_cli, str(tmp_path / "d"))


def test_single_class(edge_cli, tmp_path):
    _dataset(tmp_path / "d", classes=("only",))
    assert "only one class (only)" in _fatal(edge_cli, str(tmp_path / "d"))


def test_empty_class_folder_is_named(edge_cli, tmp_path):
    _dataset(tmp_path / "d")
    (tmp_path / "d" / "ghost").mkdir()
    assert "'ghost' has no usable images" in _fatal(edge_cli, str(tmp_path / "d"))


def test_class_with_only_bad_files_is_named(edge_cli, tmp_path):
    _dataset(tmp_path / "d")
    (tmp_path / "d" / "broken").mkdir()
    (tmp_path / "d" / "broken" / "x.jpg").write_text("nope")
    assert "'broken' has no usable images" in _fatal(edge_cli, str(tmp_path / "d"))


def test_too_few_images_names_class_and_minimum(edge_cli, tmp_path):
    _dataset(tmp_path / "d")
    shutil.rmtree(tmp_path / "d" / "b")
    _image(tmp_path / "d" / "b" / "b0.png")
    _image(tmp_path / "d" / "b" / "b1.png")
    msg = _fatal(edge_cli, str(tmp_path / "d"))
    assert "'b' has only 2" in msg and "at least 3" in msg


def test_not_a_directory(edge_cli, tmp_path):
    (tmp_path / "file.jpg").write_bytes(b"x")
    assert "is not a directory" in _fatal(edge_cli, str(tmp_path / "file.jpg"))


def test_missing_csv(edge_cli, tmp_path):
    _dataset(tmp_path / "d")
    assert "CSV file" in _fatal(edge_cli, str(tmp_path / "d"), "--csv", str(tmp_path / "none.csv"))


def test_unknown_backbone(edge_cli, tmp_path):
    _dataset(tmp_path / "d")
    assert "Unknown backbone 'vgg99'" in _fatal(edge_cli, str(tmp_path / "d"), "--backbone", "vgg99")


def test_missing_weights_file(edge_cli, tmp_path):
    _dataset(tmp_path / "d")
    msg = _fatal(edge_cli, str(tmp_path / "d"), "--run-dir", str(tmp_path / "r"), "--weights", str(tmp_path / "w.h5"))
    assert "w.h5 does not exist" in msg


def test_scan_api_raises_edge_error(tmp_path):
    with pytest.raises(EdgeError):
        scan(tmp_path / "missing")


def test_report_lists_skipped_files(tmp_path):
    from edge.rundir import REPORT_FILE  # noqa: F401  (the report file name is part of the run layout)

    root = _dataset(tmp_path / "d")
    (root / "a" / "bad.jpg").write_text("x")
    report = scan(root).to_report()
    assert [Path(s["path"]).name for s in report["skipped"]] == ["bad.jpg"]
    assert report["counts"]["a"] == {"all": 5}
    json.dumps(report)
