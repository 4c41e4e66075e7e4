"""The consumer resize variants (edge.data.resize): edge's own is load_image's, the others differ from
it the way the libraries they stand for do."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edge.data.images import load_image
from edge.data.resize import REFERENCE, RESIZERS, VARIANTS, resize


@pytest.fixture()
def photo(tmp_path):
    rng = np.random.default_rng(0)
    # fine stripes: antialiasing matters when they are shrunk
    pixels = np.zeros((300, 450, 3), np.uint8)
    pixels[:, ::2] = 255
    pixels[::3, :, 1] = rng.integers(0, 255, (100, 450), dtype=np.uint8)
    path = tmp_path / "stripes.png"
    Image.fromarray(pixels).save(path)
    return path


def test_reference_is_load_image(photo):
    np.testing.assert_array_equal(load_image(photo, (96, 128)), load_image(photo, (96, 128)))
    assert REFERENCE not in VARIANTS and set(VARIANTS) | {REFERENCE} == set(RESIZERS)


def test_bilinear_without_antialias_is_tf_image_resize(photo):
    from edge.keras_setup import tf

    img = Image.open(photo).convert("RGB")
    ours = resize(img, (96, 128), "bilinear-no-antialias").astype(np.int16)
    theirs = tf.image.resize(np.asarray(img, np.float32)[None], (96, 128), method="bilinear", antialias=False)
    theirs = np.clip(np.round(theirs.numpy()[0]), 0, 255).astype(np.int16)
    assert np.abs(ours - theirs).max() <= 1


def test_variants_differ_from_the_reference_on_fine_detail(photo):
    ref = load_image(photo, (64, 64)).astype(np.float32)
    for variant in VARIANTS:
        out = load_image(photo, (64, 64), variant)
        assert out.shape == (64, 64, 3) and out.dtype == np.uint8
        assert np.abs(out.astype(np.float32) - ref).mean() > 0.5, variant
    # without antialiasing, 2-pixel stripes shrunk by 7 alias into strong contrast; a box filter averages them
    stripes = load_image(photo, (64, 64), "bilinear-no-antialias")[..., 0].astype(np.float32)
    area = load_image(photo, (64, 64), "area")[..., 0].astype(np.float32)
    assert stripes.std() > 3 * area.std()


def test_same_size_is_untouched(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 255, (32, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "x.png")
    for variant in RESIZERS:
        np.testing.assert_array_equal(load_image(tmp_path / "x.png", (32, 40), variant), pixels)


def random_photos(folder, count: int, shape: tuple[int, int], seed: int):
    """``count`` noise PNGs of ``shape`` (height, width) in ``folder``, as Samples of two classes."""
    from edge.rundir import Sample

    rng = np.random.default_rng(seed)
    samples = []
    for i in range(count):
        path = folder / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (*shape, 3), dtype=np.uint8)).save(path)
        samples.append(Sample(str(path), i % 2))
    return samples


def test_training_pipeline_draws_a_filter_per_image_reproducibly(tmp_path):
    from edge.data.pipeline import image_dataset

    samples = random_photos(tmp_path, 12, (90, 70), seed=2)

    def stack(**kwargs):
        return np.concatenate([x.numpy() for x, _ in image_dataset(samples, (32, 32), 5, cache=False, **kwargs)])

    only_nearest = stack(resize_variants=("nearest",))
    np.testing.assert_array_equal(only_nearest, np.stack([load_image(s.path, (32, 32), "nearest") for s in samples]))
    mixed = stack(resize_variants=tuple(RESIZERS), seed=7)
    np.testing.assert_array_equal(mixed, stack(resize_variants=tuple(RESIZERS), seed=7))  # a pass is reproducible
    per_image = {v: np.stack([load_image(s.path, (32, 32), v) for s in samples]) for v in RESIZERS}
    drawn = [next(v for v in RESIZERS if np.array_equal(mixed[i], per_image[v][i])) for i in range(len(samples))]
    assert len(set(drawn)) >= 3  # several filters over 12 images
    assert not np.array_equal(mixed, stack(resize_variants=tuple(RESIZERS), seed=8))  # another seed, other draws
    np.testing.assert_array_equal(stack(), per_image[REFERENCE])  # no variants: edge's own resize


def test_views_of_one_decode_are_what_separate_passes_give(tmp_path, monkeypatch):
    """view_dataset: every view of a photo from one decode, each the images image_dataset would give."""
    from edge.data import pipeline
    from edge.data.pipeline import View, image_dataset, view_dataset

    samples = random_photos(tmp_path, 7, (80, 60), seed=3)
    decoded = []
    original = pipeline.load_variants
    monkeypatch.setattr(pipeline, "load_variants", lambda path, *a: (decoded.append(path), original(path, *a))[1])
    views = [View(seed=1), View(seed=7, resize_variants=tuple(RESIZERS)), View(seed=9, augment=True)]
    batches = list(view_dataset(samples, (32, 32), 3, views))
    assert sorted(decoded) == sorted(s.path for s in samples)  # one decode per photo for all three views
    assert [len(b) for b in batches] == [3, 3, 3] and [len(b[0]) for b in batches] == [3, 3, 1]
    got = [np.concatenate([b[i].numpy() for b in batches]) for i in range(3)]
    for view, images in zip(views[:2], got):
        expected = np.concatenate([x.numpy() for x, _ in image_dataset(
            samples, (32, 32), 3, cache=False, seed=view.seed, resize_variants=view.resize_variants)])
        np.testing.assert_array_equal(images, expected)
    assert got[2].shape == got[0].shape and not np.array_equal(got[2], got[0])  # the augmented view differs
    assert got[2].min() >= 0 and got[2].max() <= 255
    # no autotuning: dropping an autotuned pipeline waits for tf.data's autotuning thread to wake (up to minutes)
    for ds in (view_dataset(samples, (32, 32), 3, views), image_dataset(samples, (32, 32), 3, augment=True)):
        assert ds.options().autotune.enabled is False
