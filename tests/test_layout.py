"""The whiteboard rules, checked on every import of the source: dependencies point one way. `common/` knows no
architecture; `models/` (architectures and layers) imports only `common/`; `runtimes/` and `train/` (the method
driver) build on `models/`; a method folder uses those and never another method folder; `benchmark/` measures
checkpoints (no method code); `plots/` reads CSVs (and the registry's names of configurations); `study/` runs every
CLI as a separate process and imports none of the methods."""
import ast

from tests.conftest import ROOT

METHODS = {"distillation", "fitnets", "lowrank", "pruning_fisher", "pruning_l1", "pruning_weight", "quantization"}
ALLOWED = {
    "common": {"common"},
    "models": {"common", "models"},
    "runtimes": {"common", "models", "runtimes"},
    "train": {"common", "models", "train"},
    "benchmark": {"common", "models", "runtimes", "benchmark"},
    "plots": {"common", "plots", "study"},
    "study": {"common", "models", "benchmark", "study"},
    **{m: {"common", "models", "runtimes", "train", m} for m in METHODS},
}
PROJECT = set(ALLOWED) | {"scripts", "tests"}


def project_imports(path):
    """(line, top-level project package) of every import in a file, function-level imports included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
        found += [(node.lineno, n.split(".")[0]) for n in names if n.split(".")[0] in PROJECT]
    return found


def test_dependencies_point_one_way():
    bad, files = [], 0
    for folder, allowed in ALLOWED.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            files += 1
            bad += [f"{path.relative_to(ROOT)}:{line} imports {pkg}" for line, pkg in project_imports(path)
                    if pkg not in allowed]
    assert not bad, bad
    assert files > 60


def test_plots_read_only_the_registry_of_the_study():
    """The configurations' names come from study/registry.py; the engine (which starts processes) stays out of
    plots, and the registry imports no project module at import time."""
    bad = [f"{p.relative_to(ROOT)}:{line}" for p in sorted((ROOT / "plots").rglob("*.py"))
           for line, mod in module_imports(p) if mod.startswith("study") and mod != "study.registry"]
    assert not bad, bad
    registry = ast.parse((ROOT / "study" / "registry.py").read_text())
    top = [n for n in registry.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not [n for n in top if isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] in PROJECT]


def module_imports(path):
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return found


def test_models_holds_architectures_and_layers_only():
    """No driver, runtime or int8 engine left in models/: its modules are the ones a checkpoint is rebuilt from,
    plus the two that bring in foreign weights."""
    names = {p.stem for p in (ROOT / "models").glob("*.py")}
    assert names == {"__init__", "registry", "resnet", "lowrank_layers", "quant_layers", "fold", "surgery", "convert",
                     "pretrained"}, names
    assert not (ROOT / "models" / "__init__.py").read_text().count("noqa: E402")  # no late import for registration
