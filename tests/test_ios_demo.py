"""The iOS demo app, checked from Python (no Swift toolchain here).

* ModelContract.swift is exactly what edge.contract generates, and the Swift code reads metadata
  only through it;
* the Vision crop/scale option the app asks for reproduces training's resize (load_image);
* the committed Xcode project is valid and complete, and agrees with project.yml;
* a real Core ML export of a synthetic-trained model offers everything the app reads, and
  `edge ios install` puts it where the app looks.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge import contract, ios_demo
from edge.data.images import load_image
from edge.errors import EdgeError
from edge.spec import ModelSpec

APP = Path(__file__).resolve().parents[1] / "ios_demo"
SOURCES = APP / ios_demo.SOURCE_DIR
PBXPROJ = APP / "EdgeDemo.xcodeproj" / "project.pbxproj"
REQUIRED_PLIST_KEYS = ("INFOPLIST_KEY_NSCameraUsageDescription", "INFOPLIST_KEY_NSPhotoLibraryUsageDescription")


def swift_files() -> list[Path]:
    return sorted(SOURCES.rglob("*.swift"))


# --- the generated contract ---------------------------------------------------------------


def test_committed_contract_swift_is_freshly_generated():
    committed = (APP / ios_demo.CONTRACT_SWIFT).read_bytes()
    assert committed == ios_demo.render_contract().encode("utf-8"), "run `edge ios contract` and commit the result"
    _, current = ios_demo.contract(APP, check=True)
    assert current


def test_contract_swift_carries_every_contract_name():
    text = (APP / ios_demo.CONTRACT_SWIFT).read_text(encoding="utf-8")
    constants = {k: v for k, v in vars(contract).items() if re.fullmatch(r"(KEY|COREML)_[A-Z0-9_]+", k)}
    assert {n.python_name for n in ios_demo.contract_names()} == set(constants)
    for name in ios_demo.contract_names():
        assert f'static let {name.swift_name} = "{constants[name.python_name]}"  // {name.python_name}' in text


def test_contract_check_reports_a_stale_file(tmp_path):
    app = tmp_path / "ios_demo"
    shutil.copytree(APP, app, ignore=shutil.ignore_patterns("*.mlpackage"))
    (app / ios_demo.CONTRACT_SWIFT).write_text("// edited by hand\n", encoding="utf-8")
    path, current = ios_demo.contract(app, check=True)
    assert not current and path.read_text(encoding="utf-8") == "// edited by hand\n"
    assert ios_demo.main(["contract", "--app", str(app), "--check"]) == 1
    assert ios_demo.main(["contract", "--app", str(app)]) == 0
    assert path.read_text(encoding="utf-8") == ios_demo.render_contract()


def test_swift_reads_metadata_only_through_the_contract():
    for swift in swift_files():
        if swift.name == Path(ios_demo.CONTRACT_SWIFT).name:
            continue
        text = swift.read_text(encoding="utf-8")
        assert not re.search(r'"edge\.[a-z_]+"', text), f"{swift.name} spells a metadata key; use ModelContract"
        for name in (contract.COREML_INPUT, contract.COREML_LABEL_OUTPUT, contract.COREML_PROBS_OUTPUT):
            assert f'"{name}"' not in text, f"{swift.name} spells the Core ML name {name!r}; use ModelContract"
        # No label list or normalization constant: those come from the model at runtime.
        assert not re.search(r"\b(127\.5|0\.485|0\.229|123\.68|58\.395)\b", text), swift.name
    keys = ios_demo.swift_metadata_keys_read(APP)
    for needed in (contract.KEY_LABELS, contract.KEY_INPUT_SIZE, contract.KEY_RESIZE, contract.KEY_MODEL_VERSION, contract.KEY_SOURCE_RUN):
        assert needed in keys.values(), f"the app's info screen should read {needed}"
    info = (SOURCES / "ModelInfo.swift").read_text(encoding="utf-8")
    assert "metadata[.creatorDefinedKey]" in info and "classLabels" in info


# --- resize: what Vision is asked for == what training did ---------------------------------


def _vision_resize(img: Image.Image, option: str, size: tuple[int, int]) -> np.ndarray:
    """What each VNImageCropAndScaleOption does to an upright image (Apple's documented semantics)."""
    h, w = size
    if option == "scaleFill":  # stretch to the input size: no crop, aspect not kept
        return np.asarray(img.resize((w, h), Image.BILINEAR))
    if option == "centerCrop":  # fit the short side, crop the long side around the centre
        scale = max(w / img.width, h / img.height)
        big = img.resize((round(img.width * scale), round(img.height * scale)), Image.BILINEAR)
        left, top = (big.width - w) // 2, (big.height - h) // 2
        return np.asarray(big.crop((left, top, left + w, top + h)))
    if option == "scaleFit":  # fit the long side, pad the rest
        scale = min(w / img.width, h / img.height)
        small = img.resize((round(img.width * scale), round(img.height * scale)), Image.BILINEAR)
        canvas = Image.new("RGB", (w, h))
        canvas.paste(small, ((w - small.width) // 2, (h - small.height) // 2))
        return np.asarray(canvas)
    raise AssertionError(option)


def _generated_resize_options() -> dict[str, str]:
    text = (APP / ios_demo.CONTRACT_SWIFT).read_text(encoding="utf-8")
    block = text.split("cropAndScaleOptionByResize", 1)[1]
    return dict(re.findall(r'"([^"]+)": \.(\w+),', block))


@pytest.mark.parametrize("image_wh", [(120, 48), (40, 100)])
def test_vision_option_in_the_app_reproduces_training_resize(tmp_path, image_wh):
    options = _generated_resize_options()
    training_resize = ModelSpec.__dataclass_fields__["resize"].default
    assert training_resize == ios_demo.DEFAULT_RESIZE
    assert options == ios_demo.VISION_CROP_AND_SCALE
    assert options[training_resize] == "scaleFill"
    # A non-square image with a horizontal and a vertical gradient: cropping loses the ends of
    # one gradient, letterboxing adds black bars; only the matching option gives the same pixels.
    w, h = image_wh
    xs, ys = np.meshgrid(np.linspace(0, 255, w), np.linspace(0, 255, h))
    pixels = np.stack([xs, ys, np.full_like(xs, 128)], axis=-1).astype(np.uint8)
    path = tmp_path / "gradient.png"
    Image.fromarray(pixels).save(path)
    size = (32, 32)
    trained = load_image(path, size).astype(int)
    diffs = {opt: np.abs(trained - _vision_resize(Image.fromarray(pixels), opt, size)).mean() for opt in ("scaleFill", "centerCrop", "scaleFit")}
    assert diffs[options[training_resize]] < 0.5, diffs
    assert all(d > 10 for opt, d in diffs.items() if opt != options[training_resize]), diffs


def test_training_applies_exif_orientation_like_vision(tmp_path):
    """The app passes the photo's EXIF orientation to Vision; training must also see it upright."""
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)  # left half red as stored
    stored[:, 20:] = (0, 0, 255)
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display" (CGImagePropertyOrientation.right)
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif, quality=95)
    upright = load_image(path, (40, 20))  # displayed: 20 wide, 40 high, red on top
    assert upright[:15, :, 0].mean() > 200 and upright[25:, :, 2].mean() > 200


def test_camera_orientation_mapping_is_the_rotation_angle():
    text = (SOURCES / "CameraFeed.swift").read_text(encoding="utf-8")
    mapping = dict(re.findall(r"case (\d+): return \.(\w+)", text))
    assert mapping == {"90": "right", "180": "down", "270": "left"}
    assert "default: return .up" in text
    assert "videoRotationAngleForHorizonLevelCapture" in text


# --- the Xcode project --------------------------------------------------------------------

_TOKEN = re.compile(
    r'\s+|/\*.*?\*/|//[^\n]*|(?P<q>"(?:[^"\\]|\\.)*")|(?P<w>[A-Za-z0-9_$/:.\-+]+)|(?P<p>[{}()=;,])', re.S
)


def parse_openstep_plist(text: str):
    """A strict parser of the old-style (OpenStep) plist syntax of project.pbxproj."""
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise AssertionError(f"unexpected character {text[pos]!r} at offset {pos}")
        pos = match.end()
        if match["q"] is not None:
            tokens.append(("s", bytes(match["q"][1:-1], "utf-8").decode("unicode_escape")))
        elif match["w"] is not None:
            tokens.append(("s", match["w"]))
        elif match["p"] is not None:
            tokens.append(("p", match["p"]))
    tokens.append(("end", ""))
    index = 0

    def take(kind=None, value=None):
        nonlocal index
        tok = tokens[index]
        if (kind and tok[0] != kind) or (value and tok[1] != value):
            raise AssertionError(f"expected {value or kind}, found {tok[1]!r} (token {index})")
        index += 1
        return tok[1]

    def value():
        if tokens[index] == ("p", "{"):
            take("p", "{")
            result = {}
            while tokens[index] != ("p", "}"):
                key = take("s")
                assert key not in result, f"duplicate key {key}"
                take("p", "=")
                result[key] = value()
                take("p", ";")
            take("p", "}")
            return result
        if tokens[index] == ("p", "("):
            take("p", "(")
            items = []
            while tokens[index] != ("p", ")"):
                items.append(value())
                if tokens[index] != ("p", ")"):
                    take("p", ",")
            take("p", ")")
            return items
        return take("s")

    root = value()
    take("end")
    return root


@pytest.fixture(scope="module")
def pbx():
    text = PBXPROJ.read_text(encoding="utf-8")
    assert text.startswith("// !$*UTF8*$!\n")
    return parse_openstep_plist(text)


def _ids_referenced(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from _ids_referenced(v)
    elif isinstance(node, list):
        for v in node:
            yield from _ids_referenced(v)
    elif re.fullmatch(r"[0-9A-F]{24}", node):
        yield node


def test_pbxproj_is_a_consistent_object_graph(pbx):
    objects = pbx["objects"]
    assert pbx["objectVersion"] == "56" and pbx["archiveVersion"] == "1"
    assert all(re.fullmatch(r"[0-9A-F]{24}", oid) and "isa" in obj for oid, obj in objects.items())
    dangling = {oid for oid in _ids_referenced({k: v for k, v in pbx.items() if k != "objects"}) if oid not in objects}
    for obj in objects.values():
        dangling |= {oid for oid in _ids_referenced(obj) if oid not in objects}
    assert not dangling
    project = objects[pbx["rootObject"]]
    assert project["isa"] == "PBXProject"
    (target,) = (objects[t] for t in project["targets"])
    assert target["productType"] == "com.apple.product-type.application" and target["name"] == "EdgeDemo"
    phases = {objects[p]["isa"]: objects[p] for p in target["buildPhases"]}
    assert set(phases) == {"PBXSourcesBuildPhase", "PBXFrameworksBuildPhase", "PBXResourcesBuildPhase"}


def _target_settings(pbx):
    objects = pbx["objects"]
    project = objects[pbx["rootObject"]]
    target = objects[project["targets"][0]]
    configs = [objects[c] for c in objects[target["buildConfigurationList"]]["buildConfigurations"]]
    project_configs = [objects[c] for c in objects[project["buildConfigurationList"]]["buildConfigurations"]]
    return target, configs, project_configs


def test_pbxproj_builds_every_swift_file_and_bundles_the_models_folder(pbx):
    objects = pbx["objects"]
    target, _, _ = _target_settings(pbx)
    phases = {objects[p]["isa"]: objects[p] for p in target["buildPhases"]}
    main_group = objects[objects[pbx["rootObject"]]["mainGroup"]]
    (app_group,) = (objects[c] for c in main_group["children"] if objects[c].get("path") == ios_demo.SOURCE_DIR)
    in_group = {objects[c]["path"]: objects[c] for c in app_group["children"]}

    compiled = {objects[objects[bf]["fileRef"]]["path"] for bf in phases["PBXSourcesBuildPhase"]["files"]}
    on_disk = {p.name for p in swift_files()}
    assert compiled == on_disk, f"missing from the project: {on_disk - compiled}; stale: {compiled - on_disk}"
    assert all(in_group[name]["lastKnownFileType"] == "sourcecode.swift" for name in on_disk)
    assert all((SOURCES / path).exists() for path in in_group), "the project references a missing file"

    resources = {objects[objects[bf]["fileRef"]]["path"] for bf in phases["PBXResourcesBuildPhase"]["files"]}
    assert resources == {"Assets.xcassets", "Models"}
    # A folder reference: copied as-is, so the project builds with no model and never compiles one.
    assert in_group["Models"]["lastKnownFileType"] == "folder"
    assert Path(ios_demo.MODELS_DIR).name == "Models" and (APP / ios_demo.MODELS_DIR).is_dir()


def test_pbxproj_settings_ios17_signing_and_privacy_strings(pbx):
    _, configs, project_configs = _target_settings(pbx)
    assert {c["name"] for c in configs} == {"Debug", "Release"}
    for config in configs:
        settings = config["buildSettings"]
        assert settings["GENERATE_INFOPLIST_FILE"] == "YES"
        for key in REQUIRED_PLIST_KEYS:
            assert len(settings[key]) > 20, key
        assert settings["CODE_SIGN_STYLE"] == "Automatic" and "DEVELOPMENT_TEAM" not in settings
        assert settings["PRODUCT_BUNDLE_IDENTIFIER"] == "dev.edge.EdgeDemo"
    for config in project_configs:
        assert config["buildSettings"]["IPHONEOS_DEPLOYMENT_TARGET"] == "17.0"
        assert config["buildSettings"]["SDKROOT"] == "iphoneos"


def test_project_yml_agrees_with_the_committed_project(pbx):
    yaml = pytest.importorskip("yaml")
    spec = yaml.safe_load((APP / ios_demo.PROJECT_YML).read_text(encoding="utf-8"))
    target = spec["targets"]["EdgeDemo"]
    assert target["type"] == "application" and target["platform"] == "iOS"
    assert str(target["deploymentTarget"]) == "17.0" == str(spec["options"]["deploymentTarget"]["iOS"])
    sources = {s["path"]: s for s in target["sources"]}
    assert "Models" in sources[ios_demo.SOURCE_DIR]["excludes"]
    assert sources[ios_demo.MODELS_DIR]["type"] == "folder" and sources[ios_demo.MODELS_DIR]["buildPhase"] == "resources"
    _, configs, _ = _target_settings(pbx)
    for key, value in target["settings"]["base"].items():
        for config in configs:
            committed = config["buildSettings"][key]
            committed = " ".join(committed) if isinstance(committed, list) else committed
            assert committed == str(value), f"{key}: project.yml {value!r} vs project.pbxproj {committed!r}"
    for key in REQUIRED_PLIST_KEYS:
        assert key in target["settings"]["base"]


def test_readme_walks_from_training_to_the_phone():
    readme = (APP / "README.md").read_text(encoding="utf-8")
    for step in ("edge train", "edge export", "--format coreml", "edge ios install", "EdgeDemo.xcodeproj", "Signing"):
        assert step in readme, step
    assert "clothing" in readme.lower() and "not compiled" in readme.lower()


# --- installing a model -------------------------------------------------------------------


@pytest.fixture
def app_copy(tmp_path):
    app = tmp_path / "ios_demo"
    shutil.copytree(APP, app, ignore=shutil.ignore_patterns("*.mlpackage", "*.mlmodel", "*.mlmodelc"))
    return app


def test_install_rejects_what_is_not_a_package(app_copy, tmp_path):
    with pytest.raises(EdgeError, match="does not exist"):
        ios_demo.install(tmp_path / "nope.mlpackage", app_copy)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EdgeError, match="not a .mlpackage"):
        ios_demo.install(tmp_path / "empty", app_copy)
    (tmp_path / "half.mlpackage").mkdir()
    with pytest.raises(EdgeError, match="no Manifest.json"):
        ios_demo.install(tmp_path / "half.mlpackage", app_copy)
    exports = tmp_path / "exports"
    for name in ("a_fp16.mlpackage", "a_fp32.mlpackage"):
        (exports / name).mkdir(parents=True)
    with pytest.raises(EdgeError, match="holds 2 Core ML packages"):
        ios_demo.install(exports, app_copy)
    with pytest.raises(EdgeError, match="not the edge iOS demo app"):
        ios_demo.install(exports / "a_fp16.mlpackage", tmp_path)


# --- a real Core ML export, through the exporter the CLI uses -------------------------------


@pytest.fixture(scope="module")
def exported(export_set, trained_run):
    """(package path, spec, run identity) of the shared Core ML fp16 export of the synthetic-trained run."""
    from edge.rundir import open_run

    report, _ = export_set
    entry = next(e for e in report.entries if e.format == "coreml" and e.quantize == "fp16")
    assert entry.ok, entry.reason
    return Path(entry.path), open_run(trained_run).spec, report.run_id


def test_real_export_offers_everything_the_app_reads(exported):
    package, spec, run_dir = exported
    interface = ios_demo.read_interface(package)
    # ImageType input of the model's size, in a color layout Vision can fill.
    assert interface.inputs == {contract.COREML_INPUT: "imageType"}
    assert interface.image_size == tuple(spec.input_size)
    assert interface.color_space in ("RGB", "BGR")
    # Classifier outputs under the contract's names; labels in class-index order.
    assert interface.predicted_feature == contract.COREML_LABEL_OUTPUT
    assert interface.predicted_probabilities == contract.COREML_PROBS_OUTPUT
    assert set(interface.outputs) == {contract.COREML_LABEL_OUTPUT, contract.COREML_PROBS_OUTPUT}
    assert interface.labels == list(spec.labels) and len(spec.labels) > 1
    # Every metadata key the Swift code reads, with the values it expects.
    keys_read = ios_demo.swift_metadata_keys_read(APP)
    for swift_name, key in keys_read.items():
        assert key in interface.metadata, f"ModelContract.MetadataKey.{swift_name} ({key}) missing from the export"
    meta = interface.metadata
    h, w = spec.input_size
    assert json.loads(meta[contract.KEY_LABELS]) == list(spec.labels)
    assert meta[contract.KEY_INPUT_SIZE] == f"{h}x{w}"
    assert meta[contract.KEY_RESIZE] in ios_demo.VISION_CROP_AND_SCALE
    assert meta[contract.KEY_SOURCE_RUN] == run_dir and meta[contract.KEY_MODEL_VERSION] == spec.model_version
    assert json.loads(meta[contract.KEY_NORMALIZATION]) == spec.normalization.to_dict()
    assert ios_demo.app_compatibility_problems(interface, keys_read.values()) == []


def test_install_places_the_export_where_the_app_loads_it(exported, app_copy, tmp_path):
    package, spec, _ = exported
    models = app_copy / ios_demo.MODELS_DIR
    (models / "Old.mlpackage").mkdir()  # a previously installed model under another name
    folder = tmp_path / "export"  # an export folder holding one package
    shutil.copytree(package, folder / package.name)
    with pytest.raises(EdgeError, match="holds 3 Core ML packages"):
        ios_demo.install(package.parent, app_copy)  # the shared export: fp16, fp32, int8 -- which one?
    result = ios_demo.install(folder, app_copy)
    assert result.destination == models / ios_demo.INSTALLED_MODEL
    assert (result.destination / "Manifest.json").is_file()
    assert result.labels == list(spec.labels) and result.input_size == tuple(spec.input_size)
    assert result.replaced == ["Old.mlpackage"] and not (models / "Old.mlpackage").exists()
    assert ios_demo.read_interface(result.destination).labels == list(spec.labels)
    # The Swift side finds it by this name (BundledModel.preferredName + the folder reference).
    swift = (SOURCES / "BundledModel.swift").read_text(encoding="utf-8")
    assert f'preferredName = "{Path(ios_demo.INSTALLED_MODEL).stem}"' in swift
    assert f'folderName = "{Path(ios_demo.MODELS_DIR).name}"' in swift


def test_install_refuses_a_package_without_edge_metadata(exported, tmp_path, app_copy):
    package, _, _ = exported
    stripped = tmp_path / "stripped.mlpackage"
    shutil.copytree(package, stripped)
    spec_file = next(stripped.rglob("model.mlmodel"))
    from coremltools.proto import Model_pb2

    model_spec = Model_pb2.Model()
    model_spec.ParseFromString(spec_file.read_bytes())
    for key in [k for k in model_spec.description.metadata.userDefined if k.startswith("edge.")]:
        del model_spec.description.metadata.userDefined[key]
    spec_file.write_bytes(model_spec.SerializeToString())
    with pytest.raises(EdgeError, match=r"cannot drive the iOS demo app: metadata lacks .*edge\.labels"):
        ios_demo.install(stripped, app_copy)
    assert not (app_copy / ios_demo.MODELS_DIR / ios_demo.INSTALLED_MODEL).exists()


def test_export_hook_installs_the_best_passing_coreml_artifact(exported, app_copy, tmp_path):
    from types import SimpleNamespace

    package, spec, _ = exported
    failed = tmp_path / "m_fp16.mlpackage"
    shutil.copytree(package, failed)
    entries = [
        SimpleNamespace(format="tflite", quantize="fp16", path=str(tmp_path / "m_fp16.tflite"), ok=True),
        SimpleNamespace(format="coreml", quantize="fp16", path=str(failed), ok=False),  # over budget
        SimpleNamespace(format="coreml", quantize="palettize6", path=str(package), ok=True),
        SimpleNamespace(format="coreml", quantize="fp32", path=str(tmp_path / "gone.mlpackage"), ok=True),
    ]
    result = ios_demo.install_from_artifacts(entries, app_copy)
    assert result is not None and result.source == package
    assert ios_demo.install_from_artifacts(entries[:2], app_copy) is None


def test_cli_installs_and_checks_the_contract(exported, app_copy):
    from typer.testing import CliRunner

    from edge.cli import ios_cmd  # noqa: F401  (registers `edge ios`)
    from edge.cli.app import app

    package, spec, _ = exported
    runner = CliRunner()
    result = runner.invoke(app, ["ios", "install", str(package), "--app", str(app_copy)])
    assert result.exit_code == 0, result.output
    assert "Installed" in result.output and spec.labels[0] in result.output
    result = runner.invoke(app, ["ios", "contract", "--check", "--app", str(app_copy)])
    assert result.exit_code == 0 and "up to date" in result.output
