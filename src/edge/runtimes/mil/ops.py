"""NumPy implementations of the MIL operations found in the Core ML programs edge exports.

Each function takes an op's inputs as keyword arguments (NumPy arrays, Python scalars, strings)
and returns its output(s). Layouts follow the MIL specification (coremltools' op docs): images
are NCHW, convolution weights are ``(C_out, C_in / groups, kH, kW)``, ``pad`` lists
``[top, bottom, left, right]``. Arithmetic is done in float32 (float64 where noted); rounding to
fp16 for fp16 programs is done by the executor on every op's output (see ``executor``). These
are the semantics (and the slow, simple oracle) of the executor's compiled TensorFlow engine,
``compiled``, which lowers each of these ops and is tested against them.

``OPS`` maps each MIL op type to its function. The compile-time ``constexpr_*`` ops that
coremltools.optimize writes (8-bit affine weights, k-means palettes, sparse masks) are decoded
here from their packed representation, independently of coremltools' own decoder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

OPS: dict[str, Callable[..., Any]] = {}


def op(*names: str):
    """Register a function as the implementation of the MIL op type(s) ``names``."""

    def register(fn):
        for name in names:
            OPS[name] = fn
        return fn

    return register


def _f32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Elementwise
# ---------------------------------------------------------------------------------------------

_BINARY = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "real_div": np.divide,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "pow": np.power,
}


def _binary(fn):
    def run(x, y):
        x, y = np.asarray(x), np.asarray(y)
        if x.dtype.kind == "f" or y.dtype.kind == "f":
            return fn(_f32(x), _f32(y))
        return fn(x, y)

    return run


for _name, _fn in _BINARY.items():
    OPS[_name] = _binary(_fn)


@op("floor_div")
def floor_div(x, y):
    return np.floor_divide(x, y)


@op("relu")
def relu(x):
    return np.maximum(_f32(x), 0.0)


@op("relu6")
def relu6(x):
    return np.clip(_f32(x), 0.0, 6.0)


@op("clip")
def clip(x, alpha, beta):
    return np.clip(_f32(x), np.float32(alpha), np.float32(beta))


@op("sigmoid")
def sigmoid(x):
    x = _f32(x)
    # exp(-|x|) never overflows; the two branches are the same function.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(np.float32)


@op("sigmoid_hard")
def sigmoid_hard(x, alpha=0.2, beta=0.5):
    return np.clip(np.float32(alpha) * _f32(x) + np.float32(beta), 0.0, 1.0)


@op("silu")
def silu(x):
    x = _f32(x)
    return x * sigmoid(x)


@op("tanh")
def tanh(x):
    return np.tanh(_f32(x))


@op("exp")
def exp(x):
    return np.exp(_f32(x))


@op("sqrt")
def sqrt(x):
    return np.sqrt(_f32(x))


@op("rsqrt")
def rsqrt(x, epsilon=1e-12):
    return 1.0 / np.sqrt(_f32(x) + np.float32(epsilon))


@op("leaky_relu")
def leaky_relu(x, alpha=0.01):
    x = _f32(x)
    return np.where(x >= 0, x, np.float32(alpha) * x)


@op("gelu")
def gelu(x, mode="EXACT"):
    from math import erf, pi
    from math import sqrt as msqrt

    x = _f32(x)
    if mode == "EXACT":
        return (0.5 * x * (1.0 + np.vectorize(erf)(x / msqrt(2.0)))).astype(np.float32)
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1.0 + np.tanh(np.float32(msqrt(2 / pi)) * (x + 0.044715 * x**3)))
    return x * sigmoid(np.float32(1.702) * x)  # SIGMOID_APPROXIMATION


@op("cast")
def cast(x, dtype):
    targets = {"fp16": np.float32, "fp32": np.float32, "fp64": np.float32,
               "int32": np.int32, "int16": np.int16, "int8": np.int8, "uint8": np.uint8,
               "bool": np.bool_}
    if dtype not in targets:
        raise ValueError(f"cast to {dtype!r} is not supported")
    x = np.asarray(x)
    if np.dtype(targets[dtype]).kind in "iu" and x.dtype.kind == "f":
        x = np.trunc(x)  # MIL casts float -> int toward zero
    # fp16 rounding of the result is applied by the executor from the output's declared dtype.
    return x.astype(targets[dtype])


# ---------------------------------------------------------------------------------------------
# Linear algebra and reductions
# ---------------------------------------------------------------------------------------------


@op("linear")
def linear(x, weight, bias=None):
    y = _f32(x) @ _f32(weight).T
    return y if bias is None else y + _f32(bias)


@op("matmul")
def matmul(x, y, transpose_x=False, transpose_y=False):
    x, y = _f32(x), _f32(y)
    if transpose_x:
        x = np.swapaxes(x, -1, -2)
    if transpose_y:
        y = np.swapaxes(y, -1, -2)
    return x @ y


def _axes(axes, rank):
    return None if axes is None else tuple(int(a) % rank for a in np.atleast_1d(axes))


@op("reduce_mean")
def reduce_mean(x, axes=None, keep_dims=False):
    x = _f32(x)
    # float64 accumulation: a global average over 7x7x1280 values should not drift in fp32.
    return np.mean(x, axis=_axes(axes, x.ndim), keepdims=bool(keep_dims), dtype=np.float64).astype(
        np.float32
    )


@op("reduce_sum")
def reduce_sum(x, axes=None, keep_dims=False):
    x = _f32(x)
    return np.sum(x, axis=_axes(axes, x.ndim), keepdims=bool(keep_dims), dtype=np.float64).astype(
        np.float32
    )


@op("reduce_max")
def reduce_max(x, axes=None, keep_dims=False):
    x = np.asarray(x)
    return np.max(x, axis=_axes(axes, x.ndim), keepdims=bool(keep_dims))


@op("softmax")
def softmax(x, axis=-1):
    x = _f32(x)
    e = np.exp(x - np.max(x, axis=int(axis), keepdims=True))
    return e / np.sum(e, axis=int(axis), keepdims=True)


@op("batch_norm")
def batch_norm(x, mean, variance, gamma=None, beta=None, epsilon=1e-5):
    x = _f32(x)
    shape = (1, -1) + (1,) * (x.ndim - 2)  # channel axis 1
    inv = 1.0 / np.sqrt(_f32(variance) + np.float32(epsilon))
    if gamma is not None:
        inv = inv * _f32(gamma)
    y = (x - _f32(mean).reshape(shape)) * inv.reshape(shape)
    return y if beta is None else y + _f32(beta).reshape(shape)


# ---------------------------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------------------------


@op("transpose")
def transpose(x, perm):
    return np.transpose(x, [int(p) for p in perm])


@op("reshape")
def reshape(x, shape):
    x = np.asarray(x)
    shape = [int(s) for s in np.atleast_1d(shape)]
    if len(shape) == x.ndim:  # MIL: 0 keeps the corresponding input dimension
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    if shape and shape[0] == 1 and x.shape and x.shape[0] != 1:
        # The program was converted for batch 1; the executor runs a batch on the leading axis.
        shape[0] = x.shape[0]
    return x.reshape(shape)


@op("squeeze")
def squeeze(x, axes=None):
    x = np.asarray(x)
    return np.squeeze(x, axis=_axes(axes, x.ndim))


@op("expand_dims")
def expand_dims(x, axes):
    x = np.asarray(x)
    out_rank = x.ndim + len(np.atleast_1d(axes))
    return np.expand_dims(x, axis=tuple(int(a) % out_rank for a in np.atleast_1d(axes)))


@op("concat")
def concat(values, axis, interleave=False):
    arrays = [np.asarray(v) for v in values]
    if interleave:
        stacked = np.stack(arrays, axis=int(axis) + 1)
        shape = list(arrays[0].shape)
        shape[int(axis)] *= len(arrays)
        return stacked.reshape(shape)
    return np.concatenate(arrays, axis=int(axis))


@op("pad")
def pad(x, pad, mode="constant", constant_val=0.0):
    x = np.asarray(x)
    pad = [int(p) for p in np.atleast_1d(pad)]
    pairs = [(0, 0)] * (x.ndim - len(pad) // 2) + [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)]
    if mode == "constant":
        return np.pad(x, pairs, mode="constant", constant_values=constant_val)
    if mode == "reflect":
        return np.pad(x, pairs, mode="reflect")
    if mode == "replicate":
        return np.pad(x, pairs, mode="edge")
    raise ValueError(f"pad mode {mode!r} is not supported")


@op("slice_by_index")
def slice_by_index(x, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None):
    x = np.asarray(x)
    index = []
    for i in range(x.ndim):
        b = None if begin_mask is not None and begin_mask[i] else int(begin[i])
        e = None if end_mask is not None and end_mask[i] else int(end[i])
        s = 1 if stride is None else int(stride[i])
        index.append(int(begin[i]) if squeeze_mask is not None and squeeze_mask[i] else slice(b, e, s))
    return x[tuple(index)]


# ---------------------------------------------------------------------------------------------
# Convolution and pooling (NCHW)
# ---------------------------------------------------------------------------------------------


def spatial_padding(pad_type, pad, in_size, kernel, strides, dilations) -> list[tuple[int, int]]:
    """(before, after) padding per spatial dim, as MIL defines each ``pad_type``."""
    if pad_type == "valid":
        return [(0, 0)] * len(in_size)
    if pad_type == "custom":
        pad = [int(p) for p in pad]
        return [(pad[2 * i], pad[2 * i + 1]) for i in range(len(in_size))]
    if pad_type not in ("same", "same_lower"):
        raise ValueError(f"pad_type {pad_type!r} is not supported")
    pairs = []
    for n, k, s, d in zip(in_size, kernel, strides, dilations):
        out = -(-n // s)  # ceil(n / s)
        total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
        small, big = total // 2, total - total // 2
        pairs.append((small, big) if pad_type == "same" else (big, small))
    return pairs


def _windows(x, kernel, strides, dilations, out_hw):
    """View (N, C, kH, kW, H_out, W_out) of the padded NCHW ``x``; no copy."""
    n, c, _, _ = x.shape
    sn, sc, sh, sw = x.strides
    return as_strided(
        x,
        shape=(n, c, kernel[0], kernel[1], out_hw[0], out_hw[1]),
        strides=(sn, sc, sh * dilations[0], sw * dilations[1], sh * strides[0], sw * strides[1]),
        writeable=False,
    )


def _out_size(padded, kernel, stride, dilation, ceil_mode=False):
    span = (kernel - 1) * dilation + 1
    if ceil_mode:
        return -(-(padded - span) // stride) + 1
    return (padded - span) // stride + 1


def window_geometry(in_hw, kernel, strides, dilations, pad_type, pad, ceil_mode=False):
    """(padding pairs, strides, dilations, output size) of a 2-D window op on an ``in_hw`` input.

    The pairs include, for ``ceil_mode``, the extra cells the last window may read (they never
    win a max / count in an average). Shared with the compiled engine, so both pad alike.
    """
    strides = [1, 1] if strides is None else [int(s) for s in strides]
    dilations = [1, 1] if dilations is None else [int(d) for d in dilations]
    pairs = spatial_padding(pad_type, pad, in_hw, kernel, strides, dilations)
    padded_hw = [in_hw[i] + sum(pairs[i]) for i in range(2)]
    out_hw = [_out_size(padded_hw[i], kernel[i], strides[i], dilations[i], ceil_mode) for i in range(2)]
    if ceil_mode:
        extra = [
            max((out_hw[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - padded_hw[i], 0)
            for i in range(2)
        ]
        pairs = [(pairs[i][0], pairs[i][1] + extra[i]) for i in range(2)]
    return pairs, strides, dilations, out_hw


def _prepare(x, kernel, strides, dilations, pad_type, pad, fill=0.0, ceil_mode=False):
    x = _f32(x)
    pairs, strides, dilations, out_hw = window_geometry(x.shape[2:], kernel, strides, dilations, pad_type, pad, ceil_mode)
    if any(sum(p) for p in pairs):
        x = np.pad(x, [(0, 0), (0, 0), *pairs], constant_values=fill)
    return x, pairs, strides, dilations, out_hw


@op("conv")
def conv(x, weight, bias=None, strides=None, pad_type="valid", pad=None, dilations=None, groups=1):
    """2-D convolution (cross-correlation, like every deep learning framework)."""
    weight = _f32(weight)
    if weight.ndim != 4:
        raise ValueError(f"only 2-D convolution is supported (weight rank {weight.ndim})")
    groups = int(groups)
    kernel = weight.shape[2:]
    x, _, strides, dilations, out_hw = _prepare(x, kernel, strides, dilations, pad_type, pad)
    c_in = x.shape[1]
    if groups == 1:
        y = _dense_conv(x, weight, strides, dilations, out_hw)
    elif groups == c_in and weight.shape[1] == 1:
        y = _depthwise_conv(x, weight, strides, dilations, out_hw)
    else:
        per_in, per_out = c_in // groups, weight.shape[0] // groups
        y = np.concatenate(
            [
                _dense_conv(
                    x[:, g * per_in : (g + 1) * per_in], weight[g * per_out : (g + 1) * per_out],
                    strides, dilations, out_hw,
                )
                for g in range(groups)
            ],
            axis=1,
        )
    if bias is not None:
        y += _f32(bias).reshape(1, -1, 1, 1)
    return y


def _dense_conv(x, weight, strides, dilations, out_hw):
    n = x.shape[0]
    c_out, c_in, kh, kw = weight.shape
    if (kh, kw) == (1, 1):
        xs = x[:, :, :: strides[0], :: strides[1]][:, :, : out_hw[0], : out_hw[1]]
        y = np.matmul(weight.reshape(c_out, c_in), xs.reshape(n, c_in, -1))
        return y.reshape(n, c_out, *out_hw)
    # im2col: (N, C*kH*kW, H_out*W_out) then one matrix product per image.
    cols = _windows(x, (kh, kw), strides, dilations, out_hw).reshape(n, c_in * kh * kw, -1)
    y = np.matmul(weight.reshape(c_out, -1), cols)
    return y.reshape(n, c_out, *out_hw)


def _depthwise_conv(x, weight, strides, dilations, out_hw):
    """groups == C_in: each output channel sees one input channel (channel multiplier allowed)."""
    c_in = x.shape[1]
    mult = weight.shape[0] // c_in
    if mult != 1:
        x = np.repeat(x, mult, axis=1)  # output channel o reads input channel o // mult
    kh, kw = weight.shape[2:]
    y = np.zeros((x.shape[0], x.shape[1], *out_hw), dtype=np.float32)
    for i in range(kh):
        for j in range(kw):
            top, left = i * dilations[0], j * dilations[1]
            tap = x[
                :, :,
                top : top + (out_hw[0] - 1) * strides[0] + 1 : strides[0],
                left : left + (out_hw[1] - 1) * strides[1] + 1 : strides[1],
            ]
            y += tap * weight[:, 0, i, j].reshape(1, -1, 1, 1)
    return y


@op("max_pool")
def max_pool(x, kernel_sizes, strides=None, pad_type="valid", pad=None, ceil_mode=False):
    kernel = [int(k) for k in kernel_sizes]
    xp, _, strides, _, out_hw = _prepare(x, kernel, strides, None, pad_type, pad, -np.inf, ceil_mode)
    win = _windows(xp, kernel, strides, (1, 1), out_hw)
    return win.max(axis=(2, 3))


@op("avg_pool")
def avg_pool(x, kernel_sizes, strides=None, pad_type="valid", pad=None,
             exclude_padding_from_average=False, ceil_mode=False):
    kernel = [int(k) for k in kernel_sizes]
    x = _f32(x)
    xp, pairs, strides, _, out_hw = _prepare(x, kernel, strides, None, pad_type, pad, 0.0, ceil_mode)
    sums = _windows(xp, kernel, strides, (1, 1), out_hw).sum(axis=(2, 3), dtype=np.float64)
    if exclude_padding_from_average:  # divide by the number of real (unpadded) cells
        ones = np.pad(np.ones((1, 1, *x.shape[2:]), np.float32), [(0, 0), (0, 0), *pairs])
        counts = _windows(ones, kernel, strides, (1, 1), out_hw).sum(axis=(2, 3))
        return (sums / counts).astype(np.float32)
    if ceil_mode:
        raise ValueError("avg_pool with ceil_mode and padding counted in the average is not supported")
    return (sums / (kernel[0] * kernel[1])).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Classifier output
# ---------------------------------------------------------------------------------------------


@op("classify")
def classify(probabilities, classes):
    """Core ML's classifier head: (label of the top class, {label: probability}).

    For a batch (N > 1 rows) both outputs are lists with one entry per image.
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    labels = list(classes)
    rows = probs.reshape(-1, probs.shape[-1]) if probs.ndim else probs.reshape(1, 1)
    if rows.shape[-1] != len(labels):
        raise ValueError(f"classify has {len(labels)} classes for {rows.shape[-1]} probabilities")
    top = [labels[int(i)] for i in np.argmax(rows, axis=1)]
    dicts = [dict(zip(labels, row.tolist())) for row in rows]
    return (top[0], dicts[0]) if len(rows) == 1 else (top, dicts)


# ---------------------------------------------------------------------------------------------
# Compressed weights (coremltools.optimize), decoded from their packed form
# ---------------------------------------------------------------------------------------------


def unpack_bits(packed: np.ndarray, nbits: int, count: int) -> np.ndarray:
    """Unsigned ``nbits`` fields packed LSB-first across bytes (the MIL packing) -> uint array."""
    bits = np.unpackbits(np.asarray(packed, dtype=np.uint8), bitorder="little")[: count * nbits]
    weights = (1 << np.arange(nbits, dtype=np.uint32)).astype(np.uint32)
    return (bits.reshape(count, nbits).astype(np.uint32) * weights).sum(axis=1)


def _broadcast_on_axis(param, rank, axis):
    param = np.asarray(param)
    if param.ndim == 0 or param.size == 1:
        return param.reshape(())
    shape = [1] * rank
    shape[int(axis)] = -1
    return param.reshape(shape)


@op("constexpr_affine_dequantize")
def constexpr_affine_dequantize(quantized_data, zero_point, scale, axis):
    q = np.asarray(quantized_data)
    zp = _broadcast_on_axis(zero_point, q.ndim, axis).astype(np.float32)
    sc = _broadcast_on_axis(scale, q.ndim, axis).astype(np.float32)
    return (q.astype(np.float32) - zp) * sc


@op("constexpr_cast")
def constexpr_cast(source_val, output_dtype):
    return _f32(source_val)


@op("constexpr_lut_to_dense")
def constexpr_lut_to_dense(indices, lut, shape=None, vector_axis=None):
    lut = np.asarray(lut)
    if shape is not None:  # iOS16: one flat palette, packed indices
        shape = [int(s) for s in shape]
        nbits = int(np.log2(lut.size))
        idx = unpack_bits(indices, nbits, int(np.prod(shape)))
        return lut[idx].reshape(shape)
    # iOS18: indices already unpacked (N-D), lut (*blocks, palette, vector) per block.
    indices = np.asarray(indices)
    if vector_axis is not None or lut.shape[-1] != 1:
        raise ValueError("vector palettization (constexpr_lut_to_dense vector_axis) is not supported")
    rank = indices.ndim
    blocks = lut.shape[:rank]
    out = np.empty(indices.shape, dtype=lut.dtype)
    block = [indices.shape[i] // blocks[i] for i in range(rank)]
    for b in np.ndindex(*blocks):
        sl = tuple(slice(b[i] * block[i], (b[i] + 1) * block[i]) for i in range(rank))
        out[sl] = lut[b][..., 0][indices[sl]]
    return out


@op("constexpr_sparse_to_dense")
def constexpr_sparse_to_dense(nonzero_data, mask, shape=None):
    nonzero_data = np.asarray(nonzero_data)
    if shape is None:  # iOS18: mask is an unpacked N-D tensor
        mask = np.asarray(mask).astype(bool)
        out = np.zeros(mask.shape, dtype=nonzero_data.dtype)
        out[mask] = nonzero_data
        return out
    shape = [int(s) for s in shape]
    bits = np.unpackbits(np.asarray(mask, dtype=np.uint8), bitorder="little")[: int(np.prod(shape))]
    out = np.zeros(bits.size, dtype=nonzero_data.dtype)
    out[bits.astype(bool)] = nonzero_data
    return out.reshape(shape)


@op("constexpr_blockwise_shift_scale")
def constexpr_blockwise_shift_scale(data, scale, offset=None):
    """iOS18 blockwise dequantization: (data - offset) * scale, each block sharing one scale."""
    data = np.asarray(data).astype(np.float32)
    scale = _f32(scale)
    reps = [d // s for d, s in zip(data.shape, scale.shape)]
    out = data
    if offset is not None:
        out = out - _expand_blocks(_f32(offset), reps)
    return out * _expand_blocks(scale, reps)


def _expand_blocks(param, reps):
    for axis, r in enumerate(reps):
        if r != 1:
            param = np.repeat(param, r, axis=axis)
    return param
