"""Wall time of `edge train` at the size of a real project (~2,500 photos), default recipe vs others.

flowers-mini has 500 photos; the time goal is stated for ~2,200 training photos. This script makes
a stand-in of that size: every flowers-mini photo plus ``--copies - 1`` distinct variants of it
(a random 85-95% crop, re-encoded as JPEG, so decode and resize cost what a photo costs), in the
same class. Accuracy on it means nothing (a photo's variants land in train and test alike); the
time does: the same number of photos through the same decode, caching, head and fine-tuning.

    python benchmarks/scripts/train_time.py [--copies 5] [--recipe default] [--options '{}'] [--at-commit SHA]

``--at-commit SHA`` times the ``edge train`` of another commit on the same photos (a git worktree
of it in a temporary folder, imported in place of the installed edge, in a child process): how
the issue's absolute minutes, measured on another machine with older code, translate to this one.

Each recipe's row (phases from the run's metrics.json timings, total wall seconds, CPU flags) is
kept in benchmarks/results/train_time.json; train_time.md is rewritten from it. Skips (exit 0)
without ../shared.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FLOWERS, RESULTS, ROOT, WEIGHTS, WORK, require_shared

OUT_JSON = RESULTS / "train_time.json"
OUT_MD = RESULTS / "train_time.md"


def make_data(copies: int) -> Path:
    """``WORK/train_time_xN``: the photos and their variants (made once, reused)."""

    from edge.data.images import open_rgb
    from edge.data.scan import scan

    out = WORK / f"train_time_x{copies}"
    done = out / ".complete"
    if done.is_file():
        return out
    rng = np.random.default_rng(0)
    scanned = scan(FLOWERS)
    for sample in scanned.samples:
        label = scanned.labels[sample.label]
        folder = out / label
        folder.mkdir(parents=True, exist_ok=True)
        img = open_rgb(sample.path)
        stem = Path(sample.path).stem
        img.save(folder / f"{stem}_0.jpg", quality=92)
        for k in range(1, copies):
            scale = rng.uniform(0.85, 0.95)
            w, h = int(img.width * scale), int(img.height * scale)
            x, y = rng.integers(0, img.width - w + 1), rng.integers(0, img.height - h + 1)
            img.crop((x, y, x + w, y + h)).save(folder / f"{stem}_{k}.jpg", quality=92)
    done.write_text("")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=5, help="photos per flowers-mini photo (5: 2,500 photos)")
    parser.add_argument("--recipe", default="default", help="name of the row")
    parser.add_argument("--options", default="{}", help="JSON of edge.train.train options (TrainConfig fields)")
    parser.add_argument("--at-commit", metavar="SHA", help="time this commit's edge train instead (git worktree)")
    args = parser.parse_args()
    if not require_shared():
        return 0
    from edge.bench.report import machine_info

    data = make_data(args.copies)
    options = json.loads(args.options)
    run_dir = WORK / "train_time" / args.recipe
    timed = run_at_commit(args.at_commit, data, run_dir, options) if args.at_commit else run_here(data, run_dir, options)
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[:3]
    row = {"recipe": args.recipe, "options": options, **({"commit": args.at_commit} if args.at_commit else {}),
           **timed, "machine": machine_info(), "load_average_end": load}
    print(json.dumps(row), flush=True)
    rows = json.loads(OUT_JSON.read_text())["rows"] if OUT_JSON.is_file() else []
    rows = [r for r in rows if r["recipe"] != args.recipe] + [row]
    RESULTS.mkdir(parents=True, exist_ok=True)
    OUT_JSON.write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    write_md(rows)
    return 0


def run_here(data: Path, run_dir: Path, options: dict) -> dict:
    from edge.train import train

    start = time.perf_counter()
    result = train(data, run_dir=run_dir, weights=str(WEIGHTS), force=True, quiet=True, **options)
    return {"photos": result.spec.split["counts"], "timings": result.metrics["timings"],
            "wall_s": round(time.perf_counter() - start, 1),
            "epochs_run": {name: len(h.get("loss", [])) for name, h in result.history.items()}}


# Run in a child process: edge's packages imported from a worktree (its own package-dir layout).
AT_COMMIT = """
import importlib.abc, importlib.util, json, sys
from pathlib import Path
tree, script_dir = Path(sys.argv[1]), sys.argv[2]
roots = {"edge": tree / "src" / "edge", "edge.train": tree / "train", "edge.export": tree / "export",
         "edge.bench": tree / "benchmarks"}

class Worktree(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in roots:
            return importlib.util.spec_from_file_location(name, roots[name] / "__init__.py",
                                                          submodule_search_locations=[str(roots[name])])
        return None

sys.meta_path.insert(0, Worktree())
sys.path.insert(0, script_dir)
import train_time
from edge.train import train
assert Path(sys.modules["edge.train"].__file__).is_relative_to(tree)
print("ROW " + json.dumps(train_time.run_here(Path(sys.argv[3]), Path(sys.argv[4]), json.loads(sys.argv[5]))))
"""


def run_at_commit(sha: str, data: Path, run_dir: Path, options: dict) -> dict:
    """``run_here`` with the ``edge`` of commit ``sha`` (a detached worktree in a temporary folder,
    removed afterwards)."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="edge-commit-") as tmp:
        tree = Path(tmp) / sha
        git = ["git", "-C", str(ROOT), "worktree"]
        subprocess.run([*git, "add", "--detach", str(tree), sha], check=True, capture_output=True)
        try:
            out = subprocess.run([sys.executable, "-c", AT_COMMIT, str(tree), str(Path(__file__).parent), str(data),
                                  str(run_dir), json.dumps(options)], check=True, capture_output=True, text=True).stdout
        finally:
            subprocess.run([*git, "remove", "--force", str(tree)], check=False, capture_output=True)
    return json.loads(next(line[4:] for line in out.splitlines() if line.startswith("ROW ")))


NOTES = {  # what the row names in the results mean
    "default": "the defaults of 2026-11-28 (3 cached views, cosine), the frozen layers run by TensorFlow; measured "
               "in an earlier session; by its length (143 s), its fine-tune includes the 55-s stall (below)",
    "images_constant_0.1": "the fine-tune before cached views (images every epoch, constant rate, early stopping, "
                           "label smoothing 0.1), measured beside `default`",
    "default_litert": "stop 17's defaults: as `default`, the frozen layers run by LiteRT (XNNPACK) for the caches",
    "default_litert_rerun": "`default_litert` again, later in the same session (how much the time moves run to run)",
    "previous_fine_tune_same_session": "`images_constant_0.1` again, in the session of `default_litert`",
    "views1": "`default_litert` with one cached view (no augmented views to compute); its fine-tune includes the "
              "55-s stall (below), which an earlier note took for this machine's run-to-run noise",
    "default_one_pass": "every view of a split computed in one pass (one decode per photo); evaluation through the "
                        "cut (frozen part in LiteRT). Its fine-tune (143 s) includes a stall of about 55 s with no "
                        "CPU in use at the end of fit: dropping the fine-tune's dataset waited for tf.data's "
                        "autotuning thread, which sleeps in doubling intervals (edge.data.pipeline.settled)",
    "default_one_pass_rerun": "`default_one_pass` again: the same 55-s stall",
    "default_no_stall": "`default_one_pass` with the fine-tune's batches made by the generator alone (no autotuned "
                        "map or prefetch behind it): no stall",
    "default_no_stall_rerun": "`default_no_stall` again",
    "default_8_epochs": "`default_no_stall` with 8 fine-tune epochs instead of 10",
    "default_8_epochs_onednn_avx2": "`default_8_epochs` with TensorFlow's oneDNN kept to AVX2 (ONEDNN_MAX_CPU_ISA=AVX2; "
                                    "LiteRT's XNNPACK still uses AVX-512): what the missing AVX-512 costs the "
                                    "TensorFlow phases on an AVX2-only CPU",
    "issue_era": "the `edge train` of commit e57681c (`--at-commit`), the code issue 13 timed at 1,446 s on its "
                 "machine: images through the whole network every fine-tune epoch, early stopping",
    "defaults_2_views": "`default_8_epochs` with 2 cached views (the photo + 1 augmented) instead of 3, run right "
                        "after `issue_era`; its view caching (45.6 s) includes a 20-s wait for tf.data's autotuning "
                        "thread",
    "defaults": "stop 18's defaults (`defaults_2_views`), every tf.data pipeline without autotuning",
    "defaults_rerun": "`defaults` again",
    "defaults_stop19": "`defaults` in the session of `cut_block14` and `cut_block15`, on stop 19's code (the gate "
                       "fix, no training change)",
    "cut_block14": "`defaults_stop19` fine-tuning from block_14_expand instead of block_13_expand",
    "cut_block15": "`defaults_stop19` fine-tuning from block_15_expand",
    "defaults_int8_exact": "`cut_block14` with int8-exact kernels (the fine-tune trains on int8-rounded kernels, "
                           "edge.train.int8_grid), first version: rounded twice a batch",
    "cut_block14_rerun": "`cut_block14` again (`int8_exact` off), beside `defaults_int8_exact`",
    "defaults_int8_exact_v2": "stop 19's defaults: `defaults_int8_exact` with the rounded kernels kept from the start "
                              "of a batch to its end (one rounding a batch)",
    "resize_mediapipe": "today's defaults with `--resize stretch-mediapipe` (MediaPipe Tasks' resize, "
                        "edge.data.resize.mediapipe_cpu, in every view and evaluation), run right before "
                        "`defaults_stop21`",
    "defaults_stop21": "today's defaults (stop 21's code, the same recipe as `defaults_int8_exact_v2`), beside "
                       "`resize_mediapipe`",
}


def write_md(rows: list[dict]) -> None:
    machine = rows[-1]["machine"]
    phases = sorted({k for r in rows for k in r["timings"] if k != "total_s"})
    md = ["# `edge train` wall time at project size (flowers-mini x copies, MobileNetV2 1.0 @ 224)", "",
          f"Machine: {machine['cpu']}, {machine['cores']} cores, flags {', '.join(machine.get('cpu_flags', []))}. "
          "The photos are flowers-mini's plus distinct crops of them (see the script): the time is real, "
          "the accuracy is not reported (copies of a photo land in every split).", "",
          "| recipe | options | train / val / test photos | " + " | ".join(f"{p} (s)" for p in phases)
          + " | rest (s) | total (min) | epochs run | load avg at end |",
          "|---|---|---|" + "---:|" * len(phases) + "---:|---:|---|---|"]
    for r in rows:
        counts = r["photos"]
        rest = r["wall_s"] - sum(v for k, v in r["timings"].items() if k != "total_s")
        if "views_cache_s" not in r["timings"]:  # on images, head_s includes the bottleneck cache
            rest += r["timings"].get("bottleneck_cache_s", 0)
        md.append(f"| {r['recipe']} | `{json.dumps(r['options'])}` | {counts['train']} / {counts['val']} / "
                  f"{counts['test']} | " + " | ".join(str(r["timings"].get(p, "-")) for p in phases)
                  + f" | {rest:.1f} | {r['wall_s'] / 60:.1f} | {r['epochs_run']} | {', '.join(r['load_average_end'])} |")
    md += ["", "`rest`: the wall time outside the phases: building the model, evaluating val and test after "
           "stage 1 and at the end, writing the run. Without cached views `head_s` includes the bottleneck cache."]
    md += ["", *(f"* **{r['recipe']}**: {NOTES[r['recipe']]}" for r in rows if r["recipe"] in NOTES)]
    OUT_MD.write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    sys.exit(main())
