"""edge bench's resize check: each model's top-1 agreement with itself when the images are resized the
way other apps do (edge.data.resize), on tiny hand-made models (no training).

The ONNX colour model (conftest ``colour_onnx``: uint8 4x4 -> mean of each channel) answers with the
strongest channel. Solid images give the same answer under any resize; 16 px images of alternating
red and green (or blue) columns, green slightly stronger, are green on average (every antialiased
resize, and bilinear sampling between two columns) but all red under nearest neighbour, which keeps
the even columns only. So of the 8 images below, nearest flips exactly 2, and so does MediaPipe's resize
(``mediapipe-cpu``), which at a whole-number reduction samples the even columns without blending.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge.bench import bench, report, runner
from edge.data.images import load_image
from edge.data.resize import REFERENCE, RESIZERS, VARIANTS
from edge.errors import EdgeError

LABELS = ["red", "green", "blue"]
SOLID = {"red": (200, 0, 0), "green": (0, 220, 0), "blue": (0, 0, 220)}
QUICK = dict(labels=LABELS, warmup=0, runs=3, time_budget=0.2)
# Each variant's agreement on the 8 images: nearest keeps the even columns of a stripe image, and so does
# MediaPipe's resize at this whole-number reduction (16 -> 4 px: it samples column 4x exactly, no blending).
STRIPED_AGREEMENT = {"pillow-bicubic": "100.0%", "area": "100.0%", "bilinear-no-antialias": "100.0%",
                     "nearest": "75.0%", "mediapipe-cpu": "75.0%"}


@pytest.fixture(scope="module")
def striped(tmp_path_factory, make_colour_onnx):
    """(colour.onnx, a second copy, class folders: 2 solid images per colour + green and blue stripes)."""
    root = tmp_path_factory.mktemp("resize")
    for label, rgb in SOLID.items():
        (root / "data" / label).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (12, 10), rgb).save(root / "data" / label / f"{i}.png")
        if label != "red":
            pixels = np.zeros((16, 16, 3), np.uint8)
            pixels[:, 0::2], pixels[:, 1::2] = SOLID["red"], rgb
            Image.fromarray(pixels).save(root / "data" / label / "stripes.png")
    model = make_colour_onnx(root / "colour.onnx")
    return model, make_colour_onnx(root / "copy" / "colour.onnx"), root / "data"


def _paths(data: Path) -> list[Path]:
    return sorted(p for p in data.rglob("*.png"))


def _top1(predictor, images: np.ndarray) -> np.ndarray:
    return np.asarray(predictor(images)).argmax(axis=1)


# ---------------------------------------------------------------------------------------------- the numbers

def test_agreement_by_hand_and_against_the_predictor(striped):
    model, _, data = striped
    (row,) = bench([model], data=data, measure_latency=False, write=False, quiet=True, **QUICK).rows
    assert list(row.resize_agreement) == list(VARIANTS) == list(row.resize_accuracy)
    assert all(0.0 <= v <= 1.0 for v in [*row.resize_agreement.values(), *row.resize_accuracy.values()])
    assert row.accuracy == 1.0
    assert row.resize_agreement["nearest"] == pytest.approx(6 / 8)  # the two striped images turn red
    assert row.resize_accuracy["nearest"] == pytest.approx(6 / 8)

    # independently: the model's own predictor on the images loaded each way
    from edge.bench.models import ModelRef, load
    from edge.runtimes.foreign import ForeignOptions

    predictor = load(ModelRef(model, "onnx"), 1, ForeignOptions(labels=LABELS))
    paths = _paths(data)
    truth = np.array([LABELS.index(p.parent.name) for p in paths])
    usual = _top1(predictor, np.stack([load_image(p, (4, 4)) for p in paths]))
    assert (usual == truth).all()
    for variant in VARIANTS:
        top1 = _top1(predictor, np.stack([load_image(p, (4, 4), variant) for p in paths]))
        # and the model by hand: the strongest channel of the resized pixels
        by_hand = np.stack([load_image(p, (4, 4), variant).reshape(-1, 3).mean(0) for p in paths]).argmax(1)
        assert (top1 == by_hand).all(), variant
        assert row.resize_agreement[variant] == pytest.approx(np.mean(top1 == usual)), variant
        assert row.resize_accuracy[variant] == pytest.approx(np.mean(top1 == truth)), variant


def test_a_variant_made_identical_to_the_reference_agrees_fully(striped, monkeypatch):
    model, _, data = striped
    monkeypatch.setitem(RESIZERS, "nearest", RESIZERS[REFERENCE])
    (row,) = bench([model], data=data, measure_latency=False, write=False, quiet=True, **QUICK).rows
    assert row.resize_agreement["nearest"] == 1.0 and row.resize_accuracy["nearest"] == row.accuracy == 1.0


def test_each_stack_decoded_once_per_size_and_each_model_run_once(striped, monkeypatch):
    """Two models of the same input size over a thread sweep: every variant's images decoded once, and
    each model run once per variant (at the first thread count only)."""
    import edge.data.images

    model, copy, data = striped
    decoded, runs = [], []
    real_resize, real_run = edge.data.images.resize, runner._run_checked

    def counting_resize(img, size, variant=REFERENCE):
        if variant != REFERENCE:
            decoded.append(variant)
        return real_resize(img, size, variant)

    def counting_run(predictor, images, ref):
        runs.append(ref.path)
        return real_run(predictor, images, ref)

    monkeypatch.setattr(edge.data.images, "resize", counting_resize)
    monkeypatch.setattr(runner, "_run_checked", counting_run)
    result = bench([model, copy], data=data, threads="1,2", measure_latency=False, write=False, quiet=True, **QUICK)
    assert len(result.rows) == 4
    assert sorted(decoded) == sorted(v for v in VARIANTS for _ in range(8))
    assert runs.count(model) == runs.count(copy) == 1 + len(VARIANTS)
    assert all(r.resize_agreement == result.rows[0].resize_agreement for r in result.rows)


def test_off_skips_the_work_and_leaves_no_variant_data(striped, monkeypatch, tmp_path):
    import edge.data.images

    model, _, data = striped
    runs = []
    real_run = runner._run_checked
    monkeypatch.setattr(runner, "_run_checked", lambda p, images, ref: runs.append(ref) or real_run(p, images, ref))
    real_resize = edge.data.images.resize
    monkeypatch.setattr(edge.data.images, "resize", lambda img, size, variant=REFERENCE: real_resize(img, size, variant)
                        if variant == REFERENCE else pytest.fail("decoded a resize variant"))
    result = bench([model], data=data, resize_variants=False, measure_latency=False, out=tmp_path, quiet=True, **QUICK)
    assert len(runs) == 1
    (row,) = result.rows
    assert row.resize_agreement == {} and row.resize_accuracy == {}
    text = (tmp_path / report.JSON_FILE).read_text() + (tmp_path / report.MARKDOWN_FILE).read_text()
    assert not any(variant in text for variant in VARIANTS)
    assert json.loads((tmp_path / report.JSON_FILE).read_text())["options"]["resize_variants"] is False
    assert report.resize_table(result) is None and report.row_cells(row)[report.RESIZE_COLUMN] == "-"
    assert result.mediapipe == {}


def test_the_option_is_validated_like_the_others(striped):
    model, _, data = striped
    with pytest.raises(EdgeError, match="resize_variants must be True or False") as caught:
        bench([model], data=data, resize_variants="no", **QUICK)
    assert len(str(caught.value).splitlines()) == 1


# ---------------------------------------------------------------------------------------------- JSON and Markdown

def test_json_and_markdown_carry_every_variant(striped, tmp_path):
    model, _, data = striped
    result = bench([model], data=data, out=tmp_path, quiet=True, **QUICK)
    saved = json.loads((tmp_path / report.JSON_FILE).read_text())
    (entry,) = saved["models"]
    row = result.rows[0]
    assert entry["resize_agreement"] == row.resize_agreement and entry["resize_accuracy"] == row.resize_accuracy
    assert set(entry["resize_agreement"]) == set(VARIANTS) and saved["options"]["resize_variants"] is True
    assert saved["mediapipe"] == {}  # an ONNX model: MediaPipe is not even looked for, nor mentioned
    md = (tmp_path / report.MARKDOWN_FILE).read_text()
    assert "MediaPipe" not in md and "| mediapipe |" not in md  # (the mediapipe-cpu resize is edge's own code)
    assert f"| {report.RESIZE_COLUMN} |" in md.splitlines()[0] and "| 75.0% |" in md.splitlines()[2]
    assert "| model | " + " | ".join(VARIANTS) + " |" in md
    assert f"| model | {REFERENCE} | " + " | ".join(VARIANTS) + " |" in md
    agreement = " | ".join(STRIPED_AGREEMENT[v] for v in VARIANTS)
    assert f"| colour.onnx | {agreement} |" in md  # agreement per variant
    assert f"| colour.onnx | 100.0% | {agreement} |" in md  # accuracy, edge's resize first (every solid image right)


# ---------------------------------------------------------------------------------------------- Keras: other sizes

def test_models_of_other_input_sizes_and_the_keras_reference(striped, make_colour_model, tmp_path):
    """A Keras reference at 8x8 beside the 4x4 ONNX model: each gets images at its own size; the reference
    is measured too, as a row when benched, else in the result's reference fields (and listed first)."""
    from edge.bench.models import ModelRef, load

    model, _, data = striped
    keras = make_colour_model(tmp_path / "run")
    apart = bench([model], data=data, reference=keras, measure_latency=False, out=tmp_path / "o", quiet=True, **QUICK)
    together = bench([keras, model], data=data, measure_latency=False, write=False, quiet=True, **QUICK)

    predictor = load(ModelRef(keras, "keras"), 1)
    paths = _paths(data)
    usual = _top1(predictor, np.stack([load_image(p, (8, 8)) for p in paths]))
    expected = {v: np.mean(_top1(predictor, np.stack([load_image(p, (8, 8), v) for p in paths])) == usual)
                for v in VARIANTS}
    assert apart.reference_resize_agreement == pytest.approx(expected)
    assert together.rows[0].name == "model.keras" and together.rows[0].resize_agreement == pytest.approx(expected)
    assert together.reference_resize_agreement == {}  # its row carries it: measured once
    assert together.rows[1].resize_agreement == apart.rows[0].resize_agreement  # the 4x4 model, unchanged
    assert [e[0] for e in report.resize_entries(apart)] == ["model.keras (reference)", "colour.onnx"]
    saved = json.loads((tmp_path / "o" / report.JSON_FILE).read_text())
    assert saved["reference_resize_agreement"] == pytest.approx(expected)
    assert "| model.keras (reference) |" in (tmp_path / "o" / report.MARKDOWN_FILE).read_text()


# ---------------------------------------------------------------------------------------------- the CLI

def test_cli_prints_the_column_and_the_table_at_80_columns(striped, tmp_path, edge_cli):
    model, _, data = striped
    args = ["bench", str(model), "--data", str(data), "--labels", ",".join(LABELS), "--runs", "3", "--warmup", "0",
            "--threads", "1,2", "--out", str(tmp_path / "o")]
    done = edge_cli(*args, columns=80)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "…" not in done.stdout
    assert all(len(line.rstrip()) <= 80 for line in done.stdout.splitlines()), done.stdout
    head = next(line for line in done.stdout.splitlines() if "model" in line and "top-1" in line)
    assert report.RESIZE_COLUMN in head  # the header whole, on one line
    main_rows = [line for line in done.stdout.splitlines() if "colour.onnx" in line and "onnxruntime" in line]
    assert len(main_rows) == 2 and all("75.0%" in line for line in main_rows)  # the worst variant: nearest
    assert all(variant in done.stdout for variant in VARIANTS)
    # the per-resize table: too wide for 80 columns with every variant, so one block per model
    per_variant = " ".join(done.stdout.split("per resize", 1)[1].split("wrote", 1)[0].split())
    assert re.findall(r"([a-z-]+) (\d+\.\d%)", per_variant) == [(v, STRIPED_AGREEMENT[v]) for v in VARIANTS]

    off = edge_cli(*args, "--no-resize-variants", "--json", "-", columns=80)
    assert off.returncode == 0, off.stderr
    models = json.loads(off.stdout)["models"]
    assert all(m["resize_agreement"] == {} and m["resize_accuracy"] == {} for m in models)
    assert report.RESIZE_COLUMN not in off.stderr and "nearest" not in off.stderr  # the table went to stderr


def test_a_resize_mode_edge_does_not_know_is_one_sentence():
    """A model whose metadata names a resize this edge does not know (a newer edge's) is refused in one
    sentence, not resized the default way."""
    from edge.data.resize import MODES, own_filter

    assert {own_filter(mode) for mode in MODES} <= set(RESIZERS)
    with pytest.raises(EdgeError, match="resize 'stretch-lanczos' is not one edge knows") as caught:
        own_filter("stretch-lanczos")
    assert str(caught.value).endswith(".") and "\n" not in str(caught.value)


def test_a_model_trained_for_mediapipes_resize_is_benched_on_it(striped, tmp_path):
    """A model whose spec says ``stretch-mediapipe``: bench scores it on MediaPipe's resize (where the stripes
    are red: 6 of 8 right), measures every other filter against that, edge's own included, and names it."""
    import onnx

    from edge import contract
    from edge.spec import ModelSpec, Normalization

    plain, _, data = striped
    model = onnx.load(str(plain))
    spec = ModelSpec(name="colour", backbone="none", labels=list(LABELS), input_size=(4, 4),
                     normalization=Normalization(mean=(0.0,) * 3, std=(1.0,) * 3), resize="stretch-mediapipe")
    for key, value in contract.artifact_metadata(spec, "test").items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    path = tmp_path / "colour_mp.onnx"
    onnx.save(model, str(path))
    result = bench([path], data=data, out=tmp_path / "o", measure_latency=False, quiet=True, **QUICK)
    (row,) = result.rows
    assert row.accuracy == pytest.approx(6 / 8)  # its own resize keeps the red columns of the stripes
    assert list(row.resize_agreement) == [v for v in RESIZERS if v != "mediapipe-cpu"]
    assert row.resize_agreement[REFERENCE] == pytest.approx(6 / 8) and row.resize_accuracy[REFERENCE] == 1.0
    assert row.resize_agreement["nearest"] == 1.0  # nearest keeps the same columns
    md = (tmp_path / "o" / report.MARKDOWN_FILE).read_text()
    assert "instead of each model's mediapipe-cpu" in md and f"| model | mediapipe-cpu | {REFERENCE} |" in md
