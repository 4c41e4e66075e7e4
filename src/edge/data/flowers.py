"""Get the real tf_flowers photos: download ``flower_photos.tgz``, check it, extract it safely.

The archive is streamed to a temporary file with a progress bar while its SHA-256 is computed and
compared with the official checksum (the one TensorFlow Datasets registers for this file:
228,813,984 bytes). Extraction refuses the whole archive if any member is unsafe: an absolute
path, a ``..`` component, a symbolic or hard link pointing outside the target, a device or FIFO.
It extracts into a temporary sibling, strips the single top-level folder (``flower_photos/``),
checks the result is a class-folder tree, and renames it into place, so ``dest`` is either
complete or absent. The result is ready for ``edge train DEST``.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from edge.data.images import IMAGE_EXTENSIONS
from edge.data.synth import check_destination
from edge.errors import EdgeError, one_line
from edge.fileio import remove

FLOWERS_URL = "https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz"
# From tensorflow_datasets/url_checksums/tf_flowers.txt (the same file is served over http/https).
FLOWERS_SHA256 = "4c54ace7911aaffe13a365c34f650e71dd5bf1be0a58b464e5a7183e3e595d9c"
FLOWERS_SIZE = 228_813_984
FLOWERS_CLASSES = ("daisy", "dandelion", "roses", "sunflowers", "tulips")
FLOWERS_IMAGES = 3670
CHUNK = 1 << 20


@dataclass
class FlowersResult:
    """The extracted class-folder tree: where it is, its classes (sorted) and images per class."""

    out_dir: Path
    labels: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    sha256: str | None = None
    checksum_verified: bool = False

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def download_flowers(
    dest: str | Path,
    url: str = FLOWERS_URL,
    sha256: str | None = FLOWERS_SHA256,
    force: bool = False,
    quiet: bool = False,
) -> FlowersResult:
    """Download the archive at ``url`` (http(s), ``file://`` or a local path), verify, extract to ``dest``.

    ``sha256`` is the expected checksum (the official one by default); pass ``None`` for another
    archive, whose structure is then the only check.
    """
    dest = Path(dest).expanduser()
    check_destination(dest, force)
    url = _as_url(url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".download.tgz", dir=dest.parent)
    os.close(fd)
    archive = Path(tmp_name)
    try:
        digest = _download(url, archive, quiet)
        if sha256 is not None and digest != sha256.lower():
            raise EdgeError(
                f"The archive from {url} has SHA-256 {digest[:12]}..., not the expected {sha256[:12]}...; "
                "it is corrupt or not the official flower_photos.tgz, so nothing was extracted."
            )
        result = extract_archive(archive, dest, force=force, quiet=quiet)
    finally:
        remove(archive)
    result.sha256 = digest
    result.checksum_verified = sha256 is not None
    if result.checksum_verified and sha256.lower() == FLOWERS_SHA256:
        _check_official_layout(result)
    return result


def extract_archive(archive: str | Path, dest: str | Path, force: bool = False, quiet: bool = False) -> FlowersResult:
    """Safely extract a .tar/.tgz of class folders to ``dest`` and return its class counts.

    Every member is checked before anything is written; one unsafe member rejects the archive.
    A single top-level folder (``flower_photos/``) is stripped; other top-level files are kept.
    """
    archive, dest = Path(archive), Path(dest).expanduser()
    check_destination(dest, force)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".extract", dir=dest.parent))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                members = tar.getmembers()
                for member in members:
                    check_member(member)
                with _progress(quiet) as bar:
                    task = bar.add_task("Extracting", total=len(members), info="") if bar else None
                    for member in members:
                        tar.extract(member, staging, filter="data")
                        if bar:
                            bar.update(task, advance=1)
        except (tarfile.TarError, EOFError, OSError) as exc:
            if isinstance(exc, tarfile.FilterError):
                raise EdgeError(f"The archive {archive.name} is unsafe to extract ({exc}), so nothing was extracted.") from exc
            raise EdgeError(f"{archive.name} is not a readable .tgz archive ({_reason(exc)}).") from exc
        root = _content_root(staging)
        counts = count_class_images(root)
        if len(counts) < 2:
            raise EdgeError(
                f"The archive {archive.name} does not hold a class-folder tree (found {len(counts)} folder(s) with images)."
            )
        if dest.exists():
            remove(dest)
        root.rename(dest)
    finally:
        remove(staging)
    return FlowersResult(out_dir=dest, labels=sorted(counts), counts=dict(sorted(counts.items())))


def check_member(member: tarfile.TarInfo) -> None:
    """Raise EdgeError if extracting ``member`` could write outside the target or create a device."""
    name = member.name
    if _escapes(name) or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise EdgeError(f"The archive is unsafe: member {name!r} has an absolute path or leaves the target directory.")
    if member.isdev() or not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise EdgeError(f"The archive is unsafe: member {name!r} is a device, FIFO or other special file.")
    if member.issym():
        target = member.linkname
        resolved = posixpath.join(posixpath.dirname(name), target)
        if target.startswith("/") or _escapes(resolved):
            raise EdgeError(f"The archive is unsafe: symbolic link {name!r} points outside the target ({target!r}).")
    if member.islnk() and (member.linkname.startswith("/") or _escapes(member.linkname)):
        raise EdgeError(f"The archive is unsafe: hard link {name!r} points outside the target ({member.linkname!r}).")


def count_class_images(root: Path) -> dict[str, int]:
    """Images per visible sub-folder of ``root`` (folders without images are left out)."""
    counts = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        n = sum(1 for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        if n:
            counts[folder.name] = n
    return counts


# --------------------------------------------------------------------------- helpers


def _escapes(path: str) -> bool:
    """True if the archive path, normalised, climbs above the target directory."""
    normal = posixpath.normpath(path.replace("\\", "/"))
    return normal == ".." or normal.startswith("../") or normal.startswith("/")


def _content_root(staging: Path) -> Path:
    """The extracted tree's root: the single top-level folder if there is exactly one entry."""
    entries = [p for p in staging.iterdir() if not p.name.startswith("._")]
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0]
    return staging


def _check_official_layout(result: FlowersResult) -> None:
    if tuple(result.labels) != FLOWERS_CLASSES or result.total != FLOWERS_IMAGES:
        raise EdgeError(
            f"The extracted photos in {result.out_dir} do not match tf_flowers "
            f"({len(result.labels)} classes, {result.total} images instead of 5 and {FLOWERS_IMAGES})."
        )


def _as_url(url: str) -> str:
    if "://" in url:
        return url
    path = Path(url).expanduser()
    if not path.is_file():
        raise EdgeError(f"{url} is neither a URL nor an existing archive file.")
    return path.resolve().as_uri()


def _download(url: str, target: Path, quiet: bool) -> str:
    """Stream ``url`` into ``target``; return its SHA-256. Network problems become EdgeError."""
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(target, "wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with _progress(quiet, download=True) as bar:
                task = bar.add_task("Downloading", total=total, info=url.rsplit("/", 1)[-1]) if bar else None
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    if bar:
                        bar.update(task, advance=len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise EdgeError(
            f"Could not download {url} ({_reason(exc)}); download it manually and run "
            f"`edge data flowers DIR --url PATH/TO/flower_photos.tgz`."
        ) from exc
    if total is not None and received != total:
        raise EdgeError(
            f"The download of {url} stopped after {received} of {total} bytes; try again or download it manually."
        )
    return digest.hexdigest()


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    return one_line(reason) if isinstance(reason, BaseException) else one_line(Exception(str(reason)))


class _NoProgress:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _progress(quiet: bool, download: bool = False):
    if quiet:
        return _NoProgress()
    if not download:
        from edge.console import progress

        return progress(transient=True)
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    from edge.console import console

    return Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
    )
