"""`edge data flowers`: safe extraction of local archives and the download path via file:// URLs."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from edge.data.flowers import FLOWERS_SHA256, FLOWERS_URL, check_member, download_flowers, extract_archive
from edge.errors import EdgeError

CLASSES = ("daisy", "roses", "tulips")


def _jpeg_bytes() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buf, format="JPEG")
    return buf.getvalue()


def _add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _build_archive(path: Path, extra=None, top: str = "flower_photos/") -> Path:
    """A miniature flower_photos.tgz: top/<class>/<n>.jpg for 3 classes, LICENSE.txt, plus ``extra``."""
    jpeg = _jpeg_bytes()
    with tarfile.open(path, "w:gz") as tar:
        if top:
            info = tarfile.TarInfo(top.rstrip("/"))
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        for label in CLASSES:
            for i in range(3):
                _add_file(tar, f"{top}{label}/{i}.jpg", jpeg)
        _add_file(tar, f"{top}LICENSE.txt", b"CC-BY\n")
        if extra:
            extra(tar)
    return path


def test_extracts_class_tree_and_strips_top_folder(tmp_path):
    archive = _build_archive(tmp_path / "flowers.tgz")
    result = extract_archive(archive, tmp_path / "out", quiet=True)
    assert result.out_dir == tmp_path / "out"
    assert result.labels == list(CLASSES)
    assert result.counts == {label: 3 for label in CLASSES}
    assert (tmp_path / "out" / "LICENSE.txt").read_text() == "CC-BY\n"
    assert (tmp_path / "out" / "daisy" / "0.jpg").stat().st_size > 0
    assert not (tmp_path / "out" / "flower_photos").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flowers.tgz", "out"], "staging left behind"


def test_archive_without_top_folder_is_kept_as_is(tmp_path):
    archive = _build_archive(tmp_path / "flat.tgz", top="")
    result = extract_archive(archive, tmp_path / "out", quiet=True)
    assert result.labels == list(CLASSES)


def _evil_dotdot(tar):
    _add_file(tar, "flower_photos/../../evil.txt", b"pwned")


def _evil_absolute(tar):
    _add_file(tar, "/tmp/edge_evil_absolute.txt", b"pwned")


def _evil_symlink(tar):
    info = tarfile.TarInfo("flower_photos/daisy/escape")
    info.type = tarfile.SYMTYPE
    info.linkname = "../../../outside"
    tar.addfile(info)


def _evil_absolute_symlink(tar):
    info = tarfile.TarInfo("flower_photos/passwd")
    info.type = tarfile.SYMTYPE
    info.linkname = "/etc/passwd"
    tar.addfile(info)


def _evil_hardlink(tar):
    info = tarfile.TarInfo("flower_photos/roses/link.jpg")
    info.type = tarfile.LNKTYPE
    info.linkname = "../outside.jpg"
    tar.addfile(info)


def _evil_device(tar):
    info = tarfile.TarInfo("flower_photos/null")
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3
    tar.addfile(info)


@pytest.mark.parametrize(
    "extra, message",
    [
        (_evil_dotdot, "leaves the target"),
        (_evil_absolute, "absolute path"),
        (_evil_symlink, "symbolic link"),
        (_evil_absolute_symlink, "symbolic link"),
        (_evil_hardlink, "hard link"),
        (_evil_device, "device"),
    ],
)
def test_unsafe_archives_are_rejected_before_writing_anything(tmp_path, extra, message):
    archive = _build_archive(tmp_path / "evil.tgz", extra=extra)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(EdgeError, match=message):
        extract_archive(archive, work / "out", quiet=True)
    assert list(work.iterdir()) == [], "something was written"
    assert not (tmp_path / "evil.txt").exists()
    assert not Path("/tmp/edge_evil_absolute.txt").exists()


def test_in_tree_symlink_is_allowed():
    info = tarfile.TarInfo("flower_photos/daisy/alias.jpg")
    info.type = tarfile.SYMTYPE
    info.linkname = "../roses/0.jpg"
    check_member(info)  # stays inside: no error


def test_not_an_archive_and_not_a_class_tree(tmp_path):
    junk = tmp_path / "junk.tgz"
    junk.write_bytes(b"this is not gzip")
    with pytest.raises(EdgeError, match="not a readable"):
        extract_archive(junk, tmp_path / "a", quiet=True)
    lonely = tmp_path / "lonely.tgz"
    with tarfile.open(lonely, "w:gz") as tar:
        _add_file(tar, "flower_photos/daisy/0.jpg", _jpeg_bytes())
    with pytest.raises(EdgeError, match="class-folder tree"):
        extract_archive(lonely, tmp_path / "b", quiet=True)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_download_from_file_url_with_checksum(tmp_path):
    archive = _build_archive(tmp_path / "flower_photos.tgz")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    result = download_flowers(tmp_path / "flowers", url=archive.as_uri(), sha256=digest, quiet=True)
    assert result.checksum_verified and result.sha256 == digest
    assert result.counts == {label: 3 for label in CLASSES}
    # A local path works as well, and an existing non-empty destination needs force.
    with pytest.raises(EdgeError, match="not empty"):
        download_flowers(tmp_path / "flowers", url=str(archive), sha256=None, quiet=True)
    again = download_flowers(tmp_path / "flowers", url=str(archive), sha256=None, force=True, quiet=True)
    assert not again.checksum_verified and again.total == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flower_photos.tgz", "flowers"]


def test_checksum_mismatch_extracts_nothing(tmp_path):
    archive = _build_archive(tmp_path / "flower_photos.tgz")
    with pytest.raises(EdgeError, match="SHA-256"):
        download_flowers(tmp_path / "flowers", url=archive.as_uri(), sha256=FLOWERS_SHA256, quiet=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flower_photos.tgz"]


def test_unreachable_url_is_one_sentence_naming_the_url(tmp_path):
    missing = (tmp_path / "nope.tgz").as_uri()
    with pytest.raises(EdgeError) as info:
        download_flowers(tmp_path / "flowers", url=missing, quiet=True)
    message = str(info.value)
    assert missing in message and "manually" in message
    assert FLOWERS_URL.startswith("https://storage.googleapis.com/")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_cli_flowers_from_local_archive(tmp_path):
    from typer.testing import CliRunner

    from edge.cli import data_cmd  # noqa: F401  (registers `edge data`)
    from edge.cli.app import app

    archive = _build_archive(tmp_path / "flower_photos.tgz")
    result = CliRunner().invoke(app, ["data", "flowers", str(tmp_path / "f"), "--url", str(archive)])
    assert result.exit_code == 0, result.output
    assert "roses" in result.output and "only the folder structure" in result.output
    assert (tmp_path / "f" / "tulips" / "2.jpg").is_file()
