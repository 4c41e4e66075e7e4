"""The MIL program lowered to TensorFlow ops and run as one compiled ``tf.function``.

The fast engine of :class:`edge.runtimes.mil.executor.MilExecutor`: the same loaded program, the
same folded constants (``const`` values and the ``constexpr_*`` weight decoders, decoded once at
load by the NumPy code in ``ops``), the same semantics as the NumPy ops -- but each op becomes
TensorFlow ops in one graph, traced once per package, so a batch runs at TensorFlow speed.

Layout. MIL is NCHW; TensorFlow's CPU convolutions and pools are NHWC. A rank-4 value is kept
in whichever layout it was produced in: convolutions, pools, batch norm, elementwise ops,
reductions, softmax, concat, pad and slices work on NHWC storage directly (their axes and
constants are permuted at trace time); ops that depend on element order (reshape, squeeze,
matmul, ...) get the NCHW view, through one ``transpose`` where the value was NHWC. The image
input is fed as NHWC, so a convolutional network runs without any transpose.

fp16 programs. Every value the program declares fp16 is rounded to fp16 after the op that
produces it (``cast`` to float16 and back: round-to-nearest-even, overflow to inf, like NumPy's
``astype``), exactly where the NumPy executor rounds. One refinement keeps that cheap without
moving a rounding point: an op that only selects or compares values (relu, relu6, clip, max,
max pool, pad, reshape, transpose, concat, slice, ...) commutes with rounding -- rounding is
monotone and idempotent, so ``round(f(round(x))) == round(f(x))`` for such ``f`` -- and reads its
input before rounding; the rounding is applied once, to its output. So ``conv -> relu6`` is
``round(relu6(conv))``, which TensorFlow fuses into one kernel, and is bit-identical to
``round(relu6(round(conv)))``. Arithmetic (conv, add, mul, sigmoid, ...) is done in float32 on
rounded inputs, as in NumPy. Elementwise arithmetic gives NumPy's bits; sums over many terms
(convolutions, matmul, pools) may be accumulated in another order, and transcendental functions
(exp, tanh, sigmoid) are TensorFlow's kernels, not NumPy's: their fp32 results can differ in the
last bits and, rarely, round to the neighbouring fp16 value. TensorFlow's CPU kernels also flush
fp32 subnormals (below 1.2e-38) to zero, which NumPy keeps.

An op with no TensorFlow lowering but a NumPy implementation runs inside the graph through
``tf.numpy_function`` (slow, but exact); ``classify`` (dictionaries of labels) runs on the host
after the graph. Ops neither engine knows are refused at load by the executor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edge.runtimes.mil import ops as np_ops

TO_NHWC = (0, 2, 3, 1)
TO_NCHW = (0, 3, 1, 2)
HOST_OPS = frozenset({"classify"})  # run by NumPy on the graph's outputs
# Ops that only select, compare or move values: round(f(round(x))) == round(f(x)).
ROUNDING_COMMUTES = frozenset({
    "relu", "relu6", "clip", "maximum", "minimum", "reduce_max", "max_pool", "pad", "transpose",
    "reshape", "squeeze", "expand_dims", "concat", "slice_by_index", "cast",
})

LOWERINGS: dict[str, Callable[..., Any]] = {}


def lowering(*names: str):
    """Register ``fn(ctx, **inputs) -> Value | constant`` as the TensorFlow lowering of ``names``."""

    def register(fn):
        for name in names:
            LOWERINGS[name] = fn
        return fn

    return register


def _tf():
    from edge.keras_setup import tf

    return tf


# ---------------------------------------------------------------------------------------------
# Values during tracing
# ---------------------------------------------------------------------------------------------


class Value:
    """A traced tensor: its storage (NCHW as MIL says, or NHWC for rank 4) and fp16 state.

    ``pending``: the MIL value is ``round_fp16(raw)``; the rounding is materialized once, on
    first use by an op that does not commute with it.
    """

    __slots__ = ("_rounded", "nhwc", "pending", "raw")

    def __init__(self, raw, nhwc: bool = False, pending: bool = False):
        self.raw = raw
        self.nhwc = bool(nhwc)
        self.pending = bool(pending)
        self._rounded = None

    @property
    def rank(self) -> int:
        return self.raw.shape.rank

    def rounded(self):
        """The MIL value, in this value's storage layout."""
        if not self.pending:
            return self.raw
        if self._rounded is None:
            tf = _tf()
            self._rounded = tf.cast(tf.cast(self.raw, tf.float16), tf.float32)
        return self._rounded

    def storage(self, exact: bool):
        return self.rounded() if exact else self.raw


def _is_value(x) -> bool:
    return isinstance(x, Value)


def _round16(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.asarray(x, dtype=np.float32).astype(np.float16).astype(np.float32)


class Context:
    """What a lowering may ask: does the op commute with rounding (read raw inputs)?"""

    def __init__(self, raw_inputs: bool):
        self.raw_inputs = raw_inputs

    # -- reading inputs in a layout --------------------------------------------------------

    def nchw(self, v):
        """The MIL (NCHW) view of ``v`` as a tensor (constants become tf constants)."""
        tf = _tf()
        if not _is_value(v):
            return tf.constant(_as_array(v))
        t = v.storage(not self.raw_inputs)
        return tf.transpose(t, TO_NCHW) if v.nhwc else t

    def nhwc(self, v, rank4: bool = True):
        """``v`` in NHWC storage. Lower-rank values are broadcast to rank 4 first (MIL aligns
        trailing axes); constants are permuted here at trace time."""
        tf = _tf()
        if not _is_value(v):
            a = _as_array(v)
            if a.ndim > 4:
                raise ValueError("cannot broadcast a rank > 4 constant onto an NHWC value")
            return tf.constant(np.ascontiguousarray(a.reshape((1,) * (4 - a.ndim) + a.shape).transpose(TO_NHWC)))
        t = v.storage(not self.raw_inputs)
        if v.nhwc:
            return t
        for _ in range(4 - v.rank):
            t = tf.expand_dims(t, 0)
        return tf.transpose(t, TO_NHWC)

    def raw(self, v):
        """A constant as a tensor or a value in its own storage layout."""
        tf = _tf()
        if not _is_value(v):
            return tf.constant(_as_array(v))
        return v.storage(not self.raw_inputs)


def _as_array(v) -> np.ndarray:
    a = np.asarray(v)
    if a.dtype == np.float64 or a.dtype == np.float16:
        a = a.astype(np.float32)
    return a


def _float(t):
    tf = _tf()
    return t if t.dtype == tf.float32 else tf.cast(t, tf.float32)


# ---------------------------------------------------------------------------------------------
# Elementwise
# ---------------------------------------------------------------------------------------------


def _binary(tf_fn_name: str):
    def lower(ctx: Context, x, y):
        tf = _tf()
        fn = {"add": tf.add, "sub": tf.subtract, "mul": tf.multiply, "real_div": tf.math.truediv,
              "maximum": tf.maximum, "minimum": tf.minimum, "pow": tf.pow, "floor_div": tf.math.floordiv}[tf_fn_name]
        nhwc = any(_is_value(v) and v.nhwc for v in (x, y))
        if nhwc and all(_is_value(v) or np.ndim(v) <= 4 for v in (x, y)) and all(
            not _is_value(v) or v.rank <= 4 for v in (x, y)
        ):
            a, b = ctx.nhwc(x), ctx.nhwc(y)
        else:
            nhwc = False
            a, b = ctx.nchw(x), ctx.nchw(y)
        if a.dtype.is_floating or b.dtype.is_floating:
            a, b = _float(a), _float(b)
        elif a.dtype != b.dtype:
            b = tf.cast(b, a.dtype)
        return Value(fn(a, b), nhwc)

    return lower


for _name in ("add", "sub", "mul", "real_div", "maximum", "minimum", "pow", "floor_div"):
    LOWERINGS[_name] = _binary(_name)


@lowering("relu")
def _relu(ctx, x):
    return Value(_tf().nn.relu(_float(ctx.raw(x))), x.nhwc)


@lowering("relu6")
def _relu6(ctx, x):
    return Value(_tf().nn.relu6(_float(ctx.raw(x))), x.nhwc)


@lowering("clip")
def _clip(ctx, x, alpha, beta):
    tf = _tf()
    t = _float(ctx.raw(x))
    if float(alpha) == 0.0 and float(beta) == 6.0:
        return Value(tf.nn.relu6(t), x.nhwc)
    return Value(tf.minimum(tf.maximum(t, np.float32(alpha)), np.float32(beta)), x.nhwc)


def _sigmoid_tf(t):
    # TensorFlow's own logistic kernel: one pass over the tensor. The NumPy op's branch-free form
    # (exp(-|x|), two quotients) takes six passes here -- EfficientNet's swish on every
    # activation made the whole network 2x slower. The two agree within an ulp or two in fp32
    # (a transcendental function, like exp: neither is bit-identical to the other).
    return _tf().math.sigmoid(t)


@lowering("sigmoid")
def _sigmoid(ctx, x):
    return Value(_sigmoid_tf(_float(ctx.raw(x))), x.nhwc)


@lowering("sigmoid_hard")
def _sigmoid_hard(ctx, x, alpha=0.2, beta=0.5):
    tf = _tf()
    t = _float(ctx.raw(x))
    return Value(tf.clip_by_value(np.float32(alpha) * t + np.float32(beta), 0.0, 1.0), x.nhwc)


@lowering("silu")
def _silu(ctx, x):
    t = _float(ctx.raw(x))
    return Value(t * _sigmoid_tf(t), x.nhwc)


@lowering("tanh")
def _tanh(ctx, x):
    return Value(_tf().tanh(_float(ctx.raw(x))), x.nhwc)


@lowering("exp")
def _exp(ctx, x):
    return Value(_tf().exp(_float(ctx.raw(x))), x.nhwc)


@lowering("sqrt")
def _sqrt(ctx, x):
    return Value(_tf().sqrt(_float(ctx.raw(x))), x.nhwc)


@lowering("rsqrt")
def _rsqrt(ctx, x, epsilon=1e-12):
    tf = _tf()
    return Value(1.0 / tf.sqrt(_float(ctx.raw(x)) + np.float32(epsilon)), x.nhwc)


@lowering("leaky_relu")
def _leaky_relu(ctx, x, alpha=0.01):
    tf = _tf()
    t = _float(ctx.raw(x))
    return Value(tf.where(t >= 0, t, np.float32(alpha) * t), x.nhwc)


@lowering("gelu")
def _gelu(ctx, x, mode="EXACT"):
    from math import pi
    from math import sqrt as msqrt

    tf = _tf()
    t = _float(ctx.raw(x))
    if mode == "EXACT":
        # NumPy evaluates erf in float64; so does this (then float32, like the NumPy op).
        t64 = tf.cast(t, tf.float64)
        return Value(tf.cast(0.5 * t64 * (1.0 + tf.math.erf(t64 / msqrt(2.0))), tf.float32), x.nhwc)
    if mode == "TANH_APPROXIMATION":
        return Value(0.5 * t * (1.0 + tf.tanh(np.float32(msqrt(2 / pi)) * (t + 0.044715 * t**3))), x.nhwc)
    return Value(t * _sigmoid_tf(np.float32(1.702) * t), x.nhwc)


@lowering("cast")
def _cast(ctx, x, dtype):
    tf = _tf()
    targets = {"fp16": tf.float32, "fp32": tf.float32, "fp64": tf.float32, "int32": tf.int32, "int16": tf.int16,
               "int8": tf.int8, "uint8": tf.uint8, "bool": tf.bool}
    if dtype not in targets:
        raise ValueError(f"cast to {dtype!r} is not supported")
    t = ctx.raw(x)
    target = targets[dtype]
    # float -> int: TensorFlow's cast truncates toward zero, as MIL's does.
    return Value(tf.cast(t, target), x.nhwc)


# ---------------------------------------------------------------------------------------------
# Linear algebra and reductions
# ---------------------------------------------------------------------------------------------


@lowering("linear")
def _linear(ctx, x, weight, bias=None):
    tf = _tf()
    t = _float(ctx.nchw(x))
    w = np.ascontiguousarray(_as_array(weight).T) if not _is_value(weight) else tf.transpose(ctx.nchw(weight))
    y = tf.matmul(t, w) if t.shape.rank == 2 else tf.tensordot(t, w, axes=1)
    if bias is not None:
        y = y + (ctx.nchw(bias) if _is_value(bias) else _as_array(bias))
    return Value(y)


@lowering("matmul")
def _matmul(ctx, x, y, transpose_x=False, transpose_y=False):
    tf = _tf()
    a, b = _float(ctx.nchw(x)), _float(ctx.nchw(y))
    return Value(tf.linalg.matmul(a, b, transpose_a=bool(transpose_x), transpose_b=bool(transpose_y)))


def _reduce_axes(v: Value, axes):
    rank = v.rank
    logical = list(range(rank)) if axes is None else sorted({int(a) % rank for a in np.atleast_1d(axes)})
    stored = [TO_NHWC.index(a) for a in logical] if v.nhwc else logical
    return logical, stored


def _reduced(ctx, v: Value, axes, keep_dims, reduce, exact: bool):
    tf = _tf()
    logical, stored = _reduce_axes(v, axes)
    t = v.storage(exact)
    out = reduce(t, stored, bool(keep_dims))
    if keep_dims or not v.nhwc:
        return Value(out, v.nhwc and bool(keep_dims))
    # NHWC storage, reduced axes dropped: put the remaining logical axes back in MIL order.
    remaining = [a for a in TO_NHWC if a not in logical]  # logical axis of each stored axis left
    order = sorted(range(len(remaining)), key=lambda i: remaining[i])
    if order != list(range(len(remaining))):
        out = tf.transpose(out, order)
    return Value(out)


def _f64_reduction(fn):
    def reduce(t, axes, keep):
        tf = _tf()
        # float64 accumulation, as the NumPy ops do (a global mean over 7x7x1280 values).
        return tf.cast(fn(tf.cast(t, tf.float64), axis=axes, keepdims=keep), tf.float32)

    return reduce


@lowering("reduce_mean")
def _reduce_mean(ctx, x, axes=None, keep_dims=False):
    return _reduced(ctx, x, axes, keep_dims, _f64_reduction(_tf().reduce_mean), True)


@lowering("reduce_sum")
def _reduce_sum(ctx, x, axes=None, keep_dims=False):
    return _reduced(ctx, x, axes, keep_dims, _f64_reduction(_tf().reduce_sum), True)


@lowering("reduce_max")
def _reduce_max(ctx, x, axes=None, keep_dims=False):
    tf = _tf()
    return _reduced(ctx, x, axes, keep_dims, lambda t, a, k: tf.reduce_max(t, axis=a, keepdims=k),
                    not ctx.raw_inputs)


@lowering("softmax")
def _softmax(ctx, x, axis=-1):
    tf = _tf()
    axis = int(axis) % x.rank
    if x.nhwc:
        axis = TO_NHWC.index(axis)
    t = _float(ctx.raw(x))
    e = tf.exp(t - tf.reduce_max(t, axis=axis, keepdims=True))
    return Value(e / tf.reduce_sum(e, axis=axis, keepdims=True), x.nhwc)


@lowering("batch_norm")
def _batch_norm(ctx, x, mean, variance, gamma=None, beta=None, epsilon=1e-5):
    tf = _tf()
    t = _float(ctx.raw(x))
    rank = x.rank
    if x.nhwc:
        shape = (1, 1, 1, -1)
    else:
        shape = (1, -1) + (1,) * (rank - 2)

    def param(p):
        return tf.reshape(_float(ctx.nchw(p)), shape) if _is_value(p) else _as_array(p).astype(np.float32).reshape(shape)

    if not any(_is_value(p) for p in (mean, variance, gamma, beta)):
        # Same float32 NumPy arithmetic as the NumPy op, folded at trace time.
        inv = np.float32(1.0) / np.sqrt(_as_array(variance) + np.float32(epsilon))
        if gamma is not None:
            inv = inv * _as_array(gamma)
        y = (t - param(mean)) * param(inv)
        return Value(y if beta is None else y + param(beta), x.nhwc)
    inv = 1.0 / tf.sqrt(param(variance) + np.float32(epsilon))
    if gamma is not None:
        inv = inv * param(gamma)
    y = (t - param(mean)) * inv
    return Value(y if beta is None else y + param(beta), x.nhwc)


# ---------------------------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------------------------


@lowering("transpose")
def _transpose(ctx, x, perm):
    tf = _tf()
    perm = [int(p) % x.rank for p in np.atleast_1d(perm)]
    t = ctx.raw(x)
    if x.nhwc:  # logical = transpose(stored, TO_NCHW); out = transpose(logical, perm)
        perm = [TO_NCHW[p] for p in perm]
    return Value(t if perm == list(range(len(perm))) else tf.transpose(t, perm))


@lowering("reshape")
def _reshape(ctx, x, shape):
    tf = _tf()
    t = ctx.nchw(x)
    shape = [int(s) for s in np.atleast_1d(shape)]
    static = t.shape.as_list()
    dims: list = list(shape)
    if len(shape) == len(static):  # MIL: 0 keeps the corresponding input dimension
        dims = [(static[i] if static[i] is not None else tf.shape(t)[i]) if s == 0 else s for i, s in enumerate(shape)]
    if shape and shape[0] == 1 and static:
        # The program was converted for batch 1; the batch runs on the leading axis.
        dims[0] = static[0] if static[0] is not None else tf.shape(t)[0]
    if all(isinstance(d, int) for d in dims):
        return Value(tf.reshape(t, dims))
    return Value(tf.reshape(t, tf.stack([tf.constant(d, tf.int32) if isinstance(d, int) else d for d in dims])))


@lowering("squeeze")
def _squeeze(ctx, x, axes=None):
    tf = _tf()
    t = ctx.nchw(x)
    if axes is None:
        return Value(tf.squeeze(t))
    return Value(tf.squeeze(t, axis=[int(a) % x.rank for a in np.atleast_1d(axes)]))


@lowering("expand_dims")
def _expand_dims(ctx, x, axes):
    tf = _tf()
    t = ctx.nchw(x)
    axes = np.atleast_1d(axes)
    out_rank = x.rank + len(axes)
    for a in sorted(int(a) % out_rank for a in axes):
        t = tf.expand_dims(t, a)
    return Value(t)


@lowering("concat")
def _concat(ctx, values, axis, interleave=False):
    tf = _tf()
    tensors = [v for v in values if _is_value(v)]
    rank = tensors[0].rank if tensors else np.ndim(values[0])
    axis = int(axis) % rank
    if interleave:
        parts = [ctx.nchw(v) for v in values]
        stacked = tf.stack(parts, axis=axis + 1)
        shape = tf.shape(parts[0])
        new_shape = tf.tensor_scatter_nd_update(shape, [[axis]], [shape[axis] * len(parts)])
        return Value(tf.reshape(stacked, new_shape))
    if rank == 4 and any(v.nhwc for v in tensors):
        return Value(tf.concat([ctx.nhwc(v) for v in values], axis=TO_NHWC.index(axis)), True)
    return Value(tf.concat([ctx.nchw(v) for v in values], axis=axis))


@lowering("pad")
def _pad(ctx, x, pad, mode="constant", constant_val=0.0):
    tf = _tf()
    pad = [int(p) for p in np.atleast_1d(pad)]
    rank = x.rank
    pairs = [(0, 0)] * (rank - len(pad) // 2) + [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)]
    if x.nhwc:
        pairs = [pairs[a] for a in TO_NHWC]
    t = ctx.raw(x)
    if mode == "constant":
        value = np.asarray(constant_val).astype(t.dtype.as_numpy_dtype).item()
        return Value(tf.pad(t, pairs, mode="CONSTANT", constant_values=value), x.nhwc)
    if mode == "reflect":
        return Value(tf.pad(t, pairs, mode="REFLECT"), x.nhwc)
    if mode == "replicate":  # edge padding: gather with clamped indices, axis by axis
        for axis, (before, after) in enumerate(pairs):
            if before or after:
                n = t.shape[axis]
                idx = np.clip(np.arange(-before, n + after), 0, n - 1).astype(np.int32)
                t = tf.gather(t, idx, axis=axis)
        return Value(t, x.nhwc)
    raise ValueError(f"pad mode {mode!r} is not supported")


@lowering("slice_by_index")
def _slice_by_index(ctx, x, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None):
    squeezes = squeeze_mask is not None and any(bool(s) for s in squeeze_mask)
    index = []
    for i in range(x.rank):
        b = None if begin_mask is not None and begin_mask[i] else int(begin[i])
        e = None if end_mask is not None and end_mask[i] else int(end[i])
        s = 1 if stride is None else int(stride[i])
        index.append(int(begin[i]) if squeeze_mask is not None and squeeze_mask[i] else slice(b, e, s))
    if x.nhwc and not squeezes:
        return Value(ctx.raw(x)[tuple(index[a] for a in TO_NHWC)], True)
    return Value(ctx.nchw(x)[tuple(index)])


# ---------------------------------------------------------------------------------------------
# Convolution and pooling (NHWC inside)
# ---------------------------------------------------------------------------------------------


def _tf_padding(pairs, in_hw, kernel, strides, dilations):
    """'VALID', 'SAME' (when TensorFlow's SAME pads exactly ``pairs``) or None (explicit)."""
    if all(p == (0, 0) for p in pairs):
        return "VALID"
    if pairs == np_ops.spatial_padding("same", None, in_hw, kernel, strides, dilations):
        return "SAME"
    return None


@lowering("conv")
def _conv(ctx, x, weight, bias=None, strides=None, pad_type="valid", pad=None, dilations=None, groups=1):
    tf = _tf()
    t = _float(ctx.nhwc(x))
    in_hw = t.shape.as_list()[1:3]
    groups = int(groups)
    if _is_value(weight):
        w = _float(ctx.nchw(weight))
        w_shape = w.shape.as_list()
    else:
        w = _as_array(weight).astype(np.float32)
        w_shape = list(w.shape)
    if len(w_shape) != 4:
        raise ValueError(f"only 2-D convolution is supported (weight rank {len(w_shape)})")
    kernel = w_shape[2:]
    pairs, strides, dilations, _ = np_ops.window_geometry(in_hw, kernel, strides, dilations, pad_type, pad)
    padding = _tf_padding(pairs, in_hw, kernel, strides, dilations)
    c_in = t.shape.as_list()[3]
    depthwise = groups > 1 and groups == c_in and w_shape[1] == 1

    def hwio(w):  # (C_out, C_in/g, kH, kW) -> (kH, kW, C_in/g, C_out)
        return np.ascontiguousarray(w.transpose(2, 3, 1, 0)) if isinstance(w, np.ndarray) else tf.transpose(w, (2, 3, 1, 0))

    if padding is None or (depthwise and dilations != [1, 1] and padding != "VALID"):
        t = tf.pad(t, [(0, 0), *pairs, (0, 0)])
        padding = "VALID"
    if groups == 1:
        y = tf.nn.conv2d(t, hwio(w), strides=strides, padding=padding, dilations=dilations)
    elif depthwise:
        mult = w_shape[0] // c_in
        # MIL: output channel c*mult+m reads input channel c; TF depthwise filter (kH, kW, C, mult).
        if isinstance(w, np.ndarray):
            dw = np.ascontiguousarray(w.reshape(c_in, mult, *kernel).transpose(2, 3, 0, 1))
        else:
            dw = tf.transpose(tf.reshape(w, [c_in, mult, *kernel]), (2, 3, 0, 1))
        y = tf.nn.depthwise_conv2d(t, dw, strides=[1, *strides, 1], padding=padding, dilations=dilations)
    else:
        per_in, per_out = c_in // groups, w_shape[0] // groups
        y = tf.concat([
            tf.nn.conv2d(t[..., g * per_in:(g + 1) * per_in], hwio(w[g * per_out:(g + 1) * per_out]),
                         strides=strides, padding=padding, dilations=dilations)
            for g in range(groups)
        ], axis=3)
    if bias is not None:
        y = tf.nn.bias_add(y, _float(ctx.nchw(bias)) if _is_value(bias) else _as_array(bias).astype(np.float32))
    return Value(y, True)


@lowering("max_pool")
def _max_pool(ctx, x, kernel_sizes, strides=None, pad_type="valid", pad=None, ceil_mode=False):
    tf = _tf()
    t = ctx.nhwc(x)
    kernel = [int(k) for k in kernel_sizes]
    in_hw = t.shape.as_list()[1:3]
    pairs, strides, _, _ = np_ops.window_geometry(in_hw, kernel, strides, None, pad_type, pad, bool(ceil_mode))
    padding = _tf_padding(pairs, in_hw, kernel, strides, [1, 1])
    if padding is None:
        t = tf.pad(t, [(0, 0), *pairs, (0, 0)], constant_values=-np.inf)
        padding = "VALID"
    return Value(tf.nn.max_pool2d(t, kernel, strides, padding), True)


@lowering("avg_pool")
def _avg_pool(ctx, x, kernel_sizes, strides=None, pad_type="valid", pad=None,
              exclude_padding_from_average=False, ceil_mode=False):
    tf = _tf()
    t = _float(ctx.nhwc(x))
    kernel = [int(k) for k in kernel_sizes]
    in_hw = t.shape.as_list()[1:3]
    pairs, strides, _, out_hw = np_ops.window_geometry(in_hw, kernel, strides, None, pad_type, pad, bool(ceil_mode))
    padding = _tf_padding(pairs, in_hw, kernel, strides, [1, 1])
    if padding == "VALID" or (padding == "SAME" and exclude_padding_from_average):
        # TensorFlow's SAME average divides by the number of real cells, as MIL's exclude does.
        return Value(tf.nn.avg_pool2d(t, kernel, strides, padding), True)
    if ceil_mode and not exclude_padding_from_average:
        raise ValueError("avg_pool with ceil_mode and padding counted in the average is not supported")
    area = kernel[0] * kernel[1]
    if exclude_padding_from_average:
        ones = np.pad(np.ones(in_hw, np.float32), pairs)
        counts = np.lib.stride_tricks.sliding_window_view(ones, kernel)[:: strides[0], :: strides[1]]
        counts = counts.sum(axis=(2, 3))[: out_hw[0], : out_hw[1]]
    else:
        counts = np.full(out_hw, area, np.float32)
    means = tf.nn.avg_pool2d(tf.pad(t, [(0, 0), *pairs, (0, 0)]), kernel, strides, "VALID")
    return Value(means * (area / counts).astype(np.float32)[None, :, :, None], True)


# ---------------------------------------------------------------------------------------------
# The program as one function
# ---------------------------------------------------------------------------------------------


class CompiledProgram:
    """The ``main`` function of a loaded :class:`MilExecutor` as one traced ``tf.function``."""

    def __init__(self, executor):
        tf = _tf()
        self.executor = executor
        self.ops = [o for o in executor.ops if o.op_type != "const" and not o.op_type.startswith("constexpr_")]
        self.graph_ops = [o for o in self.ops if o.op_type not in HOST_OPS]
        self.host_ops = [o for o in self.ops if o.op_type in HOST_OPS]
        self.fallback_ops = sorted({o.op_type for o in self.graph_ops if o.op_type not in LOWERINGS})
        produced_on_host = {id(v) for o in self.host_ops for v in o.outputs}
        needed = [v for o in self.host_ops for arg in o.inputs.values()
                  for v in (arg if isinstance(arg, (list, tuple)) else [arg])]
        needed += [v for v in executor.function.outputs if id(v) not in produced_on_host]
        self._graph_outputs = []
        seen = set()
        for v in needed:
            if id(v) not in seen and id(v) not in produced_on_host:
                seen.add(id(v))
                self._graph_outputs.append(v)
        self._constant_outputs: dict[int, Any] = {}
        image = executor.image_input
        spec = tf.TensorSpec([None, image.height, image.width, 3], tf.float32, name="image")
        # Not jit_compile: XLA's CPU convolutions run MobileNetV2 ~15x slower than TensorFlow's.
        self._fn = tf.function(self._graph, input_signature=[spec], autograph=False)
        self.concrete = self._fn.get_concrete_function()  # traces now: lowering errors surface at load

    # -- tracing ---------------------------------------------------------------------------

    def _graph(self, images):
        tf = _tf()
        ex = self.executor
        x = images  # (N, H, W, 3) pixels: the NHWC storage of MIL's (N, 3, H, W) image
        if ex.image_input.color_space == "BGR":
            x = tf.reverse(x, axis=[3])
        env: dict[int, Any] = dict(ex.constants)
        env[id(ex.function.inputs[ex.image_input.name])] = Value(x, nhwc=True)
        for o in self.graph_ops:
            self._lower(o, env)
        outputs = {}
        for i, v in enumerate(self._graph_outputs):
            value = self._lookup(v, env)
            if _is_value(value):
                t = value.rounded()
                outputs[str(i)] = tf.transpose(t, TO_NCHW) if value.nhwc else t
            else:
                self._constant_outputs[i] = value
        return outputs

    def _lookup(self, var, env):
        if id(var) in env:
            return env[id(var)]
        if var.val is not None:
            return self.executor._const_value(var)
        raise RuntimeError(f"value of '{var.name}' is needed before it is computed")

    def _lower(self, o, env) -> None:
        ex = self.executor
        kwargs = {}
        for name, arg in o.inputs.items():
            if isinstance(arg, (list, tuple)):
                kwargs[name] = [self._lookup(v, env) for v in arg]
            else:
                kwargs[name] = self._lookup(arg, env)
        flat = [a for v in kwargs.values() for a in (v if isinstance(v, list) else [v])]
        fp16_out = [id(v) in ex.fp16_vars for v in o.outputs]
        if not any(_is_value(a) for a in flat):  # constant subgraph: fold with the NumPy op
            ex._run_op(o, env)
            return
        commutes = o.op_type in ROUNDING_COMMUTES and all(fp16_out)
        ctx = Context(raw_inputs=commutes)
        try:
            if o.op_type in LOWERINGS:
                result = LOWERINGS[o.op_type](ctx, **kwargs)
            else:
                result = self._numpy_fallback(o, kwargs)
        except Exception as exc:
            raise RuntimeError(f"MIL op '{o.op_type}' at '{o.name}' failed: {exc}") from exc
        results = result if isinstance(result, tuple) else (result,)
        for var, value, fp16 in zip(o.outputs, results, fp16_out):
            if not _is_value(value):
                value = Value(_tf().constant(_as_array(value)))
            if fp16:
                value = Value(value.raw, value.nhwc, pending=True)
            env[id(var)] = value

    def _numpy_fallback(self, o, kwargs):
        """An op with a NumPy implementation but no lowering: run it inside the graph."""
        from coremltools.converters.mil.mil import types

        tf = _tf()
        names, tensors, consts = [], [], {}
        for name, arg in kwargs.items():
            if isinstance(arg, list) and any(_is_value(a) for a in arg):
                raise ValueError("list inputs holding tensors are not supported by the fallback")
            if _is_value(arg):
                names.append(name)
                tensors.append(Context(False).nchw(arg))
            else:
                consts[name] = arg
        if len(o.outputs) != 1:
            raise ValueError("ops with several outputs are not supported by the fallback")
        out = o.outputs[0]
        np_dtype = types.nptype_from_builtin(out.dtype)
        np_dtype = np.float32 if np.dtype(np_dtype).kind == "f" else np_dtype
        fn = np_ops.OPS[o.op_type]

        def run(*arrays):
            return np.asarray(fn(**consts, **dict(zip(names, arrays))), dtype=np_dtype)

        y = tf.numpy_function(run, tensors, tf.as_dtype(np_dtype), stateful=False)
        y.set_shape([None, *out.shape[1:]] if out.shape else [])
        return Value(y)

    # -- running ---------------------------------------------------------------------------

    def run(self, images: np.ndarray) -> dict[str, Any]:
        """Every program output by name (the classifier's dictionaries built on the host)."""
        tf = _tf()
        ex = self.executor
        result = self.concrete(tf.constant(np.ascontiguousarray(images, dtype=np.float32)))
        env: dict[int, Any] = {}
        for i, v in enumerate(self._graph_outputs):
            env[id(v)] = self._constant_outputs[i] if i in self._constant_outputs else result[str(i)].numpy()
        for o in self.host_ops:
            ex._run_op(o, env)
        return {v.name: env[id(v)] for v in ex.function.outputs}


def run_op(op_type: str, tensors: dict[str, Any], attrs: dict[str, Any] | None = None, *, nhwc: bool = False,
           fp16: bool = False, pending: bool = False) -> np.ndarray:
    """One op's lowering run eagerly, for checking it against the NumPy op (tests, debugging).

    ``tensors``: the inputs that are tensors in the graph (arrays, or lists of arrays), in MIL's
    NCHW layout; ``attrs``: the constant inputs. ``nhwc``: rank-4 tensors are stored NHWC, as
    the graph stores convolution outputs. ``fp16``: the op's output is declared fp16 (rounded);
    with ``pending`` the tensors are given unrounded and the op reads them the way the graph
    does when the op commutes with rounding (see the module doc). Returns the output in NCHW.
    """
    tf = _tf()
    commutes = fp16 and op_type in ROUNDING_COMMUTES

    def wrap(a):
        a = np.asarray(a)
        t = tf.constant(a.astype(np.float32) if a.dtype.kind == "f" else a)
        if nhwc and a.ndim == 4:
            return Value(tf.transpose(t, TO_NHWC), True, pending=pending)
        return Value(t, pending=pending)

    kwargs = {k: [wrap(a) for a in v] if isinstance(v, (list, tuple)) else wrap(v) for k, v in tensors.items()}
    value = LOWERINGS[op_type](Context(raw_inputs=commutes), **kwargs, **(attrs or {}))
    if not _is_value(value):
        value = Value(tf.constant(_as_array(value)))
    if fp16:
        value = Value(value.raw, value.nhwc, pending=True)
    t = value.rounded()
    return (tf.transpose(t, TO_NCHW) if value.nhwc else t).numpy()
