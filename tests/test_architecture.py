"""The house rules, checked: three stage rooms over one core, arrows pointing down, no cycles,
and no format named as a string outside its own module and the registry."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# package -> folder, as pyproject's package-dir maps them
ROOMS = {"edge.train": ROOT / "train", "edge.export": ROOT / "export", "edge.bench": ROOT / "benchmarks"}
CORE = ROOT / "src" / "edge"
APP = ("edge.cli", "edge.__main__")  # the command line sits above the stages and may import them
STAGES = tuple(ROOMS)


def _modules() -> dict[str, Path]:
    found = {}
    for path in CORE.rglob("*.py"):
        rel = path.relative_to(CORE).with_suffix("")
        parts = ["edge", *rel.parts]
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    for package, folder in ROOMS.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            if rel.parts and rel.parts[0] == "scripts":  # measurement scripts, not installed
                continue
            parts = [*package.split("."), *rel.parts]
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _imports(path: Path, module: str) -> set[str]:
    """Every edge module ``path`` imports, at module level or inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return {n for n in names if n in MODULES}


GRAPH = {module: _imports(path, module) for module, path in MODULES.items()}


def _room(module: str) -> str:
    for prefix in (*STAGES, *APP):
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    return "edge" if module != "edge" else "edge.__init__"


def test_the_three_stages_are_packages_in_their_rooms():
    for package, folder in ROOMS.items():
        assert (folder / "__init__.py").is_file(), f"{package} has no __init__ in {folder}"
    assert any(m.startswith("edge.bench.") for m in MODULES), "the bench harness lives in benchmarks/"
    assert not (CORE / "bench").exists() and not (CORE / "train").exists() and not (CORE / "export").exists()


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _room(m) == "edge"))
def test_the_core_imports_no_stage_and_no_cli(module):
    upward = sorted(i for i in GRAPH[module] if _room(i) in (*STAGES, *APP))
    assert not upward, f"{module} (core) imports {upward}"


def test_stages_do_not_import_the_cli():
    for module, imports in GRAPH.items():
        if _room(module) in STAGES:
            assert not [i for i in imports if _room(i) in APP], module


def test_no_import_cycles():
    """Between modules (a package's __init__ re-exporting its own sub-modules is not a cycle)."""

    def edges(module: str) -> set[str]:
        return {i for i in GRAPH[module] if i != module and not i.startswith(module + ".")}

    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(edges(module)):
            if state.get(target) == 1:
                cycle = stack[stack.index(target):] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


FORMAT_NAMES = "tflite|onnx|coreml|keras"
COMPARISON = re.compile(rf"""(==|!=)\s*["']({FORMAT_NAMES})["']|["']({FORMAT_NAMES})["']\s*(==|!=)|in\s*\(\s*["']({FORMAT_NAMES})["']""")


def test_no_format_is_compared_as_a_string_outside_its_module():
    offenders = []
    for module, path in MODULES.items():
        if module.startswith("edge.export.formats") or module == "edge.formats":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if COMPARISON.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "ask the format's record instead:\n" + "\n".join(offenders)


def test_every_registered_format_has_a_complete_record():
    from edge import formats

    for fmt in formats.all_formats():
        assert fmt.suffix.startswith(".") and fmt.display_name and callable(fmt.load) and callable(fmt.read_metadata)
        assert set(fmt.default_quantize) <= set(fmt.quantize_kinds)
        assert all(kind in fmt.budgets for kind in fmt.quantize_kinds), fmt.name
    assert formats.reference().name not in formats.names()  # the reference is no --format target


def test_stage_packages_are_packages_and_api_functions():
    import edge
    import edge.export.gate
    import edge.train

    assert edge.train.TrainConfig is not None and callable(edge.train)
    from edge import bench, export, train

    assert callable(train) and callable(export) and callable(bench)
    assert edge.export.gate.export_one is not None


def test_keras_is_refused_as_an_export_format():
    from edge.errors import EdgeError
    from edge.export.plan import ExportSettings, make_plan

    with pytest.raises(EdgeError, match="reference format"):
        make_plan(ExportSettings(formats=("keras",)))
