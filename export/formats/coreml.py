"""The Core ML format: an ML program (``.mlpackage``) classifier that takes an image.

Export converts the tf_keras model with coremltools into an ML program whose input is an
``ImageType`` (raw 0..255 pixels from a CVPixelBuffer) and whose outputs are the class label and
the {label: probability} dictionary, so Apple's Vision framework returns labelled observations.

Normalization lives in the ImageType (scale and per-channel bias), applied exactly once: the
model's own ``preprocess`` Rescaling layer is replaced by an identity before conversion, because
Core ML applies the ImageType's scale/bias itself. The ImageType has one scalar scale, so a
normalization with different std per channel cannot be expressed there; then the Rescaling stays
in the graph and the ImageType is left at scale 1, bias 0 (both cases keep raw pixels as input).

Quantize kinds (``QUANTIZE_KINDS``): fp16 (default) and fp32 compute precision, and weight-only
compression with coremltools.optimize on top of fp16: int8 (linear symmetric, per channel),
k-means palettization with 4, 6 or 8 bits per weight, and int4 (block-wise linear, blocks of 32
input channels). The deployment target (``coreml_target``) decides the granularity: iOS 16/17 have
one palette per tensor; iOS 18 has one palette per group of 16 output channels, which keeps small
palettes accurate, and block-wise int4 (iOS 18 only). Compressed weights are decompressed by the
runtime; activations stay fp16.

Xcode shows the model's author (default: the user running edge), license, version and
description, and its Preview tab works through the documented preview-type metadata key.

``load()`` returns a Predictor of ``edge.runtimes.coreml``: coremltools' real ``predict`` on
macOS, edge's MIL reference executor (``edge.runtimes.mil``) everywhere else.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge import contract
from edge.errors import EdgeError, one_line
from edge.fileio import atomic_path, path_size
from edge.formats import COMPRESSED_BUDGET, FP16_BUDGET, FP32_BUDGET, Artifact, Format
from edge.runtimes import coreml as runtime
from edge.spec import ModelSpec

# coremltools prints a tqdm bar per conversion pass; they would drown edge's own progress output.
os.environ.setdefault("TQDM_DISABLE", "1")

# Every quantize kind this format offers, in the order `edge export --help` lists them.
QUANTIZE_KINDS = ("fp16", "fp32", "int8", "palettize4", "palettize6", "palettize8", "int4")
PALETTE_BITS = {"palettize4": 4, "palettize6": 6, "palettize8": 8}
# --coreml-target -> coremltools target. iOS 16 / macOS 13: the first OS whose Core ML runs
# compressed (constexpr) weights, so the widest target edge's kinds work on.
TARGETS = {"ios16": "iOS16", "ios17": "iOS17", "ios18": "iOS18"}
DEFAULT_TARGET = "ios16"
GROUPED_FROM = "ios18"  # per-grouped-channel palettes and block-wise quantization need iOS 18
KIND_MIN_TARGET = {"int4": GROUPED_FROM}
PALETTE_GROUP_SIZE = 16  # output channels sharing one palette (iOS 18)
INT4_BLOCK_SIZE = 32  # input channels sharing one int4 scale (iOS 18)
# Xcode's Preview tab for an image classifier (coremltools' documented model preview keys).
PREVIEW_TYPE_KEY = "com.apple.coreml.model.preview.type"
PREVIEW_TYPE = "imageClassifier"
# coremltools.optimize compresses only weight tensors with at least this many elements.
DEFAULT_WEIGHT_THRESHOLD = 2048
PREPROCESS_LAYER = contract.PREPROCESS_LAYER


def export(
    model,
    spec: ModelSpec,
    quantize: str,
    out_path: Path,
    calibration: np.ndarray | None = None,
    options: Any = None,
) -> Artifact:
    """Convert ``model`` to a Core ML package at ``out_path`` (written atomically).

    ``calibration`` is not needed (compression is weight-only). ``options`` is an
    ``ExportOptions`` (or a plain dict): ``source_run``, ``coreml_target``, ``author``,
    ``license``, ``version``; extra ``weight_threshold`` (smallest weight tensor that is
    compressed, default 2048).
    """
    options = _options_dict(options)
    if quantize not in QUANTIZE_KINDS:
        raise EdgeError(f"Core ML has no quantize kind '{quantize}'; choose one of: {', '.join(QUANTIZE_KINDS)}.")
    start = time.perf_counter()
    mlmodel, image_norm = convert(model, spec, quantize, options)
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        mlmodel.save(str(tmp))
    return Artifact(
        path=out_path,
        format=NAME,
        quantize=quantize,
        size_bytes=path_size(out_path),
        convert_seconds=time.perf_counter() - start,
        details={
            "image_input": image_norm,
            "minimum_deployment_target": TARGETS[_target(options)],
            "compute_precision": "fp32" if quantize == "fp32" else "fp16",
            **({"compression": _compression_name(quantize, _target(options))} if _compressed(quantize) else {}),
        },
    )


def _options_dict(options: Any) -> dict[str, Any]:
    if options is None:
        return {}
    if isinstance(options, dict):
        return dict(options)
    keys = ("source_run", "coreml_target", "author", "license", "version")
    return {**{k: getattr(options, k, "") for k in keys}, **dict(getattr(options, "extra", {}) or {})}


def _target(options: dict[str, Any]) -> str:
    target = str(options.get("coreml_target") or DEFAULT_TARGET).lower()
    if target not in TARGETS:
        raise EdgeError(f"--coreml-target must be one of {', '.join(TARGETS)}, not '{target}'.")
    return target


def check_options(options: Any, kinds: tuple[str, ...]) -> None:
    """Refuse, before any work, a target that cannot hold a requested kind."""
    target = _target(_options_dict(options))
    for kind in kinds:
        needed = KIND_MIN_TARGET.get(kind)
        if needed and list(TARGETS).index(target) < list(TARGETS).index(needed):
            raise EdgeError(f"Core ML {kind} needs --coreml-target {needed} or later (block-wise weights), "
                            f"not {target}.")


def _compressed(quantize: str) -> bool:
    return quantize in PALETTE_BITS or quantize in ("int8", "int4")


def _grouped(target: str) -> bool:
    return list(TARGETS).index(target) >= list(TARGETS).index(GROUPED_FROM)


def _compression_name(quantize: str, target: str) -> str:
    if quantize == "int8":
        return "int8 linear symmetric, per output channel"
    if quantize == "int4":
        return f"int4 linear symmetric, per block of {INT4_BLOCK_SIZE} input channels"
    where = f"per group of {PALETTE_GROUP_SIZE} output channels" if _grouped(target) else "per tensor"
    return f"{PALETTE_BITS[quantize]}-bit k-means palette, {where}"


def convert(model, spec: ModelSpec, quantize: str, options: dict[str, Any]):
    """(MLModel in memory, description of the ImageType's scale/bias) for ``model``."""
    import coremltools as ct

    keras_model, scale, bias = _model_for_image_input(model, spec)
    h, w = spec.input_size
    layout = ct.colorlayout.BGR if spec.normalization.channel_order.upper() == "BGR" else ct.colorlayout.RGB
    image = ct.ImageType(
        name=contract.COREML_INPUT, shape=(1, h, w, 3), scale=scale, bias=list(bias), color_layout=layout
    )
    target_name = _target(options)
    check_options(options, (quantize,))
    target = getattr(ct.target, TARGETS[target_name])
    precision = ct.precision.FLOAT32 if quantize == "fp32" else ct.precision.FLOAT16
    try:
        mlmodel = ct.convert(
            keras_model,
            source="tensorflow",
            convert_to="mlprogram",
            inputs=[image],
            classifier_config=ct.ClassifierConfig(list(spec.labels)),
            compute_precision=precision,
            minimum_deployment_target=target,
        )
    except Exception as exc:
        raise EdgeError(f"Core ML conversion failed: {one_line(exc)}.") from exc
    mlmodel = _rename_outputs(mlmodel)
    if _compressed(quantize):
        mlmodel = _compress(mlmodel, quantize, int(options.get("weight_threshold", DEFAULT_WEIGHT_THRESHOLD)),
                            _grouped(target_name))
    _describe(mlmodel, spec, quantize, options)
    return mlmodel, {"scale": scale, "bias": list(bias), "color_layout": str(layout.name)}


def _model_for_image_input(model, spec: ModelSpec):
    """(model to convert, ImageType scale, ImageType bias): normalization applied exactly once."""
    from edge.keras_setup import keras

    norm = spec.normalization
    names = [layer.name for layer in model.layers]
    if PREPROCESS_LAYER not in names or len(set(norm.scale)) != 1:
        return model, 1.0, (0.0, 0.0, 0.0)  # normalization stays inside the graph
    layer = model.get_layer(PREPROCESS_LAYER)
    _check_preprocess_matches(layer, spec)

    def clone_layer(src):
        if src.name == PREPROCESS_LAYER:
            return keras.layers.Activation("linear", name=PREPROCESS_LAYER)
        return src.__class__.from_config(src.get_config())

    bypassed = keras.models.clone_model(model, clone_function=clone_layer)
    bypassed.set_weights(model.get_weights())
    return bypassed, float(norm.scale[0]), tuple(float(b) for b in norm.offset)


def _check_preprocess_matches(layer, spec: ModelSpec) -> None:
    """The model's Rescaling must be the spec's normalization, or moving it would change the model."""
    cfg = layer.get_config()
    scale = np.broadcast_to(np.asarray(cfg.get("scale", 1.0), dtype=np.float64), (3,))
    offset = np.broadcast_to(np.asarray(cfg.get("offset", 0.0), dtype=np.float64), (3,))
    if not (np.allclose(scale, spec.normalization.scale, rtol=1e-6) and np.allclose(offset, spec.normalization.offset, rtol=1e-6, atol=1e-7)):
        raise EdgeError(
            f"The model's '{PREPROCESS_LAYER}' layer (scale {scale.tolist()}, offset {offset.tolist()}) does not "
            f"match the spec's normalization (scale {list(spec.normalization.scale)}, offset {list(spec.normalization.offset)})."
        )


def _rename_outputs(mlmodel):
    """Give the classifier outputs the names of edge's contract (the app reads them)."""
    import coremltools as ct

    spec = mlmodel.get_spec()
    renames = {
        spec.description.predictedFeatureName: contract.COREML_LABEL_OUTPUT,
        spec.description.predictedProbabilitiesName: contract.COREML_PROBS_OUTPUT,
    }
    for old, new in renames.items():
        if old != new:
            ct.utils.rename_feature(spec, old, new)
    return ct.models.MLModel(spec, weights_dir=mlmodel.weights_dir, skip_model_load=True)


def _compress(mlmodel, quantize: str, weight_threshold: int, grouped: bool):
    import coremltools.optimize.coreml as cto

    if quantize == "int8":
        op_config = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", weight_threshold=weight_threshold)
        return cto.linear_quantize_weights(mlmodel, cto.OptimizationConfig(global_config=op_config))
    if quantize == "int4":
        op_config = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int4", granularity="per_block",
                                                block_size=INT4_BLOCK_SIZE, weight_threshold=weight_threshold)
        return cto.linear_quantize_weights(mlmodel, cto.OptimizationConfig(global_config=op_config))
    grouping = {"granularity": "per_grouped_channel", "group_size": PALETTE_GROUP_SIZE} if grouped else {}
    op_config = cto.OpPalettizerConfig(mode="kmeans", nbits=PALETTE_BITS[quantize], weight_threshold=weight_threshold,
                                       **grouping)
    return cto.palettize_weights(mlmodel, cto.OptimizationConfig(global_config=op_config))


def _describe(mlmodel, spec: ModelSpec, quantize: str, options: dict[str, Any]) -> None:
    h, w = spec.input_size
    n = spec.num_classes
    mlmodel.short_description = (
        f"{spec.name}: {spec.backbone} image classifier, {n} classes ({quantize}). Made with edge."
    )
    mlmodel.author = str(options.get("author") or default_author())
    mlmodel.license = str(options.get("license") or "")
    mlmodel.version = str(options.get("version") or spec.model_version)
    mlmodel.input_description[contract.COREML_INPUT] = (
        f"RGB image, {w}x{h} pixels (stretched to this size, no crop); normalization is built in."
    )
    mlmodel.output_description[contract.COREML_LABEL_OUTPUT] = "Most likely class label."
    mlmodel.output_description[contract.COREML_PROBS_OUTPUT] = "Probability of each class label."
    mlmodel.user_defined_metadata.update(contract.artifact_metadata(spec, str(options.get("source_run", ""))))
    mlmodel.user_defined_metadata[PREVIEW_TYPE_KEY] = PREVIEW_TYPE


def default_author() -> str:
    """The user running edge (the model is theirs, not edge's)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in this environment
        return "unknown"


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def load(path: Path, threads: int | None = None) -> runtime.CoreMLPredictor:
    """A Predictor for a Core ML package (``threads`` is not used: the executor's BLAS decides)."""
    path = Path(path)
    spec = contract.spec_from_metadata(runtime.read_metadata(path), str(path))
    return runtime.CoreMLPredictor(path, spec)


NAME = "coreml"
FORMAT = Format(
    name=NAME,
    display_name="Core ML",
    suffix=".mlpackage",
    quantize_kinds=QUANTIZE_KINDS,
    default_quantize=("fp16",),
    export=export,
    load=load,
    read_metadata=runtime.read_metadata,
    budgets={
        "fp32": FP32_BUDGET,
        "fp16": FP16_BUDGET,
        **{kind: COMPRESSED_BUDGET for kind in ("int8", "int4", *PALETTE_BITS)},
    },
    verified_by=runtime.MACOS_ENGINE if runtime.ON_MACOS else "MIL reference executor",
    runtime="coreml",
    is_dir=True,
    needs_calibration=(),  # weight-only compression needs no representative images
    always_runs_here=runtime.ON_MACOS,  # off macOS, a program the executor cannot run is "not verified"
    latency_note=runtime.LATENCY_NOTE,
    per_load_threads=False,  # no thread setting (and no latency) off macOS: one row in a thread sweep
    options=("source_run", "coreml_target", "author", "license", "version", "extra"),
    check_options=check_options,
)
