"""Interruption and resume: kill -9 loses at most one epoch, Ctrl-C exits 130 and leaves an
unfinished run that nothing mistakes for a finished one, finished runs are never overwritten."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.rundir import is_finished, read_marker
from edge.spec import ModelSpec

pytestmark = pytest.mark.slow

TINY = ["--backbone", "mobilenet_v2", "--alpha", "0.35", "--weights", "none", "--image-size", "32",
        "--batch-size", "8", "--patience", "0", "--seed", "3"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    from edge.data.synth import synth

    out = tmp_path_factory.mktemp("tiny") / "data"
    synth(out, classes=3, per_class=10, image_size=32, seed=1)
    return out


def _start(data: Path, run: Path, epochs: int) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "edge", "train", str(data), "--run-dir", str(run), "--epochs",
                             str(epochs), *TINY], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_epoch(run: Path, proc: subprocess.Popen, epoch: int, timeout: float = 240) -> None:
    state = run / "checkpoints" / "scratch" / "state.json"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if state.is_file() and json.loads(state.read_text())["epoch"] >= epoch:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    proc.kill()
    pytest.fail("training never reached the epoch")


def test_kill_9_then_same_command_resumes(tiny_data, tmp_path, edge_cli):
    run = tmp_path / "run"
    proc = _start(tiny_data, run, epochs=10)
    _wait_for_epoch(run, proc, 1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = json.loads((run / "checkpoints" / "scratch" / "state.json").read_text())
    done = state["epoch"] + 1
    assert not is_finished(run)
    identity = read_marker(run)
    assert identity is not None  # the marker is written when the run starts

    again = edge_cli("train", str(tiny_data), "--run-dir", str(run), "--epochs", "10", *TINY, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "Resuming" in again.stdout
    assert is_finished(run)
    history = [line.split(",") for line in (run / "history.csv").read_text().splitlines()[1:]]
    assert len(history) == 10  # every epoch exactly once: nothing lost, nothing repeated
    assert int(history[done - 1][1]) == done  # the pre-kill epochs are kept in the history
    assert read_marker(run) == identity  # resuming keeps the run's identity
    assert ModelSpec.load(run).run_id == identity.run_id


def test_ctrl_c_exits_130_and_leaves_an_unfinished_run(tiny_data, tmp_path, edge_cli):
    run = tmp_path / "run"
    proc = _start(tiny_data, run, epochs=40)
    _wait_for_epoch(run, proc, 0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    assert not is_finished(run)
    # export/bench refuse it rather than mistake it for a model
    from edge.errors import EdgeError
    from edge.rundir import open_run

    with pytest.raises(EdgeError, match="not a finished edge run"):
        open_run(run)


def test_finished_run_is_not_overwritten_without_force(trained_run, synth_data, edge_cli):
    before = (trained_run / "spec.json").read_text()
    proc = edge_cli("train", str(synth_data), "--run-dir", str(trained_run), "--weights", "none", timeout=120)
    assert proc.returncode == 2 and "--force" in proc.stderr
    assert (trained_run / "spec.json").read_text() == before


def test_resume_without_unfinished_run_is_an_error(tiny_data, tmp_path, edge_cli):
    proc = edge_cli("train", str(tiny_data), "--run-dir", str(tmp_path / "fresh"), "--resume", *TINY, timeout=120)
    assert proc.returncode == 2 and "no unfinished run" in proc.stderr


def test_default_run_dir_picks_a_new_name(tiny_data, tmp_path):
    from edge.train import train

    first = train(tiny_data, runs_root=tmp_path / "runs", backbone="mobilenet_v2", alpha=0.35, weights="none",
                  image_size=32, epochs=1, batch_size=8, seed=3)
    second = train(tiny_data, runs_root=tmp_path / "runs", backbone="mobilenet_v2", alpha=0.35, weights="none",
                   image_size=32, epochs=1, batch_size=8, seed=3)
    assert first.run_dir.name == "data" and second.run_dir.name == "data-2"
    assert is_finished(first.run_dir) and is_finished(second.run_dir)
