"""MediaPipe Tasks' ImageClassifier, run in MediaPipe's own interpreter: what an app using MediaPipe answers.

MediaPipe cannot share edge's venv (its absl-py pin conflicts with tensorflow-model-optimization's), so it
lives in a venv of its own (``make mediapipe-venv`` makes ``.venv-mediapipe``). This module is edge's one
door to it:

* ``locate``: which interpreter -- an explicit path (``--mediapipe-python``), else ``$EDGE_MEDIAPIPE_PYTHON``,
  else ``.venv-mediapipe/bin/python`` in the current directory (the tests' fixture asks the same function);
* ``version``: whether it really runs MediaPipe;
* ``classify_files``: runs ``mediapipe_consumer.py`` (a standalone script, beside this module) in a
  subprocess with a timeout, MediaPipe decoding and resizing each photo file itself as an app would, and
  returns each photo's top-1 index into the model's labels. A model MediaPipe will not take (a full-int8
  TFLite file with int8 input) comes back as ``refused`` ("int8 input"), not as an error.

Failures are one-sentence ``EdgeError``s. MediaPipe's glog/absl lines go to the subprocess's captured
stderr and never reach the user's terminal.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.errors import MAX_LINE, EdgeError

KEY = "mediapipe"  # its entry beside the resize variants (edge bench's resize_agreement / resize_accuracy)
OPTION = "--mediapipe-python"
ENV = "EDGE_MEDIAPIPE_PYTHON"
VENV = ".venv-mediapipe"  # `make mediapipe-venv`
CONSUMER = Path(__file__).with_name("mediapipe_consumer.py")
HOW_TO_GET = f"`make mediapipe-venv` makes one, or pass {OPTION} PATH"
INT8_INPUT = "int8 input"  # why MediaPipe's classifier refuses full-int8 files exported with --int8-io int8
START_S = 120.0  # seconds allowed for MediaPipe to start (importing it, loading the models) ...
PER_PHOTO_S = 0.5  # ... plus this per photo and model
NOISE_ENV = {"GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "3"}  # less for stderr to hold; it stays captured


@dataclass(frozen=True)
class Found:
    """MediaPipe's interpreter (None when there is none), where the setting came from, and why none."""

    python: Path | None
    source: str  # OPTION, ENV or VENV
    note: str = ""  # one sentence when python is None


def check_python(value: str | Path) -> Path:
    """An explicit interpreter path (``--mediapipe-python``), refused in one sentence unless it is an
    executable file; absolute, symlinks kept (a venv's python is a link whose target is not the venv)."""
    if not str(value).strip():
        raise EdgeError(f"{OPTION} needs the path of MediaPipe's Python interpreter; {HOW_TO_GET}.")
    path = Path(value).expanduser().absolute()
    if path.is_dir():
        raise EdgeError(f"{OPTION} {path} is a folder; pass the Python inside it (such as {path / 'bin' / 'python'}).")
    if not path.exists():
        raise EdgeError(f"{OPTION} {path} does not exist; `make mediapipe-venv` makes {VENV}/bin/python.")
    if not os.access(path, os.X_OK):
        raise EdgeError(f"{OPTION} {path} is not an executable Python interpreter.")
    return path


def locate(explicit: str | Path | None = None, cwd: str | Path | None = None) -> Found:
    """The interpreter to run MediaPipe with: ``explicit`` (checked by ``check_python``), else ``$EDGE_MEDIAPIPE_PYTHON``,
    else ``VENV/bin/python`` under ``cwd`` (default: the current directory); ``python`` None, with a note, when
    the one that applies does not exist."""
    if explicit is not None:
        return Found(check_python(explicit), OPTION)
    named = os.environ.get(ENV, "").strip()
    if named:
        path = Path(named).expanduser().absolute()
        if path.is_file():
            return Found(path, ENV)
        return Found(None, ENV, f"{ENV} names {path}, which is no file; {HOW_TO_GET}.")
    path = Path(cwd if cwd is not None else Path.cwd()).absolute() / VENV / "bin" / "python"
    if path.exists():
        return Found(path, VENV)
    return Found(None, VENV, f"No MediaPipe found: `make mediapipe-venv`, or pass {OPTION} PATH.")


def version(python: Path, timeout: float = START_S) -> str:
    """MediaPipe's version as ``python`` imports it; one sentence when that interpreter cannot run it."""
    done = _run([str(python), str(CONSUMER), "--version"], timeout, f"{python} to import MediaPipe")
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        why = _reason(done.stderr) if done.returncode != 0 else "it printed no version"
        raise EdgeError(f"{python} could not run MediaPipe ({why}).")
    return lines[-1].strip()


@dataclass
class Classified:
    """MediaPipe's answers for one model on a list of photos."""

    top1: np.ndarray | None  # per photo: the index into the model's labels, -1 where it could not read the photo
    refused: str = ""  # why MediaPipe would not take the model (INT8_INPUT, or its own words); top1 is None then
    unreadable: dict[str, str] = field(default_factory=dict)  # photo -> MediaPipe's error


def classify_files(python: Path, models: Sequence[str | Path], files: Sequence[str | Path],
                   timeout: float | None = None, pixels: np.ndarray | None = None) -> dict[Path, Classified]:
    """Each model's top-1 on each photo file, MediaPipe decoding and resizing the photos itself (one subprocess
    for all the models; ``timeout`` defaults to ``START_S`` + ``PER_PHOTO_S`` per photo and model). With
    ``pixels`` (uint8, N x H x W x 3) instead of ``files``: on those images, handed to MediaPipe as they are."""
    models = [Path(m) for m in models]
    count = len(files) if pixels is None else len(pixels)
    timeout = timeout if timeout is not None else START_S + PER_PHOTO_S * count * len(models)
    with tempfile.TemporaryDirectory(prefix="edge-mediapipe-") as tmp:
        request, answer = Path(tmp) / "request.json", Path(tmp) / "answer.json"
        asked = {"models": [str(m) for m in models], "max_results": 1, "metadata": False, "out": str(answer)}
        if pixels is None:
            asked["files"] = [str(f) for f in files]
        else:
            asked["images"] = str(Path(tmp) / "pixels.npy")
            np.save(asked["images"], np.asarray(pixels, np.uint8))
        request.write_text(json.dumps(asked))
        what = f"MediaPipe to classify {count} photos with {len(models)} model(s)"
        done = _run([str(python), str(CONSUMER), str(request)], timeout, what)
        if done.returncode != 0:
            raise EdgeError(f"MediaPipe ({python}) failed on {', '.join(m.name for m in models)} "
                            f"({_reason(done.stderr)}).")
        try:
            entries = json.loads(answer.read_text())["models"]
            key = "files" if pixels is None else "classify"
            names = [str(f) for f in files] if pixels is None else [f"image {i}" for i in range(count)]
            return {model: _classified(entries[str(model)], names, key) for model in models}
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise EdgeError(f"MediaPipe ({python}) gave no readable answer ({type(exc).__name__}).") from exc


def _classified(entry: dict, files: list[str], key: str = "files") -> Classified:
    if "refused" in entry:
        refused = INT8_INPUT if entry.get("input_type") == "INT8" else _short(entry["refused"])
        return Classified(None, refused)
    top1, unreadable = [], {}
    for file, categories in zip(files, entry.get(key, []), strict=True):
        if isinstance(categories, dict):  # {"error": ...}
            unreadable[file] = _short(categories.get("error", "?"))
            top1.append(-1)
        else:
            top1.append(int(categories[0]["index"]) if categories else -1)
    return Classified(np.array(top1, int), unreadable=unreadable)


def _run(command: list[str], timeout: float, what: str) -> subprocess.CompletedProcess:
    """``command`` with stdout and stderr captured (MediaPipe's log lines stay there); start/timeout failures
    as one sentence."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              env={**os.environ, **NOISE_ENV})
    except subprocess.TimeoutExpired:
        raise EdgeError(f"Gave up waiting for {what} after {timeout:.0f} s.") from None
    except OSError as exc:
        raise EdgeError(f"Could not start {command[0]} as MediaPipe's Python ({exc.strerror or exc}).") from exc


ERROR_LINE = re.compile(r"^[\w.]*(Error|Exception|Exit)\b.*")


def _reason(stderr: str) -> str:
    """The line of a failed run's stderr that says what went wrong (a traceback's last line, not its log noise)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    flagged = [line for line in lines if ERROR_LINE.match(line)]
    return _short((flagged or lines or ["no message"])[-1])


def _short(text: str) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 3] + "..."
