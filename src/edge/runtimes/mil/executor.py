"""An executor for Core ML ML programs, for checking Core ML exports on Linux.

coremltools can read an ``.mlpackage`` on any OS but can only *run* it on macOS. This module
rebuilds the package's MIL program with coremltools' own proto reader
(``converters.mil.frontend.milproto.load``; weights come from the package's weight file), folds
its constants (compressed weights decoded by ``edge.runtimes.mil.ops``) and runs it on one of two
engines with the same semantics:

  * ``"tensorflow"`` (default): the program lowered op by op to TensorFlow ops and run as one
    compiled ``tf.function`` (``edge.runtimes.mil.compiled``), at TensorFlow speed;
  * ``"numpy"``: op by op with the NumPy implementations in ``edge.runtimes.mil.ops`` -- the
    slow, simple oracle the compiled engine is tested against.

What is reproduced exactly as Core ML defines it:
  * the ImageType input: pixels arrive as a (1, 3, H, W) float tensor in the image's colour
    space order (RGB or BGR); the ImageType's scale and per-channel bias are ops at the top of
    the program (coremltools writes them there for ML programs) and run like every other op;
  * the classifier head (``classify``): the class label and the {label: probability} dictionary;
  * weight compression (constexpr affine dequantization, palettes, sparse masks), decoded here.

fp16 programs: every tensor the program declares as fp16 is rounded to fp16 after the op that
produces it (round-to-nearest-even, overflow to inf), the way Core ML's CPU path stores fp16
activations; within one op, products are accumulated in fp32 (in both engines; their sums may be
ordered differently, so a value can round to the neighbouring fp16 number). What is *not* reproduced: the
Neural Engine and GPU kernels (their accumulation order, fused ops and fp16 internals are
Apple's and undocumented), so a model can differ on those units by more than it does here.

The program was converted for batch 1; the executor runs a batch of images at once on the
leading axis (``reshape`` to a leading 1 is widened to the batch).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import EdgeError
from edge.runtimes.mil.ops import OPS

WEIGHTS_SUBDIR = Path("Data") / "com.apple.CoreML" / "weights"
ENGINES = ("tensorflow", "numpy")
DEFAULT_ENGINE = "tensorflow"
ENGINE_NAMES = {
    "tensorflow": "MIL executor (compiled to TensorFlow, fp16 emulated)",
    "numpy": "MIL reference executor (NumPy, fp16 emulated)",
}
ENGINE_NAME = ENGINE_NAMES[DEFAULT_ENGINE]  # the engine MilExecutor(path) runs on
# Images per engine call in ``classify``: the compiled engine is TensorFlow (as the Keras reference,
# edge.runtimes.tensorflow.BATCH); NumPy's temporaries (im2col) grow with the batch.
DEFAULT_BATCH = {"tensorflow": 64, "numpy": 8}
_COLOR_SPACES = {20: "RGB", 30: "BGR"}  # ImageFeatureType.ColorSpace values edge supports


class UnsupportedMilOp(EdgeError):  # noqa: N818  (a public name since 0.1)
    """The program holds an op the executor does not implement (in either engine)."""


@dataclass(frozen=True)
class ImageInput:
    name: str
    height: int
    width: int
    color_space: str  # RGB | BGR


def _dtype_name(var) -> str:
    from coremltools.converters.mil.mil import types

    try:
        return types.builtin_to_string(var.dtype)
    except Exception:  # noqa: BLE001 - lists, strings and dicts have no element type
        return ""


def _round_fp16(value: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.asarray(value, dtype=np.float32).astype(np.float16).astype(np.float32)


def load_spec_and_program(path: Path):
    """The package's protobuf spec and its MIL program (with weights) rebuilt from it."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load as load_milproto

    path = Path(path)
    if not (path / "Manifest.json").is_file():
        raise EdgeError(f"{path} is not a Core ML package (no Manifest.json inside).")
    try:
        spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    except Exception as exc:
        raise EdgeError(f"{path} cannot be read as a Core ML model ({str(exc).splitlines()[0]}).") from exc
    if spec.WhichOneof("Type") != "mlProgram":
        raise EdgeError(f"{path} is not an ML program (it is a {spec.WhichOneof('Type')}); edge exports ML programs.")
    program = load_milproto(spec, spec.specificationVersion, str(path / WEIGHTS_SUBDIR))
    return spec, program


class MilExecutor:
    """Runs the ``main`` function of an ML program on images.

    ``engine``: ``"tensorflow"`` (default, compiled) or ``"numpy"`` (op by op, the oracle);
    ``engine_name`` says which, for reports.
    """

    def __init__(self, path: Path, engine: str | None = None):
        engine = engine or DEFAULT_ENGINE
        if engine not in ENGINES:
            raise EdgeError(f"Unknown MIL executor engine '{engine}'; choose one of: {', '.join(ENGINES)}.")
        self.engine = engine
        self.engine_name = ENGINE_NAMES[engine]
        self.path = Path(path)
        self.spec, program = load_spec_and_program(self.path)
        self.function = program.functions["main"]
        self.image_input = self._image_input()
        self.output_names = [v.name for v in self.function.outputs]
        self.ops = list(self.function.operations)
        self.op_types = sorted({o.op_type for o in self.ops})
        self._check_supported()
        # Which outputs the program declares fp16 (rounded after each op), by var name.
        # Values are keyed by the Var object's id: names are not unique in a program rebuilt from
        # its proto (coremltools may give an inline constant the name of another const).
        self.fp16_vars = {id(v) for o in self.ops for v in o.outputs if _dtype_name(v) == "fp16"}
        self.is_fp16 = bool(self.fp16_vars)
        self.constants = self._fold_constants()
        self._compiled = None
        if engine == "tensorflow":
            from edge.runtimes.mil.compiled import CompiledProgram

            self._compiled = CompiledProgram(self)

    # -- loading ---------------------------------------------------------------------------

    def _image_input(self) -> ImageInput:
        inputs = self.spec.description.input
        if len(inputs) != 1 or inputs[0].type.WhichOneof("Type") != "imageType":
            raise EdgeError(f"{self.path} does not take one image input; edge's Core ML models do.")
        image = inputs[0].type.imageType
        if image.colorSpace not in _COLOR_SPACES:
            raise EdgeError(f"{self.path} takes images in colour space {image.colorSpace}; only RGB/BGR are supported.")
        return ImageInput(inputs[0].name, int(image.height), int(image.width), _COLOR_SPACES[image.colorSpace])

    def _check_supported(self) -> None:
        # The NumPy ops define what is supported: the compiled engine lowers each of them to
        # TensorFlow (or runs the NumPy op inside its graph), and is tested against them.
        for o in self.ops:
            if o.op_type != "const" and o.op_type not in OPS:
                raise UnsupportedMilOp(
                    f"The Core ML program uses op '{o.op_type}' (at '{o.name}'), which the MIL "
                    f"executor does not implement, so the model cannot be verified on this machine."
                )
            if o.blocks:
                raise UnsupportedMilOp(f"The Core ML program uses control flow ('{o.op_type}' at '{o.name}'), which the MIL executor does not implement.")

    def _fold_constants(self) -> dict[str, Any]:
        """Values of ``const`` ops and of compile-time ``constexpr_*`` ops, computed once."""
        values: dict[str, Any] = {}
        for o in self.ops:
            if o.op_type == "const":
                values[id(o.outputs[0])] = self._const_value(o.outputs[0])
            elif o.op_type.startswith("constexpr_"):
                self._run_op(o, values)
        return values

    @staticmethod
    def _const_value(var):
        val = var.val
        if isinstance(val, np.ndarray) and val.dtype == np.float16:
            return val.astype(np.float32)  # exact; fp16 arithmetic is emulated by rounding outputs
        if hasattr(val, "ls"):  # mil_list (e.g. classify's classes)
            return list(val.ls)
        return val

    # -- running ---------------------------------------------------------------------------

    def _value(self, var, env):
        if id(var) in env:
            return env[id(var)]
        if var.val is not None:
            return self._const_value(var)
        raise RuntimeError(f"value of '{var.name}' is needed before it is computed")

    def _run_op(self, o, env: dict[int, Any]) -> None:
        kwargs = {}
        for name, arg in o.inputs.items():
            if isinstance(arg, (list, tuple)):
                kwargs[name] = [self._value(v, env) for v in arg]
            else:
                kwargs[name] = self._value(arg, env)
        try:
            result = OPS[o.op_type](**kwargs)
        except Exception as exc:
            raise RuntimeError(f"MIL op '{o.op_type}' at '{o.name}' failed: {exc}") from exc
        results = result if len(o.outputs) > 1 else (result,)
        for var, value in zip(o.outputs, results):
            if id(var) in self.fp16_vars:
                value = _round_fp16(value)
            env[id(var)] = value

    def _check_images(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        want = (self.image_input.height, self.image_input.width, 3)
        if images.ndim != 4 or images.shape[1:] != want:
            raise EdgeError(f"The Core ML model takes images of shape (N, {want[0]}, {want[1]}, 3), got {images.shape}.")
        return images

    def pixels_to_input(self, images: np.ndarray) -> np.ndarray:
        """uint8 RGB (N, H, W, 3) -> the (N, 3, H, W) float tensor Core ML makes of the image."""
        images = self._check_images(images)
        if self.image_input.color_space == "BGR":
            images = images[..., ::-1]
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32)

    def run(self, images: np.ndarray) -> dict[str, Any]:
        """Evaluate the program on uint8 RGB images; returns every program output by name."""
        if self._compiled is not None:
            return self._compiled.run(self._check_images(images))
        env = dict(self.constants)
        env[id(self.function.inputs[self.image_input.name])] = self.pixels_to_input(images)
        for o in self.ops:
            if o.op_type == "const" or o.op_type.startswith("constexpr_"):
                continue
            self._run_op(o, env)
        return {v.name: env[id(v)] for v in self.function.outputs}

    def classify(self, images: np.ndarray, labels: list[str], batch: int | None = None) -> np.ndarray:
        """Probabilities (N, C) in the order of ``labels``, read from the classifier dictionary.

        Reading by label (not by position) means a wrong or reordered class list in the package
        shows up as a disagreement instead of being silently ignored. ``batch``: images per
        engine call (default: the engine's, ``DEFAULT_BATCH``).
        """
        batch = int(batch or DEFAULT_BATCH[self.engine])
        probs_name = self.spec.description.predictedProbabilitiesName
        if not probs_name:
            raise EdgeError(f"{self.path} is not a classifier (no probabilities output).")
        rows = []
        for start in range(0, len(images), batch):
            chunk = images[start : start + batch]
            out = self.run(chunk)[probs_name]
            dicts = out if isinstance(out, list) else [out]
            for d in dicts:
                missing = [label for label in labels if label not in d]
                if missing or len(d) != len(labels):
                    raise EdgeError(f"The Core ML classifier's labels {sorted(d)} do not match the model's labels {labels}.")
                rows.append([d[label] for label in labels])
        return np.asarray(rows, dtype=np.float32).reshape(len(images), len(labels))
