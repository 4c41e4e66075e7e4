"""Per-op checks of the MIL reference executor's NumPy ops against TensorFlow and NumPy references."""

from __future__ import annotations

import numpy as np
import pytest

from edge.runtimes.mil import ops as mil_ops
from edge.runtimes.mil.ops import OPS


@pytest.fixture(scope="module")
def tf():
    from edge.keras_setup import tf

    return tf


def _nchw(x_nhwc):
    return np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))


def _nhwc(x_nchw):
    return x_nchw.transpose(0, 2, 3, 1)


def _tf_pad_same(pad_type):
    return {"same": "SAME", "valid": "VALID"}[pad_type]


RNG = np.random.default_rng(0)


@pytest.mark.parametrize(
    "size, kernel, strides, dilations, pad_type",
    [
        ((7, 9), (3, 3), (1, 1), (1, 1), "same"),
        ((7, 9), (3, 3), (2, 2), (1, 1), "same"),  # odd size, stride 2: TF puts the extra pad at the end
        ((8, 8), (3, 3), (2, 2), (1, 1), "valid"),
        ((11, 10), (5, 3), (1, 2), (1, 1), "same"),
        ((9, 9), (3, 3), (1, 1), (2, 2), "same"),  # dilation
        ((6, 5), (1, 1), (2, 2), (1, 1), "valid"),  # strided 1x1 (ResNet shortcut)
        ((6, 5), (1, 1), (1, 1), (1, 1), "same"),
        ((9, 9), (7, 7), (2, 2), (1, 1), "valid"),
    ],
)
def test_conv_matches_tensorflow(tf, size, kernel, strides, dilations, pad_type):
    x = RNG.normal(size=(2, *size, 5)).astype(np.float32)
    w_hwio = RNG.normal(size=(*kernel, 5, 4)).astype(np.float32)
    bias = RNG.normal(size=4).astype(np.float32)
    ref = tf.nn.conv2d(x, w_hwio, strides=strides, padding=_tf_pad_same(pad_type), dilations=dilations).numpy() + bias
    w_mil = np.ascontiguousarray(w_hwio.transpose(3, 2, 0, 1))  # (C_out, C_in, kH, kW)
    out = OPS["conv"](x=_nchw(x), weight=w_mil, bias=bias, strides=strides, pad_type=pad_type, pad=[0, 0, 0, 0],
                      dilations=dilations, groups=1)
    np.testing.assert_allclose(_nhwc(out), ref, rtol=1e-4, atol=1e-4)


def test_conv_custom_padding_matches_explicit_pad(tf):
    x = RNG.normal(size=(1, 6, 7, 3)).astype(np.float32)
    w_hwio = RNG.normal(size=(3, 3, 3, 2)).astype(np.float32)
    ref = tf.nn.conv2d(x, w_hwio, strides=1, padding=[[0, 0], [1, 2], [0, 3], [0, 0]]).numpy()
    out = OPS["conv"](x=_nchw(x), weight=w_hwio.transpose(3, 2, 0, 1), strides=[1, 1], pad_type="custom",
                      pad=[1, 2, 0, 3], dilations=[1, 1], groups=1)
    np.testing.assert_allclose(_nhwc(out), ref, rtol=1e-4, atol=1e-4)


def test_same_lower_puts_the_extra_pad_first():
    # 4 wide, kernel 2, stride 1: one pad cell; "same" adds it at the end, "same_lower" at the start.
    assert mil_ops.spatial_padding("same", None, (4,), (2,), (1,), (1,)) == [(0, 1)]
    assert mil_ops.spatial_padding("same_lower", None, (4,), (2,), (1,), (1,)) == [(1, 0)]
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 1, 4)
    w = np.ones((1, 1, 1, 2), np.float32)
    lower = OPS["conv"](x=x, weight=w, strides=[1, 1], pad_type="same_lower", pad=None, dilations=[1, 1], groups=1)
    np.testing.assert_array_equal(lower.ravel(), [0, 1, 3, 5])


@pytest.mark.parametrize("strides, multiplier, dilations", [((1, 1), 1, (1, 1)), ((2, 2), 1, (1, 1)),
                                                            ((1, 1), 2, (1, 1)), ((1, 1), 1, (2, 2))])
def test_depthwise_conv_matches_tensorflow(tf, strides, multiplier, dilations):
    x = RNG.normal(size=(2, 9, 7, 6)).astype(np.float32)
    w = RNG.normal(size=(3, 3, 6, multiplier)).astype(np.float32)  # TF depthwise: (kH, kW, C, mult)
    ref = tf.nn.depthwise_conv2d(x, w, strides=(1, *strides, 1), padding="SAME", dilations=dilations).numpy()
    # MIL: groups = C, weight (C * mult, 1, kH, kW); output channel c*mult+m reads input channel c.
    w_mil = np.ascontiguousarray(w.reshape(3, 3, 6 * multiplier).transpose(2, 0, 1)[:, None])
    out = OPS["conv"](x=_nchw(x), weight=w_mil, strides=strides, pad_type="same", pad=None,
                      dilations=dilations, groups=6)
    np.testing.assert_allclose(_nhwc(out), ref, rtol=1e-4, atol=1e-4)


def test_grouped_conv_equals_per_group_convolutions():
    x = RNG.normal(size=(1, 4, 5, 5)).astype(np.float32)
    w = RNG.normal(size=(6, 2, 3, 3)).astype(np.float32)  # 2 groups: 2 in -> 3 out each
    out = OPS["conv"](x=x, weight=w, strides=[1, 1], pad_type="valid", pad=None, dilations=[1, 1], groups=2)
    first = OPS["conv"](x=x[:, :2], weight=w[:3], strides=[1, 1], pad_type="valid", pad=None, dilations=[1, 1], groups=1)
    second = OPS["conv"](x=x[:, 2:], weight=w[3:], strides=[1, 1], pad_type="valid", pad=None, dilations=[1, 1], groups=1)
    np.testing.assert_allclose(out, np.concatenate([first, second], axis=1), rtol=1e-6)
    # and a direct loop reference for one output value
    ref = np.sum(x[0, 2:4, 1:4, 2:5] * w[4])
    assert out[0, 4, 1, 2] == pytest.approx(ref, rel=1e-5)


@pytest.mark.parametrize("pad_type, kernel, strides, size", [("valid", 3, 2, (9, 8)), ("same", 3, 2, (9, 8)),
                                                             ("same", 3, 1, (5, 7)), ("valid", 2, 2, (6, 6))])
def test_pools_match_tensorflow(tf, pad_type, kernel, strides, size):
    x = RNG.normal(size=(2, *size, 3)).astype(np.float32)
    args = dict(kernel_sizes=[kernel, kernel], strides=[strides, strides], pad_type=pad_type, pad=[0, 0, 0, 0])
    ref_max = tf.nn.max_pool2d(x, kernel, strides, _tf_pad_same(pad_type)).numpy()
    np.testing.assert_allclose(_nhwc(OPS["max_pool"](x=_nchw(x), **args)), ref_max, rtol=1e-6)
    # TF's SAME average pooling divides by the number of real cells (Keras AveragePooling2D).
    ref_avg = tf.nn.avg_pool2d(x, kernel, strides, _tf_pad_same(pad_type)).numpy()
    out = OPS["avg_pool"](x=_nchw(x), exclude_padding_from_average=True, **args)
    np.testing.assert_allclose(_nhwc(out), ref_avg, rtol=1e-5, atol=1e-6)


def test_avg_pool_counting_padding_divides_by_kernel_area():
    x = np.ones((1, 1, 3, 3), np.float32)
    out = OPS["avg_pool"](x=x, kernel_sizes=[3, 3], strides=[1, 1], pad_type="same", pad=None,
                          exclude_padding_from_average=False)
    assert out[0, 0, 0, 0] == pytest.approx(4 / 9)  # corner: 4 real cells of 9
    assert out[0, 0, 1, 1] == pytest.approx(1.0)


def test_max_pool_ceil_mode_adds_a_partial_window():
    x = np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5)
    out = OPS["max_pool"](x=x, kernel_sizes=[2, 2], strides=[2, 2], pad_type="valid", pad=None, ceil_mode=True)
    assert out.shape == (1, 1, 3, 3)
    assert out[0, 0, 2, 2] == 24


@pytest.mark.parametrize("mode, np_mode", [("constant", "constant"), ("reflect", "reflect"), ("replicate", "edge")])
def test_pad_modes(mode, np_mode):
    x = RNG.normal(size=(1, 2, 4, 5)).astype(np.float32)
    out = OPS["pad"](x=x, pad=np.array([1, 2, 2, 1]), mode=mode, constant_val=0.0)
    np.testing.assert_array_equal(out, np.pad(x, [(0, 0), (0, 0), (1, 2), (2, 1)], mode=np_mode))
    full = OPS["pad"](x=x, pad=np.array([0, 0, 0, 0, 0, 1, 0, 1]), mode="constant", constant_val=3.0)
    assert full.shape == (1, 2, 5, 6) and full[0, 0, -1, -1] == 3.0


def test_activations_match_tensorflow(tf):
    x = np.linspace(-9, 9, 181, dtype=np.float32)
    np.testing.assert_allclose(OPS["relu6"](x=x), tf.nn.relu6(x).numpy())
    np.testing.assert_allclose(OPS["relu"](x=x), tf.nn.relu(x).numpy())
    np.testing.assert_allclose(OPS["sigmoid"](x=x), tf.math.sigmoid(x).numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(OPS["silu"](x=x), tf.nn.silu(x).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(OPS["sigmoid_hard"](x=x, alpha=1 / 6, beta=0.5), tf.nn.relu6(x + 3).numpy() / 6,
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(OPS["clip"](x=x, alpha=-1.0, beta=2.0), np.clip(x, -1, 2))
    np.testing.assert_allclose(OPS["tanh"](x=x), np.tanh(x), rtol=1e-6)
    assert np.all(np.isfinite(OPS["sigmoid"](x=np.array([-1e4, 1e4], np.float32))))


def test_softmax_batch_norm_and_reductions_match_tensorflow(tf):
    x = RNG.normal(size=(2, 5, 3, 4)).astype(np.float32) * 10
    np.testing.assert_allclose(OPS["softmax"](x=x, axis=1), tf.nn.softmax(x, axis=1).numpy(), rtol=1e-5, atol=1e-7)
    mean, var, gamma, beta = (RNG.uniform(0.5, 2, 5).astype(np.float32) for _ in range(4))
    ref = tf.nn.batch_normalization(_nhwc(x), mean, var, beta, gamma, 1e-3).numpy()
    out = OPS["batch_norm"](x=x, mean=mean, variance=var, gamma=gamma, beta=beta, epsilon=1e-3)
    np.testing.assert_allclose(_nhwc(out), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(OPS["reduce_mean"](x=x, axes=[2, 3], keep_dims=True), x.mean(axis=(2, 3), keepdims=True),
                               rtol=1e-5, atol=1e-6)
    assert OPS["reduce_mean"](x=x, axes=[-1], keep_dims=False).shape == (2, 5, 3)


def test_linear_matmul_and_elementwise_broadcast():
    x = RNG.normal(size=(3, 8)).astype(np.float32)
    w = RNG.normal(size=(4, 8)).astype(np.float32)
    b = RNG.normal(size=4).astype(np.float32)
    np.testing.assert_allclose(OPS["linear"](x=x, weight=w, bias=b), x @ w.T + b, rtol=1e-5)
    np.testing.assert_allclose(OPS["matmul"](x=x, y=w, transpose_x=False, transpose_y=True), x @ w.T, rtol=1e-5)
    y = np.array([[[[1.0]], [[2.0]]]], np.float32)  # (1, 2, 1, 1) per-channel bias, as the ImageType writes it
    img = np.ones((1, 2, 3, 3), np.float32)
    assert OPS["add"](x=img, y=y)[0, 1, 2, 2] == 3.0
    assert OPS["real_div"](x=img, y=np.float32(4))[0, 0, 0, 0] == 0.25


def test_shape_ops():
    x = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)
    assert OPS["transpose"](x=x, perm=[0, 2, 3, 1]).shape == (1, 3, 4, 2)
    assert OPS["reshape"](x=x.reshape(1, 6, 4), shape=np.array([0, -1, 2])).shape == (1, 12, 2)
    batch = np.zeros((5, 2, 1, 1), np.float32)  # the executor runs a batch through a batch-1 program
    assert OPS["reshape"](x=batch, shape=np.array([1, 2])).shape == (5, 2)
    assert OPS["squeeze"](x=np.zeros((1, 3, 1, 1)), axes=[2, 3]).shape == (1, 3)
    assert OPS["expand_dims"](x=np.zeros((2, 3)), axes=[-1]).shape == (2, 3, 1)
    a, b = np.zeros((1, 2, 2)), np.ones((1, 2, 2))
    assert OPS["concat"](values=[a, b], axis=1).shape == (1, 4, 2)
    inter = OPS["concat"](values=[a, b], axis=1, interleave=True)
    np.testing.assert_array_equal(inter[0, :, 0], [0, 1, 0, 1])


def test_cast_truncates_to_int_and_keeps_float():
    assert OPS["cast"](x=np.array([1.7, -1.7]), dtype="int32").tolist() == [1, -1]
    assert OPS["cast"](x=np.array([1.5], np.float32), dtype="fp16").dtype == np.float32  # rounded by the executor


def test_classify_reads_labels_in_order():
    label, probs = OPS["classify"](probabilities=np.array([[0.1, 0.7, 0.2]]), classes=["a", "b", "c"])
    assert label == "b" and list(probs) == ["a", "b", "c"] and probs["c"] == pytest.approx(0.2)
    labels, dicts = OPS["classify"](probabilities=np.array([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8]]), classes=["a", "b", "c"])
    assert labels == ["a", "c"] and len(dicts) == 2


# --- compressed weights: decoded independently, checked against coremltools' own decoders ------


def test_unpack_bits_lsb_first():
    # The example of the MIL docs: n_bits = 2, five indices 0, 3, 2, 1, 3 packed LSB first.
    packed = np.array([0b01101100, 0b00000011], np.uint8)
    assert mil_ops.unpack_bits(packed, 2, 5).tolist() == [0, 3, 2, 1, 3]


@pytest.mark.parametrize("nbits", [1, 2, 4, 6, 8])
def test_lut_to_dense_matches_coremltools(nbits):
    from coremltools.converters.mil.mil.ops.defs.iOS16.constexpr_ops import constexpr_lut_to_dense
    from coremltools.optimize._utils import pack_elements_into_bits

    shape = np.array([3, 5, 7], np.uint32)
    idx = RNG.integers(0, 2**nbits, int(np.prod(shape))).astype(np.uint8)
    lut = RNG.normal(size=2**nbits).astype(np.float16)
    packed = pack_elements_into_bits(idx, nbits)
    ref = constexpr_lut_to_dense.decompress(lut, packed, shape)
    out = OPS["constexpr_lut_to_dense"](indices=packed, lut=lut, shape=shape)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(out.ravel(), lut[idx])


def test_affine_dequantize_matches_coremltools():
    from coremltools.converters.mil.mil.ops.defs.iOS16.constexpr_ops import constexpr_affine_dequantize

    q = RNG.integers(-128, 127, (4, 3, 2, 2)).astype(np.int8)
    scale = RNG.uniform(0.01, 0.1, 4).astype(np.float32)
    zp = np.zeros(4, np.int8)
    ref = constexpr_affine_dequantize.decompress(q, zp, scale, 0)
    out = OPS["constexpr_affine_dequantize"](quantized_data=q, zero_point=zp, scale=scale, axis=0)
    np.testing.assert_allclose(out, ref, rtol=1e-6)
    uq = RNG.integers(0, 255, (2, 5)).astype(np.uint8)
    out = OPS["constexpr_affine_dequantize"](quantized_data=uq, zero_point=np.uint8(128), scale=np.float32(0.5), axis=1)
    np.testing.assert_allclose(out, (uq.astype(np.float32) - 128) * 0.5)


def test_sparse_to_dense_matches_coremltools():
    from coremltools.converters.mil.mil.ops.defs.iOS16.constexpr_ops import constexpr_sparse_to_dense

    dense = RNG.normal(size=(3, 7)).astype(np.float32) * (RNG.random((3, 7)) > 0.6)
    mask = np.packbits((dense != 0).ravel(), bitorder="little")
    nonzero = dense[dense != 0]
    ref = constexpr_sparse_to_dense.decompress(nonzero, mask, np.array(dense.shape, np.uint32))
    out = OPS["constexpr_sparse_to_dense"](nonzero_data=nonzero, mask=mask, shape=np.array(dense.shape, np.uint32))
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(out, dense)


def test_blockwise_shift_scale():
    data = np.arange(8, dtype=np.int8).reshape(2, 4)
    scale = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)  # blocks of 1 x 2
    offset = np.array([[1, 1], [0, 0]], np.int8)
    out = OPS["constexpr_blockwise_shift_scale"](data=data, scale=scale, offset=offset)
    np.testing.assert_allclose(out, [[-1, 0, 2 * 1, 2 * 2], [3 * 4, 3 * 5, 4 * 6, 4 * 7]])
