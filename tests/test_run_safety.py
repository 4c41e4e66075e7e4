"""Run directories: edge deletes only what it can prove it wrote (its ``.edge-run.json`` marker),
builds a ``--force`` replacement aside and swaps it in only when finished, and turns the OSErrors
a user can cause into one sentence naming the path. Refusals are fast (no training); the
replacement cases train one tiny model and are marked slow."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.errors import EdgeError
from edge.fileio import ensure_writable_dir, swap_in_dir
from edge.rundir import RUN_MARKER, RunIdentity, is_edge_run, is_finished, read_marker, write_marker
from edge.spec import ModelSpec

TINY = ["--backbone", "mobilenet_v2", "--alpha", "0.35", "--weights", "none", "--image-size", "32",
        "--batch-size", "8", "--patience", "0", "--seed", "3"]
TINY_API = dict(backbone="mobilenet_v2", alpha=0.35, weights="none", image_size=32, batch_size=8, patience=0, seed=3)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    from edge.data.synth import synth

    out = tmp_path_factory.mktemp("safety") / "data"
    synth(out, classes=3, per_class=8, image_size=32, seed=1, quiet=True)
    return out


def _users_folder(path: Path) -> Path:
    """A user's project folder that merely happens to hold sub-folders named like a run's."""
    (path / "checkpoints").mkdir(parents=True)
    (path / "split").mkdir()
    (path / "thesis.tex").write_text("three years of work")
    (path / "checkpoints" / "notes.txt").write_text("mine too")
    return path


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _one_sentence(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    message = " ".join(stderr.split())
    assert message.startswith("error:") and message.endswith(".") and message.count(". ") == 0, message
    return message


# --- refusals: nothing of the user's is touched (fast) -------------------------------------------

@pytest.mark.parametrize("force", [True, False], ids=["force", "no-force"])
def test_users_folder_with_run_like_subfolders_is_never_used(force, tiny_data, tmp_path, edge_cli):
    """Before: ``--force`` deleted every file in it (a ``checkpoints/`` or ``split/`` was taken as proof)."""
    project = _users_folder(tmp_path / "myproject")
    before = _snapshot(project)
    proc = edge_cli("train", str(tiny_data), "--run-dir", str(project), *(["--force"] if force else []), *TINY,
                    "--epochs", "1", timeout=120)
    assert proc.returncode == 2, proc.stderr
    message = _one_sentence(proc.stderr)
    assert str(project) in message
    assert ("not written by edge" in message) if force else ("not an edge run directory" in message)
    assert _snapshot(project) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["myproject"]  # nothing built beside it


def test_run_dir_parent_that_cannot_be_created_is_one_sentence(tiny_data, tmp_path, edge_cli):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    proc = edge_cli("train", str(tiny_data), "--run-dir", str(blocker / "run"), *TINY, "--epochs", "1", timeout=120)
    assert proc.returncode == 2
    message = _one_sentence(proc.stderr)
    assert str(blocker) in message and "Cannot create the output folder" in message
    assert "Dataset" not in proc.stdout  # checked before the scan


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_parent_is_one_sentence(tiny_data, tmp_path, edge_cli):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        proc = edge_cli("train", str(tiny_data), "--run-dir", str(parent / "run"), *TINY, "--epochs", "1", timeout=120)
    finally:
        parent.chmod(0o755)
    assert proc.returncode == 2
    assert str(parent) in _one_sentence(proc.stderr)


def test_api_default_runs_root_is_probed(tiny_data, tmp_path):
    from edge.train import train

    (tmp_path / "runs").write_text("a file where the runs folder should be")
    with pytest.raises(EdgeError, match="Cannot create the output folder .*runs") as info:
        train(tiny_data, runs_root=tmp_path / "runs" / "sub", quiet=True, epochs=1, **TINY_API)
    assert str(info.value).count(". ") == 0


def test_failed_scan_creates_no_folders(tmp_path):
    from edge.train import train

    with pytest.raises(EdgeError, match="does not exist"):
        train(tmp_path / "missing", runs_root=tmp_path / "runs", quiet=True, epochs=1, **TINY_API)
    assert not (tmp_path / "runs").exists()


def test_default_run_dir_skips_a_folder_edge_did_not_write(tiny_data, tmp_path):
    from edge.train.workspace import open_workspace

    users = _users_folder(tmp_path / "runs" / "data")
    ws = open_workspace("data", None, tmp_path / "runs", {"k": 1}, force=True, resume=False)
    assert ws.final == tmp_path / "runs" / "data-2" and not ws.replacing
    assert (users / "thesis.tex").exists()


# --- the marker and the workspace (fast) ---------------------------------------------------------

def test_marker_is_the_only_proof(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "split").mkdir()
    (run / "spec.json").write_text("{}")
    assert not is_edge_run(run)
    (run / RUN_MARKER).write_text('{"kind": "something else"}')
    assert not is_edge_run(run)
    identity = RunIdentity.new("run")
    write_marker(run, identity)
    assert is_edge_run(run) and read_marker(run) == identity
    assert len(identity.run_id) == 16 and identity.run_id != RunIdentity.new("run").run_id


def test_force_on_a_marked_run_builds_aside_and_discard_keeps_the_old(tmp_path):
    from edge.train.workspace import open_workspace

    run = tmp_path / "run"
    run.mkdir()
    old = RunIdentity.new("run")
    write_marker(run, old)
    (run / "model.keras").write_text("old model")
    ws = open_workspace("data", run, tmp_path, {"k": 1}, force=True, resume=False)
    assert ws.replacing and ws.work.parent == tmp_path and ws.work.name.startswith(".run.")
    assert read_marker(ws.work).run_id == ws.identity.run_id != old.run_id
    ws.discard()
    assert not ws.work.exists() and (run / "model.keras").read_text() == "old model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_new_run_gets_its_marker_first(tmp_path):
    from edge.train.workspace import open_workspace

    ws = open_workspace("data", tmp_path / "a" / "run", tmp_path, {"k": 1}, force=False, resume=False)
    assert not ws.replacing and ws.work == ws.final
    assert sorted(p.name for p in ws.final.iterdir()) == [RUN_MARKER]
    assert read_marker(ws.final) == ws.identity and ws.identity.name == "run"


def test_fileio_probe_and_swap(tmp_path):
    assert ensure_writable_dir(tmp_path / "x" / "y").is_dir()
    (tmp_path / "f").write_text("x")
    with pytest.raises(EdgeError, match="Cannot create the output folder"):
        ensure_writable_dir(tmp_path / "f" / "y")
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    (old / "a").write_text("old")
    new.mkdir()
    (new / "b").write_text("new")
    swap_in_dir(new, old)
    assert [p.name for p in old.iterdir()] == ["b"] and not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "old", "x"]


def test_old_spec_without_run_id_still_loads():
    data = {"name": "r", "backbone": "mobilenet_v2", "labels": ["a", "b"], "input_size": [32, 32],
            "normalization": {"mean": [0, 0, 0], "std": [1, 1, 1]}}
    assert ModelSpec.from_dict(data).run_id == ""
    assert ModelSpec.from_dict({**data, "run_id": "abc"}).run_id == "abc"


# --- replacing a finished run (slow: one tiny model) ---------------------------------------------

@pytest.fixture(scope="module")
def finished_run(tiny_data, tmp_path_factory) -> Path:
    from edge.train import train

    run = tmp_path_factory.mktemp("finished") / "run"
    train(tiny_data, run_dir=run, epochs=1, quiet=True, **TINY_API)
    return run


@pytest.fixture
def copy_of_run(finished_run, tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    return run


@pytest.mark.slow
def test_finished_run_carries_marker_and_run_id(finished_run):
    identity = read_marker(finished_run)
    assert identity is not None and identity.name == "run"
    spec = ModelSpec.load(finished_run)
    assert spec.run_id == identity.run_id and spec.name == "run"
    assert is_finished(finished_run)


@pytest.mark.slow
def test_quiet_prints_nothing_and_force_replaces_after_finishing(tiny_data, copy_of_run, capsys):
    from edge.train import TrainConfig, train

    old_id = ModelSpec.load(copy_of_run).run_id
    (copy_of_run / "stale-from-old-run.txt").write_text("x")
    config = TrainConfig(epochs=2, **TINY_API)
    result = train(tiny_data, run_dir=copy_of_run, config=config, force=True, quiet=True, epochs=1)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    assert config.epochs == 2  # the caller's config is not changed
    spec = ModelSpec.load(copy_of_run)
    assert spec.run_id == read_marker(copy_of_run).run_id != old_id and spec.training["epochs"] == 1
    assert result.run_dir == copy_of_run and spec.name == "run"
    assert not (copy_of_run / "stale-from-old-run.txt").exists()  # the whole old run was replaced
    assert sorted(p.name for p in copy_of_run.parent.iterdir()) == ["run"]  # no temporary folders left


@pytest.mark.slow
@pytest.mark.skipif(Path("/dev/nvidia0").exists(), reason="the failing rerun asks for a GPU; this machine has one")
def test_forced_rerun_that_fails_after_the_scan_keeps_the_old_run(tiny_data, copy_of_run, edge_cli):
    """Before: the old run was deleted first, then the rerun failed, leaving neither."""
    before = _snapshot(copy_of_run)
    proc = edge_cli("train", str(tiny_data), "--run-dir", str(copy_of_run), "--force", *TINY, "--epochs", "1",
                    "--devices", "gpu", timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Dataset" in proc.stdout and "no GPU" in _one_sentence(proc.stderr.splitlines()[-1])
    assert _snapshot(copy_of_run) == before
    assert sorted(p.name for p in copy_of_run.parent.iterdir()) == ["run"]


@pytest.mark.slow
def test_interrupted_forced_rerun_keeps_the_old_run(tiny_data, copy_of_run):
    before = _snapshot(copy_of_run)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "edge", "train", str(tiny_data), "--run-dir", str(copy_of_run),
                             "--force", *TINY, "--epochs", "40"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 240
    while time.time() < deadline:
        states = list(copy_of_run.parent.glob(".run.*/checkpoints/scratch/state.json"))
        if states and json.loads(states[0].read_text())["epoch"] >= 0:
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the replacement never reached its first epoch")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "still holds the previous run" in " ".join(err.split())
    assert _snapshot(copy_of_run) == before
    assert sorted(p.name for p in copy_of_run.parent.iterdir()) == ["run"]
