"""The iOS demo app's Python side: install an exported Core ML model into ``ios_demo/`` and
generate the app's Swift copy of the export contract.

* ``install(package, app_dir)`` checks that a ``.mlpackage`` offers everything the Swift app reads
  (image input, classifier outputs, labels, edge metadata) and copies it to
  ``ios_demo/EdgeDemo/Models/EdgeClassifier.mlpackage``, the one model the app loads.
* ``contract(app_dir)`` writes ``ios_demo/EdgeDemo/ModelContract.swift`` from ``edge.contract``
  (metadata keys, Core ML feature names) and from ``VISION_CROP_AND_SCALE`` below, so the names
  exist once, in Python. ``python -m edge.ios_demo contract [--check]`` does the same.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from edge import contract as model_contract
from edge.apps import find_app_dir
from edge.data.resize import DEFAULT_MODE
from edge.errors import EdgeError, one_line
from edge.fileio import atomic_path, atomic_write_text, remove

APP_DIR_NAME = "ios_demo"
SOURCE_DIR = "EdgeDemo"  # the app target's sources, relative to the app directory
MODELS_DIR = f"{SOURCE_DIR}/Models"  # an Xcode folder reference: copied into the app as-is
INSTALLED_MODEL = "EdgeClassifier.mlpackage"  # the fixed name the app looks for first
CONTRACT_SWIFT = f"{SOURCE_DIR}/ModelContract.swift"
PROJECT_YML = "project.yml"
MODEL_SUFFIXES = (".mlpackage", ".mlmodel", ".mlmodelc")

# How Vision must scale a camera frame or photo to reproduce each training resize
# (``ModelSpec.resize``; ``edge.data.images.load_image`` implements it). Vision's options:
# scaleFill stretches the whole image to the input size (no crop, aspect not kept), centerCrop
# scales the short side and crops the long one, scaleFit letterboxes. Vision chooses its own filter:
# it reproduces each mode's geometry, not its pixels (edge bench measures what other filters change).
VISION_CROP_AND_SCALE = {"stretch-bilinear": "scaleFill", "stretch-mediapipe": "scaleFill"}
DEFAULT_RESIZE: str = DEFAULT_MODE

# Swift enum that holds each group of contract.py constants, by Python name prefix.
_SWIFT_GROUPS = {
    "COREML_": ("Feature", "Core ML feature names of every edge classifier (inputs and outputs)."),
    "KEY_": ("MetadataKey", "Keys of the model's user-defined metadata (`metadata[.creatorDefinedKey]`)."),
}
_SWIFT_KEY_USE = re.compile(r"\bModelContract\.MetadataKey\.(\w+)")


@dataclass(frozen=True)
class ContractName:
    """One constant of edge.contract as the Swift file spells it."""

    python_name: str
    swift_group: str
    swift_name: str
    value: str
    comment: str


@dataclass
class CoreMLInterface:
    """What the iOS app can see of a Core ML model (read from its spec, no model load)."""

    inputs: dict[str, str]  # feature name -> kind (imageType, multiArrayType, ...)
    image_size: tuple[int, int] | None  # (h, w) of the contract's image input
    color_space: str
    outputs: list[str]
    predicted_feature: str
    predicted_probabilities: str
    labels: list[str]
    metadata: dict[str, str]


@dataclass
class InstallResult:
    """Where a model went and what the app will show for it."""

    source: Path
    destination: Path
    app_dir: Path
    labels: list[str]
    input_size: tuple[int, int]
    model_name: str
    model_version: str
    source_run: str
    size_bytes: int
    replaced: list[str] = field(default_factory=list)


# --- the Swift contract -------------------------------------------------------------------


def contract_names() -> list[ContractName]:
    """Every ``KEY_*`` and ``COREML_*`` constant of edge.contract, in source order."""
    source = inspect.getsource(model_contract)
    pattern = re.compile(r'^(?P<name>(?:KEY|COREML)_[A-Z0-9_]+)\s*=\s*(?:"[^"]*"|[A-Z][A-Z0-9_]*)\s*(?:#\s*(?P<comment>.*))?$')
    names = []
    for line in source.splitlines():
        match = pattern.match(line)
        if not match:
            continue
        python_name = match["name"]
        value = getattr(model_contract, python_name)
        prefix = next(p for p in _SWIFT_GROUPS if python_name.startswith(p))
        names.append(
            ContractName(
                python_name=python_name,
                swift_group=_SWIFT_GROUPS[prefix][0],
                swift_name=_camel(python_name[len(prefix) :]),
                value=value,
                comment=(match["comment"] or "").strip(),
            )
        )
    return names


def render_contract() -> str:
    """The text of ModelContract.swift (deterministic: same input, same bytes)."""
    lines = [
        "// ModelContract.swift -- GENERATED from src/edge/contract.py by `edge ios contract`.",
        "// Do not edit: change the Python side and regenerate. A test fails while this file is stale.",
        "",
        "import Vision",
        "",
        "/// The names shared by edge's Core ML export and this app, defined once in Python.",
        "enum ModelContract {",
    ]
    names = contract_names()
    for group, doc in sorted(_SWIFT_GROUPS.values()):
        lines += [f"    /// {doc}", f"    enum {group} {{"]
        for name in (n for n in names if n.swift_group == group):
            if name.comment:
                lines.append(f"        /// {name.comment}")
            lines.append(f"        static let {name.swift_name} = {_swift_string(name.value)}  // {name.python_name}")
        lines += ["    }", ""]
    lines += [
        "    /// The training resize assumed when a model carries no `MetadataKey.resize` entry",
        "    /// (ModelSpec's default).",
        f"    static let defaultResize = {_swift_string(DEFAULT_RESIZE)}",
        "",
        "    /// How Vision must scale an image to reproduce each training resize (edge.data.images).",
        "    /// `.scaleFill` stretches the whole image to the input size: no crop, aspect not kept.",
        "    static let cropAndScaleOptionByResize: [String: VNImageCropAndScaleOption] = [",
    ]
    for resize, option in sorted(VISION_CROP_AND_SCALE.items()):
        lines.append(f"        {_swift_string(resize)}: .{option},")
    lines += ["    ]", "}", ""]
    return "\n".join(lines)


def contract(app_dir: Path | None = None, check: bool = False) -> tuple[Path, bool]:
    """Write ModelContract.swift (or with ``check`` only compare). Returns (path, was_current)."""
    path = resolve_app_dir(app_dir) / CONTRACT_SWIFT
    text = render_contract()
    current = path.is_file() and path.read_text(encoding="utf-8") == text
    if not current and not check:
        atomic_write_text(path, text)
    return path, current


def swift_metadata_keys_read(app_dir: Path | None = None) -> dict[str, str]:
    """Metadata keys the Swift sources read (``ModelContract.MetadataKey.x``): swift name -> key."""
    source_dir = resolve_app_dir(app_dir) / SOURCE_DIR
    by_swift_name = {n.swift_name: n.value for n in contract_names() if n.swift_group == "MetadataKey"}
    used: dict[str, str] = {}
    for swift_file in sorted(source_dir.rglob("*.swift")):
        if swift_file.name == Path(CONTRACT_SWIFT).name:
            continue
        for swift_name in _SWIFT_KEY_USE.findall(swift_file.read_text(encoding="utf-8")):
            if swift_name not in by_swift_name:
                raise EdgeError(f"{swift_file.name} reads ModelContract.MetadataKey.{swift_name}, which edge.contract does not define.")
            used[swift_name] = by_swift_name[swift_name]
    return used


# --- reading a Core ML package ------------------------------------------------------------


def read_interface(package: Path) -> CoreMLInterface:
    """Read the parts of a ``.mlpackage``/``.mlmodel`` the app relies on (works on Linux)."""
    try:
        import coremltools as ct
    except ImportError as exc:  # pragma: no cover - coremltools is a dependency
        raise EdgeError("coremltools is needed to read Core ML models; reinstall edge.") from exc
    try:
        spec = ct.models.MLModel(str(package), skip_model_load=True).get_spec()
    except Exception as exc:  # corrupt or foreign package
        raise EdgeError(f"{package} is not a readable Core ML model ({one_line(exc)}).") from exc
    description = spec.description
    inputs = {feature.name: feature.type.WhichOneof("Type") or "" for feature in description.input}
    image_size, color_space = None, ""
    for feature in description.input:
        if feature.name == model_contract.COREML_INPUT and feature.type.WhichOneof("Type") == "imageType":
            image = feature.type.imageType
            image_size = (int(image.height), int(image.width))
            color_space = image.ColorSpace.Name(image.colorSpace)
    return CoreMLInterface(
        inputs=inputs,
        image_size=image_size,
        color_space=color_space,
        outputs=[feature.name for feature in description.output],
        predicted_feature=description.predictedFeatureName,
        predicted_probabilities=description.predictedProbabilitiesName,
        labels=_class_labels(spec),
        metadata=dict(description.metadata.userDefined),
    )


def app_compatibility_problems(interface: CoreMLInterface, metadata_keys: Iterable[str]) -> list[str]:
    """Everything the iOS app needs from a model that this one lacks (empty list: compatible)."""
    c = model_contract
    problems = []
    if c.COREML_INPUT not in interface.inputs:
        problems.append(f"no input named '{c.COREML_INPUT}' (inputs: {', '.join(interface.inputs) or 'none'})")
    elif interface.image_size is None:
        problems.append(f"input '{c.COREML_INPUT}' is a {interface.inputs[c.COREML_INPUT]}, not an image")
    elif interface.color_space not in ("RGB", "BGR"):  # Vision converts camera pixels to either
        problems.append(f"input '{c.COREML_INPUT}' expects {interface.color_space} pixels, not color")
    if interface.predicted_feature != c.COREML_LABEL_OUTPUT or c.COREML_LABEL_OUTPUT not in interface.outputs:
        problems.append(f"no classifier label output '{c.COREML_LABEL_OUTPUT}'")
    if interface.predicted_probabilities != c.COREML_PROBS_OUTPUT or c.COREML_PROBS_OUTPUT not in interface.outputs:
        problems.append(f"no classifier probability output '{c.COREML_PROBS_OUTPUT}'")
    if not interface.labels:
        problems.append("no class labels (not exported as a Core ML classifier)")
    missing = [key for key in metadata_keys if key not in interface.metadata]
    if missing:
        problems.append(f"metadata lacks {', '.join(missing)}")
    meta = interface.metadata
    if c.KEY_LABELS in meta and interface.labels and _json_or_none(meta[c.KEY_LABELS]) != interface.labels:
        problems.append(f"class labels differ from metadata '{c.KEY_LABELS}'")
    if c.KEY_INPUT_SIZE in meta and interface.image_size:
        h, w = interface.image_size
        if meta[c.KEY_INPUT_SIZE] != f"{h}x{w}":
            problems.append(f"metadata input size {meta[c.KEY_INPUT_SIZE]} differs from the image input {h}x{w}")
    resize = meta.get(c.KEY_RESIZE, DEFAULT_RESIZE)
    if resize not in VISION_CROP_AND_SCALE:
        problems.append(f"training resize '{resize}' has no Vision equivalent in the app")
    return problems


# --- installing a model into the app ------------------------------------------------------


def install(package: Path, app_dir: Path | None = None) -> InstallResult:
    """Copy an exported Core ML package into the app as ``Models/EdgeClassifier.mlpackage``.

    ``package`` may also be a directory holding exactly one ``.mlpackage`` (an export folder).
    Other models in ``Models/`` are removed so the app's choice is never ambiguous.
    """
    app = resolve_app_dir(app_dir)
    source = find_package(Path(package))
    interface = read_interface(source)
    problems = app_compatibility_problems(interface, swift_metadata_keys_read(app).values())
    if problems:
        raise EdgeError(f"{source.name} cannot drive the iOS demo app: {'; '.join(problems)}.")
    models_dir = app / MODELS_DIR
    destination = models_dir / INSTALLED_MODEL
    replaced = [p.name for p in _bundled_models(models_dir) if p.name != INSTALLED_MODEL]
    with atomic_path(destination) as tmp:
        shutil.copytree(source, tmp)
    for name in replaced:
        remove(models_dir / name)
    meta = interface.metadata
    assert interface.image_size is not None  # checked above
    return InstallResult(
        source=source,
        destination=destination,
        app_dir=app,
        labels=interface.labels,
        input_size=interface.image_size,
        model_name=meta.get(model_contract.KEY_MODEL_NAME, ""),
        model_version=meta.get(model_contract.KEY_MODEL_VERSION, ""),
        source_run=meta.get(model_contract.KEY_SOURCE_RUN, ""),
        size_bytes=sum(p.stat().st_size for p in destination.rglob("*") if p.is_file()),
        replaced=replaced,
    )


def install_from_artifacts(artifacts: Iterable, app_dir: Path | None = None) -> InstallResult | None:
    """For ``edge export --ios-demo``: install the best Core ML artifact just written.

    ``artifacts``: objects with ``format``, ``quantize`` and ``path`` (``Artifact``s or the export
    report's entries; an entry whose ``ok`` is false, i.e. over budget or failed, is never used).
    Preference: fp16 (the Core ML default: small, full accuracy on the Neural Engine), then fp32,
    then any compressed variant. Returns None when no usable Core ML artifact was exported.
    """
    order = {"fp16": 0, "fp32": 1}
    coreml = [
        a
        for a in artifacts
        if getattr(a, "ok", True) and a.path and Path(a.path).suffix in MODEL_SUFFIXES and Path(a.path).is_dir()
    ]
    if not coreml:
        return None
    best = min(coreml, key=lambda a: (order.get(a.quantize, 2), str(a.path)))
    return install(Path(best.path), app_dir)


def find_package(path: Path) -> Path:
    """``path`` itself when it is a Core ML package, else the single ``.mlpackage`` inside it."""
    if not path.exists():
        raise EdgeError(f"{path} does not exist.")
    if path.suffix == ".mlpackage":
        if not (path / "Manifest.json").is_file():
            raise EdgeError(f"{path} is not a complete .mlpackage (no Manifest.json).")
        return path
    if path.is_dir():
        found = sorted(p for p in path.glob("*.mlpackage") if p.is_dir() and not p.name.startswith("."))
        if len(found) == 1:
            return find_package(found[0])
        if found:
            names = ", ".join(p.name for p in found)
            raise EdgeError(f"{path} holds {len(found)} Core ML packages ({names}); name the one to install.")
    raise EdgeError(f"{path} is not a .mlpackage; export one with `edge export RUN --format coreml`.")


def resolve_app_dir(app_dir: Path | None = None) -> Path:
    """The demo app folder: ``app_dir``, else ./ios_demo, else the one in this edge checkout."""
    return find_app_dir(APP_DIR_NAME, app_dir, lambda d: (d / PROJECT_YML).is_file() and (d / SOURCE_DIR).is_dir(),
                        "the edge iOS demo app", f"{PROJECT_YML} and {SOURCE_DIR}/")


# --- helpers ------------------------------------------------------------------------------


def _bundled_models(models_dir: Path) -> list[Path]:
    if not models_dir.is_dir():
        return []
    return sorted(p for p in models_dir.iterdir() if p.suffix in MODEL_SUFFIXES and not p.name.startswith("."))


def _class_labels(spec) -> list[str]:
    """Class labels of a classifier: ML program ``classify`` op, or a neural-network classifier."""
    kind = spec.WhichOneof("Type")
    if kind == "mlProgram":
        for function in spec.mlProgram.functions.values():
            for block in function.block_specializations.values():
                for op in block.operations:
                    if op.type == "classify":
                        return _classify_op_labels(op)
        return []
    if kind in ("neuralNetworkClassifier", "pipelineClassifier"):
        container = getattr(spec, kind)
        which = container.WhichOneof("ClassLabels")
        if which == "stringClassLabels":
            return list(container.stringClassLabels.vector)
        if which == "int64ClassLabels":
            return [str(v) for v in container.int64ClassLabels.vector]
    return []


def _classify_op_labels(op) -> list[str]:
    value = op.inputs["classes"].arguments[0].value.immediateValue
    labels = []
    for item in value.list.values:
        tensor = item.immediateValue.tensor
        if tensor.strings.values:
            labels.extend(tensor.strings.values)
        else:
            labels.extend(str(v) for v in tensor.longInts.values or tensor.ints.values)
    return labels


def _camel(upper_snake: str) -> str:
    head, *rest = upper_snake.lower().split("_")
    return head + "".join(part.capitalize() for part in rest)


def _swift_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _json_or_none(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def main(argv: list[str] | None = None) -> int:
    """``python -m edge.ios_demo contract [--app DIR] [--check]``."""
    parser = argparse.ArgumentParser(prog="python -m edge.ios_demo", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["contract"])
    parser.add_argument("--app", type=Path, default=None, help="the ios_demo folder (default: found)")
    parser.add_argument("--check", action="store_true", help="only report whether the file is current")
    args = parser.parse_args(argv)
    try:
        path, current = contract(args.app, check=args.check)
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        print(f"{path}: {'up to date' if current else 'STALE, run `edge ios contract`'}")
        return 0 if current else 1
    print(f"{path}: {'unchanged' if current else 'written'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
