"""Safe file writing: everything is written to a temporary sibling and renamed into place,
so an interrupted write never leaves a half-written file under the final name."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(final: Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; on success rename it to ``final``.

    Works for files and directories (e.g. ``.mlpackage``). On error the temporary is removed
    and ``final`` is untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    suffix = final.suffix if suffix is None else suffix
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".tmp{suffix}", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        yield tmp
        replace(tmp, final)
    finally:
        remove(tmp)


def replace(src: Path, dst: Path) -> None:
    """Move ``src`` onto ``dst`` (file or directory), replacing what is there."""
    src, dst = Path(src), Path(dst)
    if dst.is_dir() and not dst.is_symlink():
        old = dst.with_name(f".{dst.name}.old")
        remove(old)
        dst.rename(old)
        src.rename(dst)
        remove(old)
    else:
        os.replace(src, dst)


def remove(path: Path) -> None:
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(Path(path)) as tmp:
        tmp.write_bytes(data)


def path_size(path: Path) -> int:
    """Bytes of a file, or of every file under a directory (an ``.mlpackage``)."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


# --- output folders: probe before work, build aside, swap in when complete -------------------------


def os_reason(exc: OSError) -> str:
    """``permission denied``, ``no space left on device``, ...: an OSError's reason in lower case."""
    from edge.errors import one_line

    reason = exc.strerror or one_line(exc)
    return reason[:1].lower() + reason[1:]


def probe_writable(folder: Path) -> None:
    """Write and remove a hidden temporary file in ``folder``; raises OSError when that is refused."""
    fd, probe = tempfile.mkstemp(prefix=".edge-probe-", dir=folder)
    os.close(fd)
    os.unlink(probe)


def ensure_writable_dir(path: Path, what: str = "output folder") -> Path:
    """Create ``path`` (and its parents) and prove a file can be written in it, before any work.

    Raises EdgeError (one sentence naming ``path``) when it cannot be created or written.
    """
    from edge.errors import EdgeError

    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgeError(f"Cannot create the {what} {path} ({os_reason(exc)}).") from None
    try:
        probe_writable(path)
    except OSError as exc:
        raise EdgeError(f"Cannot write into the {what} {path} ({os_reason(exc)}).") from None
    return path


def sibling_dir(final: Path, tag: str) -> Path:
    """A new, empty, uniquely named hidden directory beside ``final`` (same file system, so it can
    later be renamed onto ``final``): ``.NAME.RANDOM.TAG``."""
    final = Path(final)
    return Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=f".{tag}", dir=final.parent))


def swap_in_dir(new: Path, final: Path) -> None:
    """Put the complete directory ``new`` at ``final``; the directory that was there is removed only
    after the new one is in place (if the second rename fails, the old one is put back)."""
    new, final = Path(new), Path(final)
    if not (final.exists() or final.is_symlink()):
        os.rename(new, final)
        return
    old = sibling_dir(final, "old")
    os.rename(final, old)  # onto the empty placeholder (POSIX rename replaces an empty directory)
    try:
        os.rename(new, final)
    except OSError:
        os.rename(old, final)
        raise
    remove(old)


def check_creatable_dir(path: Path, what: str = "output folder") -> None:
    """Prove, without creating anything, that ``path`` exists as a writable folder or could be
    created: its nearest existing ancestor must be a folder a file can be written in."""
    from edge.errors import EdgeError

    path = Path(path)
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise EdgeError(f"Cannot create the {what} {path} ({existing} is not a folder).")
    try:
        probe_writable(existing)
    except OSError as exc:
        raise EdgeError(f"Cannot create the {what} {path} ({os_reason(exc)} in {existing}).") from None
