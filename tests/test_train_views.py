"""Fine-tuning on cached views (edge.train.views) and the fine-tuning schedule (edge.train.schedule).

The cut model must compute exactly what the whole model computes, the cache must be resumable
view by view, the batches of an epoch must not depend on whether the run was interrupted, and a
cosine fine-tune must run every epoch and keep the last one.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_model():
    from edge.train.model import build_model

    model, _ = build_model("mobilenet_v2", 3, 64, weights="none", alpha=0.35)
    return model


def test_the_two_halves_compute_the_whole_model(small_model):
    from edge.train.model import FEATURES_LAYER
    from edge.train.views import split_model

    cut = split_model(small_model, "block_13_expand", FEATURES_LAYER)
    assert cut is not None and cut.shape == (4, 4, 32)  # block_12_add of MobileNetV2 0.35 at 64 px
    x = np.random.default_rng(0).uniform(0, 255, (4, 64, 64, 3)).astype(np.float32)
    whole = small_model(x, training=False).numpy()
    np.testing.assert_allclose(cut.top(cut.bottom(x, training=False), training=False).numpy(), whole, atol=1e-6)
    pooled = small_model.get_layer(FEATURES_LAYER).output
    from edge.keras_setup import keras

    features = keras.Model(small_model.input, pooled)(x, training=False).numpy()
    np.testing.assert_allclose(cut.features(cut.bottom(x, training=False)).numpy(), features, atol=1e-6)
    assert len(small_model.layers) == 159  # cutting added no layer to the model itself


def test_the_frozen_part_runs_in_litert_with_the_same_activations(small_model):
    """On a CPU-only machine the view cache runs the frozen layers as an fp32 LiteRT model (faster
    there); its activations must equal TensorFlow's to float rounding, for any batch size, quietly."""
    from edge.train.model import FEATURES_LAYER
    from edge.train.views import _LiteRTBottom, frozen_runner, split_model

    cut = split_model(small_model, "block_13_expand", FEATURES_LAYER)
    run = frozen_runner(cut)
    assert isinstance(run, _LiteRTBottom)
    rng = np.random.default_rng(1)
    for n in (5, 2, 5):  # the batch size changes (a split's last batch is smaller)
        x = rng.uniform(0, 255, (n, 64, 64, 3)).astype(np.float32)
        expected = cut.bottom(x, training=False).numpy()
        got = run(x)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-4 * max(1.0, float(np.abs(expected).max())))


def test_the_litert_frozen_part_is_quiet():
    """LiteRT's native "Created TensorFlow Lite XNNPACK delegate" line must not reach the terminal (a
    process of its own: pytest's own capture of file descriptor 2 would hide what edge does)."""
    import subprocess
    import sys

    code = ("import numpy as np\n"
            "from edge.train.model import build_model, FEATURES_LAYER\n"
            "from edge.train.views import split_model, frozen_runner\n"
            "m, _ = build_model('mobilenet_v2', 3, 64, weights='none', alpha=0.35)\n"
            "run = frozen_runner(split_model(m, 'block_13_expand', FEATURES_LAYER))\n"
            "run(np.zeros((3, 64, 64, 3), np.float32)); run(np.zeros((2, 64, 64, 3), np.float32))\n"
            "print(type(run).__name__)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "_LiteRTBottom"
    assert "XNNPACK" not in done.stderr and "fully_quantize" not in done.stderr, done.stderr


def test_evaluation_through_the_cut_keeps_the_frozen_activations(small_model, tmp_path, monkeypatch):
    """Training's evaluations run the frozen part once per split (only the top changes after stage 1),
    with the whole model's answers; a split over the budget is computed again instead of kept."""
    from edge.data.pipeline import image_dataset
    from edge.data.scan import scan
    from edge.data.synth import synth
    from edge.train import evaluation
    from edge.train.model import FEATURES_LAYER
    from edge.train.views import split_model

    samples = scan(synth(tmp_path / "data", classes=3, per_class=3, image_size=64, seed=5, quiet=True).out_dir).samples
    cut = split_model(small_model, "block_13_expand", FEATURES_LAYER)
    runs = []
    original = cut.run_bottom
    cut.run_bottom = lambda images: (runs.append(len(images)), original(images))[1]
    evaluator = evaluation.Evaluator(small_model, (64, 64), 4, cut)
    whole = np.concatenate([small_model(x, training=False).numpy() for x, _ in image_dataset(samples, (64, 64), 4)])
    first = evaluator.predict("test", samples)
    np.testing.assert_allclose(first, whole, atol=1e-5)
    assert sum(runs) == len(samples)
    np.testing.assert_array_equal(evaluator.predict("test", samples), first)
    assert sum(runs) == len(samples)  # kept: the frozen part did not run again
    assert evaluator.accuracy({"val": [], "test": samples}) == {"test": float(np.mean(
        first.argmax(1) == [s.label for s in samples]))}
    monkeypatch.setattr(evaluation, "KEEP_BYTES", 0)
    over = evaluation.Evaluator(small_model, (64, 64), 4, cut)
    over.predict("val", samples)
    over.predict("val", samples)
    assert sum(runs) == 3 * len(samples) and not over.kept  # over the budget: computed each time


def test_a_cut_across_a_skip_connection_is_refused(small_model):
    from edge.train.model import FEATURES_LAYER
    from edge.train.views import split_model

    # block_14's depthwise conv: its input and block_13's output (read again by block_14_add) cross the cut
    assert split_model(small_model, "block_14_depthwise", FEATURES_LAYER) is None
    assert split_model(small_model, "no_such_layer", FEATURES_LAYER) is None
    assert split_model(small_model, "block_14_expand", FEATURES_LAYER) is not None  # one tensor, read twice


def test_views_that_fit_the_budget():
    from edge.train.views import views_that_fit

    assert views_that_fit(3, 1000, 1000, budget=10**7) == 3
    assert views_that_fit(3, 1000, 1000, budget=2 * 10**6 + 5) == 2
    assert views_that_fit(3, 1000, 1000, budget=999_999) == 0


def test_epoch_batches_do_not_depend_on_where_the_run_started(tmp_path):
    from edge.train.views import view_batches

    paths = []
    for view in range(3):
        path = tmp_path / f"v{view}.npy"
        np.save(path, np.full((10, 2, 2, 1), view, np.float16) + np.arange(10, dtype=np.float16)[:, None, None, None] / 16)
        paths.append(path)
    labels = np.arange(10) % 2

    def epochs(first):
        ds = view_batches(paths, labels, 2, 4, seed=5, first_epoch=first, epochs=5)
        assert ds.options().autotune.enabled is False  # its teardown does not wait on tf.data's autotuning thread
        out = [(x.numpy(), y.numpy()) for x, y in ds]
        return [out[i:i + 3] for i in range(0, len(out), 3)]  # 3 batches per epoch (4 + 4 + 2)

    whole, resumed = epochs(0), epochs(2)
    assert len(whole) == 5 and len(resumed) == 3
    for a, b in zip(whole[2:], resumed):
        for (xa, ya), (xb, yb) in zip(a, b):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    orders = []
    for epoch, batches in enumerate(whole):
        xs = np.concatenate([x for x, _ in batches])
        assert set(np.floor(xs[:, 0, 0, 0]).astype(int)) == {epoch % 3}  # epoch e reads view e mod 3
        rows = np.round((xs[:, 0, 0, 0] - epoch % 3) * 16).astype(int).tolist()
        assert sorted(rows) == list(range(10))  # every image once per epoch
        ys = np.concatenate([y for _, y in batches]).argmax(1)
        np.testing.assert_array_equal(ys, labels[rows])  # labels travel with their image
        orders.append(rows)
    assert len({tuple(order) for order in orders}) > 1  # a fresh order per epoch


def test_view_cache_resumes_view_by_view_and_drops_another_splits_views(small_model, tmp_path):
    from edge.data.scan import scan
    from edge.data.synth import synth
    from edge.train.model import FEATURES_LAYER
    from edge.train.views import ViewCache, split_model

    data = synth(tmp_path / "data", classes=2, per_class=4, image_size=64, seed=2, quiet=True).out_dir
    samples = scan(data).samples
    cut = split_model(small_model, "block_13_expand", FEATURES_LAYER)
    cache = ViewCache(tmp_path / "views", cut, samples, (64, 64), 4, seed=1, name="train")
    paths = cache.ensure(3)
    assert [p.name for p in paths] == ["train-view0.npy", "train-view1.npy", "train-view2.npy"]
    views = [np.load(p) for p in paths]
    assert views[0].dtype == np.float16 and views[0].shape == (8, 4, 4, 32)
    assert not np.array_equal(views[1], views[2])  # each augmented view has its own seed
    from edge.data.pipeline import image_dataset

    clean = np.concatenate([cut.bottom(x, training=False).numpy() for x, _ in image_dataset(samples, (64, 64), 4)])
    np.testing.assert_allclose(views[0].astype(np.float32), clean, rtol=2e-3, atol=2e-3)  # view 0: as trained

    stamps = {p: p.stat().st_mtime_ns for p in paths}
    paths[2].unlink()
    calls = []
    original = cache._compute
    cache._compute = lambda views, *a: (calls.append(views), original(views, *a))
    cache.ensure(3)
    assert calls == [[2]] and all(p.stat().st_mtime_ns == stamps[p] for p in paths[:2])
    cache.ensure(3)
    assert calls == [[2]]  # nothing missing, nothing computed

    other = ViewCache(tmp_path / "views", cut, samples[:6], (64, 64), 4, seed=1, name="train")
    other.ensure(1)
    assert not paths[1].exists() and np.load(paths[0]).shape[0] == 6  # another split's views are not reused


def test_warmup_cosine_schedule():
    from edge.train.schedule import WarmupCosine, learning_rate

    schedule = WarmupCosine(1e-3, warmup_steps=10, total_steps=110)
    values = np.array([float(schedule(step)) for step in range(111)])
    assert np.all(np.diff(values[:11]) > 0) and values[0] > 0  # warm-up rises from above zero
    assert values[10] == pytest.approx(1e-3)  # the peak when warm-up ends
    assert np.all(np.diff(values[10:]) <= 1e-12)  # then only decays
    assert values[60] == pytest.approx(5e-4, rel=1e-4) and values[110] == pytest.approx(0.0, abs=1e-9)
    assert learning_rate("constant", 1e-4, 10, 5) == 1e-4
    assert isinstance(learning_rate("cosine", 1e-4, 10, 5), WarmupCosine)
    assert learning_rate("cosine", 1e-4, 10, 2).warmup_steps == 0  # no warm-up in a 2-epoch run


@pytest.fixture(scope="module")
def fake_weights(tmp_path_factory):
    from edge.keras_setup import keras

    path = tmp_path_factory.mktemp("weights") / "mnv2_035_notop.h5"
    keras.applications.MobileNetV2(input_shape=(64, 64, 3), alpha=0.35, include_top=False, weights=None).save_weights(path)
    return path


@pytest.fixture(scope="module")
def views_data(tmp_path_factory):
    from edge.data.synth import synth

    return synth(tmp_path_factory.mktemp("views") / "data", classes=3, per_class=12, image_size=64, seed=4,
                 quiet=True).out_dir


OPTIONS = dict(backbone="mobilenet_v2", alpha=0.35, image_size=64, epochs=2, batch_size=8, seed=1, quiet=True)


def test_cosine_fine_tune_on_views_runs_every_epoch_and_keeps_the_last(views_data, fake_weights, tmp_path,
                                                                       monkeypatch):
    from edge.train import train, views

    computed = []
    original = views.ViewCache._compute
    monkeypatch.setattr(views.ViewCache, "_compute", lambda self, vs, *a: (computed.append((self.name, vs)),
                                                                            original(self, vs, *a)))
    from edge.data.resize import RESIZERS

    passes = []
    original_dataset = views.view_dataset
    monkeypatch.setattr(views, "view_dataset", lambda *a: (passes.append([(v.augment, v.resize_variants) for v in a[3]]),
                                                           original_dataset(*a))[1])
    result = train(views_data, run_dir=tmp_path / "run", weights=str(fake_weights), fine_tune_epochs=4, patience=1,
                   resize_augment=True, fine_tune_views=3, **OPTIONS)
    # one pass per split: clean views with edge's resize; augmented ones draw each photo's filter from every consumer's
    augmented = (True, tuple(RESIZERS))
    assert sorted(passes) == [[(False, ())], [(False, ()), augmented, augmented]]
    assert sorted(computed) == [("train", [0, 1, 2]), ("val", [0])]  # each view once, val clean
    assert len(result.history["fine_tune"]["loss"]) == 4  # patience 1 does not cut a decaying schedule
    assert result.metrics["best_epoch"]["fine_tune"] == 3  # the last epoch is kept
    assert result.metrics["timings"]["views_cache_s"] > 0 and "bottleneck_cache_s" not in result.metrics["timings"]
    spec = json.loads((result.run_dir / "spec.json").read_text())
    assert spec["training"]["fine_tune_views"] == 3 and spec["training"]["fine_tune_schedule"] == "cosine"
    assert not (result.run_dir / "checkpoints").exists()  # the cache goes with the checkpoints
    # metrics.json's numbers (frozen part in LiteRT, kept between the two evaluations) are the saved model's own
    from edge.data.pipeline import image_dataset
    from edge.keras_setup import keras
    from edge.rundir import read_split

    saved = keras.models.load_model(result.model_path)
    for name in ("val", "test"):
        samples = read_split(result.run_dir, name, result.spec.labels)
        probs = np.concatenate([saved(x, training=False).numpy() for x, _ in image_dataset(samples, (64, 64), 8)])
        assert result.metrics[name]["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == [s.label for s in samples]))


def test_int8_exact_fine_tune_gives_the_int8_file_the_float_models_weights(views_data, fake_weights, tmp_path):
    """With int8_exact the fine-tuned kernels end on their int8 grid and the TFLite int8 file carries
    them unchanged: its dequantized weights equal the Keras kernels; the frozen layers are untouched."""
    from edge import export
    from edge.keras_setup import keras
    from edge.runtimes.litert import interpreter
    from edge.train import train
    from edge.train.int8_grid import rounded

    result = train(views_data, run_dir=tmp_path / "run", weights=str(fake_weights), fine_tune_epochs=2,
                   int8_exact=True, **OPTIONS)
    assert json.loads((result.run_dir / "spec.json").read_text())["training"]["int8_exact"] is True
    model = keras.models.load_model(result.model_path)
    pretrained = keras.applications.MobileNetV2(input_shape=(64, 64, 3), alpha=0.35, include_top=False, weights=None)
    pretrained.load_weights(fake_weights)
    assert np.array_equal(model.get_layer("block_13_project").kernel.numpy(),
                          pretrained.get_layer("block_13_project").kernel.numpy())  # below the cut
    tuned = {"block_14_expand": 3, "block_14_depthwise": 2, "block_16_project": 3, "Conv_1": 3, "logits": 1}
    for name, axis in tuned.items():
        layer = model.get_layer(name)
        kernel = (layer.depthwise_kernel if axis == 2 else layer.kernel).numpy()
        assert np.allclose(kernel, rounded(kernel, axis).numpy(), rtol=0, atol=1e-7), name
        if name != "logits":
            assert not np.array_equal(kernel, pretrained.get_layer(name).get_weights()[0]), name  # it was trained
    report = export(result.run_dir, formats="tflite", quantize="int8", out=tmp_path / "export", quiet=True)
    (entry,) = report.entries
    int8_file = interpreter(entry.path)
    tensors = {t["name"]: t for t in int8_file.get_tensor_details()
               if t["dtype"] == np.int8 and len(t["quantization_parameters"]["scales"]) > 1}
    ops = {"block_14_depthwise": "/depthwise", "logits": "/MatMul"}
    checked = 0
    for name, axis in tuned.items():
        layer = model.get_layer(name)
        kernel = (layer.depthwise_kernel if axis == 2 else layer.kernel).numpy()
        (tensor_name,) = [t for t in tensors if t.endswith(f"/{name}{ops.get(name, '/Conv2D')}")]
        tensor = tensors[tensor_name]
        scales = tensor["quantization_parameters"]["scales"]
        values = int8_file.get_tensor(tensor["index"])
        if axis == 2:  # depthwise (h, w, channels, 1) -> TFLite (1, h, w, channels)
            as_tflite = kernel[..., 0][None]
        elif axis == 1:  # dense (in, out) -> (out, in)
            as_tflite = kernel.T
        else:  # convolution (h, w, in, out) -> (out, h, w, in)
            as_tflite = np.transpose(kernel, (3, 0, 1, 2))
        channel = tensor["quantization_parameters"]["quantized_dimension"]
        others = tuple(i for i in range(values.ndim) if i != channel)
        steps = as_tflite / (np.abs(as_tflite).max(axis=others, keepdims=True) / 127)
        # the file's integers are the kernel's own grid steps (folding batch norm scales a channel, not its steps)
        assert np.abs(steps - np.round(steps)).max() < 1e-3 and np.array_equal(np.round(steps), values), name
        assert len(scales) == values.shape[channel]  # one scale per output channel
        checked += 1
    assert checked == len(tuned)


@pytest.mark.parametrize("views", [2, 0])
def test_a_model_trained_for_mediapipes_resize_is_resized_that_way_everywhere(views_data, fake_weights, tmp_path,
                                                                                monkeypatch, views):
    """``resize="stretch-mediapipe"``: training (cached views, or images with ``fine_tune_views=0``),
    its evaluation, the export gate and calibration, predict and bench all resize with MediaPipe's
    filter; edge's own filter is never called (it raises here), and the artifact carries the mode."""
    from edge import bench, export, predict
    from edge.contract import KEY_RESIZE
    from edge.data.images import IMAGE_EXTENSIONS
    from edge.data.resize import REFERENCE, RESIZERS
    from edge.export.formats.tflite_metadata import read_metadata
    from edge.train import train

    calls = []
    mediapipe = RESIZERS["mediapipe-cpu"]

    def refuse(img, size):
        raise AssertionError("edge's own resize used for a model trained with MediaPipe's")

    monkeypatch.setitem(RESIZERS, REFERENCE, refuse)
    monkeypatch.setitem(RESIZERS, "mediapipe-cpu", lambda img, size: (calls.append(size), mediapipe(img, size))[1])
    result = train(views_data, run_dir=tmp_path / "run", weights=str(fake_weights), fine_tune_epochs=2,
                   resize="stretch-mediapipe", fine_tune_views=views, **OPTIONS)
    trained = len(calls)
    assert trained >= 36 and result.spec.resize == "stretch-mediapipe"
    assert json.loads((result.run_dir / "spec.json").read_text())["resize"] == "stretch-mediapipe"
    report = export(result.run_dir, formats="tflite", quantize="int8", out=tmp_path / "export", quiet=True)
    (entry,) = report.entries
    assert read_metadata(entry.path)[KEY_RESIZE] == "stretch-mediapipe"
    exported = len(calls)
    assert exported > trained  # the gate's held-out photos and the calibration images
    photos = sorted(str(p) for p in views_data.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)[:3]
    assert len(predict(entry.path, photos).images) == 3 and len(calls) == exported + 3
    row = bench([entry.path], run=result.run_dir, resize_variants=False, measure_latency=False, write=False,
                quiet=True).rows[0]
    assert row.accuracy is not None and len(calls) > exported + 3


def test_views_zero_fine_tunes_on_images_and_constant_keeps_the_best(views_data, fake_weights, tmp_path):
    from edge.train import train

    result = train(views_data, run_dir=tmp_path / "run", weights=str(fake_weights), fine_tune_epochs=3,
                   fine_tune_views=0, fine_tune_schedule="constant", patience=0, resize_augment=False, **OPTIONS)
    assert "views_cache_s" not in result.metrics["timings"] and "bottleneck_cache_s" in result.metrics["timings"]
    accuracy = result.history["fine_tune"]["val_accuracy"]
    assert result.metrics["best_epoch"]["fine_tune"] == int(np.argmax(accuracy))  # first best val epoch restored


def test_interrupted_fine_tune_on_views_resumes_without_recomputing(views_data, fake_weights, tmp_path, monkeypatch):
    from edge.train import train, views
    from edge.train.progress import RichProgress

    original_end = RichProgress.on_epoch_end

    def interrupt(self, epoch, logs=None):
        original_end(self, epoch, logs)
        if self.description == "fine_tune" and epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(RichProgress, "on_epoch_end", interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(views_data, run_dir=tmp_path / "run", weights=str(fake_weights), fine_tune_epochs=4, **OPTIONS)
    state = json.loads((tmp_path / "run" / "checkpoints" / "fine_tune" / "state.json").read_text())
    assert state["epoch"] == 1
    monkeypatch.setattr(RichProgress, "on_epoch_end", original_end)
    computed = []
    original = views.ViewCache._compute
    monkeypatch.setattr(views.ViewCache, "_compute", lambda self, vs, *a: (computed.append(vs),
                                                                            original(self, vs, *a)))
    result = train(views_data, run_dir=tmp_path / "run", weights=str(fake_weights), fine_tune_epochs=4, resume=True,
                   **OPTIONS)
    assert computed == []  # every view was already on disk
    history = result.history["fine_tune"]
    assert len(history["loss"]) == 4 and history["loss"][:2] == state["history"]["loss"]



def test_fine_tune_on_views_under_a_mirrored_strategy(views_data, fake_weights, tmp_path, edge_cli):
    """The multi-GPU path's logic on two logical CPUs: the generator of cached views feeds both replicas."""
    run = tmp_path / "run"
    proc = edge_cli("train", str(views_data), "--run-dir", str(run), "--weights", str(fake_weights), "--alpha", "0.35",
                    "--image-size", "64", "--epochs", "2", "--fine-tune-epochs", "2", "--batch-size", "8", "--seed", "1",
                    "--devices", "cpu:2", timeout=600, columns=80)
    assert proc.returncode == 0, proc.stderr
    assert max(len(line) for line in proc.stdout.splitlines()) <= 80, proc.stdout
    assert proc.stdout.count("val_accuracy") >= 6, proc.stdout  # not folded mid-word next to the progress bars
    assert "…" not in proc.stdout, proc.stdout  # the summary wraps a long weights path, it does not cut it
    spec = json.loads((run / "spec.json").read_text())
    assert spec["training"]["placement"] == "MirroredStrategy over 2 logical CPUs"
    metrics = json.loads((run / "metrics.json").read_text())
    assert "views_cache_s" in metrics["timings"] and metrics["best_epoch"]["fine_tune"] == 1
    history = (run / "history.csv").read_text().splitlines()
    assert sum(line.startswith("fine_tune,") for line in history) == 2
    assert all("nan" not in line for line in history)
