"""Labels are validated once, at scan time (folders, pre-split folders, CSV); class links into the data
folder are refused; images under two labels are reported; CSV headers and paths. No TensorFlow here."""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import edge.data.scan as scan_module
from edge.data.scan import scan
from edge.errors import EdgeError


def _image(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (12, 12, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _dataset(root: Path, classes=("a", "b", "c"), per_class=3) -> Path:
    for c, name in enumerate(classes):
        for i in range(per_class):
            _image(root / name / f"{i}.png", seed=100 * c + i)
    return root


def _refused(*args, **kwargs) -> str:
    with pytest.raises(EdgeError) as info:
        scan(*args, **kwargs)
    message = str(info.value)
    assert message.endswith(".") and "\n" not in message, message
    return message


# --- labels from folders ------------------------------------------------------------------------

def test_folder_name_with_a_newline_is_refused(tmp_path):
    root = _dataset(tmp_path / "d", classes=("square", "cir\ncle", "star"))
    message = _refused(root)
    assert repr("cir\ncle") in message and "control character" in message


def test_folder_names_differing_only_in_case_are_refused(tmp_path):
    root = _dataset(tmp_path / "d", classes=("Daisy", "daisy", "rose"))
    message = _refused(root)
    assert "'Daisy'" in message and "'daisy'" in message and "letter case" in message


def test_folder_names_differing_only_in_unicode_form_are_refused(tmp_path):
    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    root = _dataset(tmp_path / "d", classes=(nfc, nfd, "tea"))
    message = _refused(root)
    assert ascii(nfc) in message and ascii(nfd) in message  # escaped: they would print the same


def test_labels_are_stored_in_nfc(tmp_path):
    root = _dataset(tmp_path / "d", classes=(unicodedata.normalize("NFD", "café"), "tea"))
    assert scan(root).labels == [unicodedata.normalize("NFC", "café"), "tea"]


def test_folder_name_with_surrounding_space_is_refused(tmp_path):
    root = _dataset(tmp_path / "d", classes=("daisy ", "rose"))
    assert "'daisy '" in _refused(root)


def test_presplit_folders_are_checked_across_splits(tmp_path):
    root = tmp_path / "d"
    _dataset(root / "train", classes=("Daisy", "rose"))
    _dataset(root / "val", classes=("daisy", "rose"))
    message = _refused(root)
    assert "'train/Daisy'" in message and "'val/daisy'" in message


def test_presplit_folder_with_control_character_is_refused(tmp_path):
    root = tmp_path / "d"
    _dataset(root / "train", classes=("ro\tse", "tulip"))
    _dataset(root / "val", classes=("ro\tse", "tulip"))
    assert repr("train/ro\tse") in _refused(root)


# --- class folders that are links ---------------------------------------------------------------

def test_class_link_into_the_data_folder_is_refused(tmp_path):
    root = _dataset(tmp_path / "d")
    os.symlink(root / "a", root / "zz_copy")
    message = _refused(root)
    assert "'zz_copy'" in message and "symbolic link" in message


def test_class_link_to_the_data_folder_itself_is_refused(tmp_path):
    root = _dataset(tmp_path / "d")
    os.symlink(root, root / "loop")
    assert "'loop'" in _refused(root)


def test_class_link_to_a_folder_elsewhere_still_works(tmp_path):
    root = _dataset(tmp_path / "d", classes=("a", "b"))
    elsewhere = _dataset(tmp_path / "elsewhere", classes=("c",))
    os.symlink(elsewhere / "c", root / "c")
    data = scan(root)
    assert data.labels == ["a", "b", "c"] and len(data.samples) == 9


# --- the same image under two labels --------------------------------------------------------------

def test_identical_files_under_two_labels_are_reported(tmp_path, monkeypatch):
    root = _dataset(tmp_path / "d")
    (root / "b" / "copy.png").write_bytes((root / "a" / "0.png").read_bytes())
    (root / "c" / "big.png").write_bytes((root / "a" / "1.png").read_bytes() + b"\0" * 1000)  # other size
    hashed = []
    real = scan_module._digest
    monkeypatch.setattr(scan_module, "_digest", lambda p: hashed.append(Path(p).name) or real(p))
    data = scan(root)
    assert len(data.conflicts) == 1
    conflict = data.conflicts[0]
    assert conflict.kind == "identical files" and conflict.labels == ("a", "b")
    assert sorted(Path(p).name for p in conflict.paths) == ["0.png", "copy.png"]
    assert "'a' and 'b'" in conflict.describe() and "copy.png" in conflict.describe()
    assert sorted(hashed) == ["0.png", "copy.png"]  # only files whose size another label shares are read
    report = json.loads(json.dumps(data.to_report()))
    assert report["conflicts"] == [{"kind": "identical files", "labels": ["a", "b"], "paths": list(conflict.paths)}]


def test_identical_files_under_one_label_are_not_a_conflict(tmp_path):
    root = _dataset(tmp_path / "d")
    (root / "a" / "copy.png").write_bytes((root / "a" / "0.png").read_bytes())
    assert scan(root).conflicts == []


def test_one_csv_file_under_two_labels_is_reported(tmp_path):
    root = _dataset(tmp_path / "d")
    rows = ["filename,label"] + [f"{p.relative_to(root)},{p.parent.name}" for p in sorted(root.rglob("*.png"))]
    rows.append("a/0.png,b")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    data = scan(root, csv_file=root / "labels.csv")
    assert [(c.kind, c.labels, [Path(p).name for p in c.paths]) for c in data.conflicts] == [
        ("same file", ("a", "b"), ["0.png"])]
    assert data.to_report()["conflicts"][0]["kind"] == "same file"


# --- CSV --------------------------------------------------------------------------------------------

def _csv(root: Path, lines: list[str]) -> Path:
    path = root / "labels.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _rows(root: Path) -> list[str]:
    return [f"{p.relative_to(root)},{p.parent.name}" for p in sorted(root.rglob("*.png"))]


@pytest.mark.parametrize("header", ["image,class", "filename,label", "path,label", "photo,species"])
def test_csv_header_is_recognised(tmp_path, header):
    root = _dataset(tmp_path / "d")
    data = scan(root, csv_file=_csv(root, [header] + _rows(root)))
    assert data.labels == ["a", "b", "c"] and len(data.samples) == 9 and not data.skipped


def test_csv_header_may_name_columns_in_any_order(tmp_path):
    root = _dataset(tmp_path / "d")
    rows = ["class,image"] + [",".join(reversed(r.split(","))) for r in _rows(root)]
    assert scan(root, csv_file=_csv(root, rows)).labels == ["a", "b", "c"]


def test_csv_without_header_still_works(tmp_path):
    root = _dataset(tmp_path / "d")
    assert len(scan(root, csv_file=_csv(root, _rows(root))).samples) == 9


def test_csv_row_with_empty_label_is_refused_with_its_row_number(tmp_path):
    root = _dataset(tmp_path / "d")
    rows = ["filename,label"] + _rows(root)
    rows[4] = rows[4].split(",")[0] + ","
    message = _refused(root, csv_file=_csv(root, rows))
    assert message.startswith("Row 5 of CSV file") and "empty label" in message


def test_csv_label_with_control_character_is_refused(tmp_path):
    root = _dataset(tmp_path / "d")
    rows = ["filename,label"] + _rows(root)
    rows[2] = rows[2].split(",")[0] + ',"a\x07b"'
    message = _refused(root, csv_file=_csv(root, rows))
    assert "Row 3" in message and repr("a\x07b") in message


def test_csv_labels_differing_only_in_case_are_refused_naming_rows(tmp_path):
    root = _dataset(tmp_path / "d")
    rows = ["filename,label"] + _rows(root)
    rows[-1] = rows[-1].split(",")[0] + ",A"
    message = _refused(root, csv_file=_csv(root, rows))
    assert "'a' (row 2)" in message and "'A' (row 10)" in message


def test_csv_messages_speak_of_rows_not_folders(tmp_path):
    root = _dataset(tmp_path / "d")
    rows = ["image,class"] + _rows(root) + ["missing.png,ghost"]
    message = _refused(root, csv_file=_csv(root, rows))
    assert "folder" not in message and "row" in message and "'ghost'" in message


@pytest.mark.parametrize("outside", ["../elsewhere/x.png", "ABSOLUTE"])
def test_csv_path_outside_the_data_folder_is_refused_unless_allowed(tmp_path, outside):
    root = _dataset(tmp_path / "d")
    extra = _image(tmp_path / "elsewhere" / "x.png", seed=99)
    name = str(extra) if outside == "ABSOLUTE" else outside
    csv_file = _csv(root, ["filename,label"] + _rows(root) + [f"{name},a"])
    message = _refused(root, csv_file=csv_file)
    assert "Row 11" in message and "outside the data folder" in message and repr(name) in message
    data = scan(root, csv_file=csv_file, allow_outside=True)
    assert str(extra.resolve()) in {s.path for s in data.samples}


def test_csv_absolute_path_inside_the_data_folder_is_fine(tmp_path):
    root = _dataset(tmp_path / "d")
    rows = [f"{p},{p.parent.name}" for p in sorted(root.rglob("*.png"))]
    assert len(scan(root, csv_file=_csv(root, rows)).samples) == 9


def test_csv_repeated_row_is_skipped_once(tmp_path):
    root = _dataset(tmp_path / "d")
    rows = _rows(root)
    data = scan(root, csv_file=_csv(root, rows + [rows[0].replace(",", ",  ")]))
    assert len(data.samples) == 9 and [s.reason for s in data.skipped] == ["repeats row 1 of labels.csv (same file and label)"]


# --- through the real CLI: refused at scan time, one sentence, exit 2 -------------------------------

def _cli_refusal(edge_cli, tmp_path, *args) -> str:
    proc = edge_cli("train", *args, "--weights", "none", "--run-dir", str(tmp_path / "run"), timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()
    return " ".join(proc.stderr.split())


def test_cli_refuses_a_class_folder_with_a_newline(edge_cli, tmp_path):
    root = _dataset(tmp_path / "d", classes=("square", "cir\ncle", "star"))
    message = _cli_refusal(edge_cli, tmp_path, str(root))
    assert "'cir\\ncle' contains a control character" in message


def test_cli_refuses_a_csv_row_outside_the_data_folder(edge_cli, tmp_path):
    root = _dataset(tmp_path / "d")
    _image(tmp_path / "x.png", seed=7)
    csv_file = _csv(root, ["image,class"] + _rows(root) + ["../x.png,a"])
    message = _cli_refusal(edge_cli, tmp_path, str(root), "--csv", str(csv_file))
    assert "Row 11 of CSV file" in message and "outside the data folder" in message
