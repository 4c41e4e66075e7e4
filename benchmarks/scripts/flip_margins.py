"""Which photos change their answer, and why: int8 and consumer-resize flips against the float model's margin.

For each fold that ``train_cv.py`` left for a recipe (``benchmarks/out/cv/RECIPE/foldK``: the float
Keras model, its int8 TFLite file, its test split), every test photo gets the float model's top-1
margin (top-1 minus top-2 probability, with the model's own resize) and whether its top-1 changes

* in the int8 file (the model's own resize),
* in the float model under each other consumer resize (``edge.data.resize.others``),
* in the float model of the same recipe trained with another seed (``RECIPE_seed7``, where
  train_cv.py ran it: the same folds, test photos and resize), i.e. how often training itself, not
  any consumer, decides a photo's answer,
* under MediaPipe Tasks given the photo file (fp32 TFLite; where MediaPipe's venv is found), and, to
  tell its decoder from its resize, given edge's decode of the photo (a lossless PNG at full size:
  MediaPipe only resizes) and given edge's own model-size pixels (MediaPipe neither decodes nor
  resizes: what is left is its interpreter).

Over the 5 folds every flowers-mini photo is tested once, so the table covers 500 photos. It shows
how the flips concentrate on the photos the float model is unsure of, and how right the float model
is on those: the agreement goals of issue #13 are goals on that low-margin band.

    python benchmarks/scripts/flip_margins.py [--recipe int8_exact] [--twin int8_exact_seed7]

Writes benchmarks/results/flip_margins.{json,md}. Skips (exit 0) without ../shared or without the runs.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import tempfile
from pathlib import Path

import numpy as np
from common import RESULTS, ROOT, WORK, require_shared
from train_cv import mediapipe_top1

DECODED = "mediapipe-edge-decode"  # MediaPipe given edge's decoded photo (it resizes)
PIXELS = "mediapipe-edge-pixels"  # MediaPipe given edge's model-size pixels (it neither decodes nor resizes)
REPLICA = "mediapipe-cpu"  # edge.data.resize's copy of MediaPipe's resize
AGAINST_REPLICA = "mediapipe-vs-mediapipe-cpu"  # MediaPipe (the file) against the float model under REPLICA

TWIN = "another-seed"  # the same recipe's float model trained with another seed

BANDS = (0.0, 0.1, 0.2, 0.4, 0.6, 1.0001)  # float top-1 margin bands (upper bound exclusive)


def fold_rows(run_dir: Path, twin: Path | None = None) -> list[dict]:
    """One row per test photo of the fold: margin, float right, and which perturbations flip it
    (``twin``: the same fold's run of the recipe with another seed)."""
    from edge import formats
    from edge.data.images import load_variants
    from edge.data.resize import RESIZERS, others
    from edge.rundir import MODEL_FILE
    from edge.runtimes import mediapipe

    with open(run_dir / "split" / "test.csv") as fh:
        test = list(csv.DictReader(fh))
    labels = [line.strip() for line in (run_dir / "labels.txt").read_text().splitlines() if line.strip()]
    truth = np.array([labels.index(r["label"]) for r in test])
    model = formats.load(run_dir / MODEL_FILE)
    int8 = formats.load(next((run_dir / "export").rglob("*int8*.tflite")))
    size = tuple(model.spec.input_size)
    loaded = [load_variants(r["path"], size, RESIZERS) for r in test]
    stacks = {v: np.stack([images[v] for images in loaded]) for v in RESIZERS}
    own_resize = model.spec.resize_filter  # edge's Pillow bilinear unless the run set --resize
    probs = model(stacks[own_resize])
    top2 = np.sort(probs, axis=1)[:, -2:]
    own = probs.argmax(1)
    flips = {"int8": int8(stacks[own_resize]).argmax(1) != own}
    variant_top1 = {v: model(stacks[v]).argmax(1) for v in others(own_resize)}
    flips.update({v: top1 != own for v, top1 in variant_top1.items()})
    if twin is not None:
        with open(twin / "split" / "test.csv") as fh:
            assert [r["path"] for r in csv.DictReader(fh)] == [r["path"] for r in test], twin
        flips[TWIN] = formats.load(twin / MODEL_FILE)(stacks[own_resize]).argmax(1) != own
    answers = mediapipe_top1(run_dir, {}, [r["path"] for r in test])
    if "float" in answers:
        flips[mediapipe.KEY] = answers["float"] != own
        flips[AGAINST_REPLICA] = answers["float"] != variant_top1.get(REPLICA, own)
        flips.update(mediapipe_parts(run_dir, [r["path"] for r in test], stacks[own_resize], own))
    return [{"photo": "/".join(Path(test[i]["path"]).parts[-2:]), "margin": round(float(top2[i, 1] - top2[i, 0]), 4),
             "float_right": bool(own[i] == truth[i]),
             "flips": [name for name, f in flips.items() if f[i]], "checked": list(flips)} for i in range(len(test))]


def mediapipe_parts(run_dir: Path, photos: list[str], pixels: np.ndarray, own: np.ndarray) -> dict[str, np.ndarray]:
    """MediaPipe's flips given edge's decode of each photo (PNG, full size) and given edge's pixels."""
    from edge.data.images import open_rgb
    from edge.runtimes import mediapipe

    python = mediapipe.locate(cwd=ROOT).python
    fp32 = next((run_dir / "export_fp32").glob("*.tflite"))  # mediapipe_top1 exported it
    with tempfile.TemporaryDirectory(prefix="flip-margins-") as tmp:
        decoded = []
        for i, photo in enumerate(photos):
            decoded.append(Path(tmp) / f"{i}.png")
            open_rgb(photo).save(decoded[-1])
        on_decoded = mediapipe.classify_files(python, [fp32], decoded)[fp32].top1
    on_pixels = mediapipe.classify_files(python, [fp32], [], pixels=pixels)[fp32].top1
    return {DECODED: on_decoded != own, PIXELS: on_pixels != own}


def table(rows: list[dict], perturbations: list[str]) -> list[str]:
    md = ["| float margin | photos | float right | " + " | ".join(f"{p} flips" for p in perturbations) + " |",
          "|---|---:|---:|" + "---:|" * len(perturbations)]
    for low, high in itertools.pairwise(BANDS):
        band = [r for r in rows if low <= r["margin"] < high]
        right = f"{np.mean([r['float_right'] for r in band]):.0%}" if band else "-"
        counts = [sum(p in r["flips"] for r in band) for p in perturbations]
        md.append(f"| {low:.1f}-{min(high, 1.0):.1f} | {len(band)} | {right} | " + " | ".join(map(str, counts)) + " |")
    total = [sum(p in r["flips"] for r in rows) for p in perturbations]
    right = np.mean([r["float_right"] for r in rows])
    md.append(f"| all | {len(rows)} | {right:.0%} | " + " | ".join(
        f"{c} ({1 - c / len(rows):.1%} agree)" for c in total) + " |")
    return md


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="int8_exact", help="a recipe train_cv.py ran (its runs are kept)")
    parser.add_argument("--twin", help="the same recipe with another seed (default: RECIPE_seed7 where it was run)")
    args = parser.parse_args()
    twin_runs = WORK / "cv" / (args.twin or f"{args.recipe}_seed7")
    runs = sorted((WORK / "cv" / args.recipe).glob("fold*"))
    if not require_shared() or not require_shared(*runs[:1] or [WORK / "cv" / args.recipe / "fold0"]):
        return 0
    rows = []
    for run_dir in runs:
        twin = twin_runs / run_dir.name
        rows += [{**r, "fold": run_dir.name} for r in fold_rows(run_dir, twin if (twin / "spec.json").is_file() else None)]
        print(f"{run_dir.name}: {len(rows)} photos so far", flush=True)
    perturbations = [p for p in rows[0]["checked"] if all(p in r["checked"] for r in rows)]  # measured on every fold
    RESULTS.mkdir(parents=True, exist_ok=True)
    photos = ",\n".join(json.dumps(r) for r in rows)  # one photo a line
    (RESULTS / "flip_margins.json").write_text(f'{{"recipe": {json.dumps(args.recipe)}, "twin": '
                                               f'{json.dumps(twin_runs.name)}, "photos": [\n{photos}\n]}}\n')
    md = [f"# Which photos change their answer ({args.recipe}, {len(runs)} CV folds, every photo tested once)", "",
          "Float margin = the float model's top-1 minus top-2 probability with its own resize. A flip = a different "
          "top-1 from the float model's own: int8 = the int8 TFLite file (the same resize); the resize variants = "
          "the float model on the photo resized another way (edge.data.resize); mediapipe = MediaPipe Tasks "
          f"given the photo file (fp32 TFLite); {DECODED} = MediaPipe given edge's decode of the photo (a PNG "
          f"at full size: MediaPipe only resizes); {PIXELS} = MediaPipe given edge's model-size pixels (it "
          f"neither decodes nor resizes); {AGAINST_REPLICA} = MediaPipe given the file against the float model on "
          f"edge's copy of MediaPipe's resize ({REPLICA}) instead of the model's own resize (what is left: MediaPipe's "
          f"JPEG decoder); {TWIN} = the float model of `{twin_runs.name}` (the same recipe and folds, another "
          "training seed) with the same resize. "
          "\"float right\" = the float model's accuracy in that band.", "",
          *table(rows, perturbations)]
    (RESULTS / "flip_margins.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
