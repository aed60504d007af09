"""The house rules, read from the source: no import cycles, no streamlit in gapdemo/, no private reads,
and one owner of the run folder's file names (gapdemo/runs/)."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
RUN_FOLDER_FILES = ("config.json", "status.json", "metrics.csv", "batch_metrics.csv", "log.txt")


def source_files() -> list[pathlib.Path]:
    return sorted([*ROOT.glob("gapdemo/**/*.py"), *ROOT.glob("dashboard/**/*.py"), ROOT / "app.py"])


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: pathlib.Path, module: str) -> set[str]:
    """Every module path an import statement anywhere in the file names (inside functions too)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in source_files()}
    graph = {}
    for module, path in modules.items():
        edges = set()
        for name in imported_names(path, module):
            while name and name not in modules:
                name = name.rpartition(".")[0]
            # a package's __init__ imported by its own submodule is part of the same unit
            if name and name != module and not module.startswith(name + "."):
                edges.add(name)
        graph[module] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle as a list of modules (first == last), or None; depth-first search with colours."""
    colour = dict.fromkeys(graph, "white")
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        colour[module] = "grey"
        stack.append(module)
        for target in sorted(graph[module]):
            if colour[target] == "grey":
                return stack[stack.index(target):] + [target]
            if colour[target] == "white" and (cycle := visit(target)):
                return cycle
        stack.pop()
        colour[module] = "black"
        return None

    for module in sorted(graph):
        if colour[module] == "white" and (cycle := visit(module)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles_among_gapdemo_dashboard_and_the_app():
    graph = import_graph()
    assert {"gapdemo.training.trainer", "gapdemo.training.job", "dashboard.sidebar", "app"} <= set(graph)
    assert "gapdemo.model.backends" in graph["gapdemo.validation"]  # imports inside functions count too
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


# The house from the ground up: a package (or loose module) may import only what stands below it. A new
# package or loose module must be given its place here, which is the point: someone decides where it lives.
LAYERS = (
    "gapdemo.units", "gapdemo.settings", "gapdemo.config", "gapdemo.quiet", "gapdemo.serving", "gapdemo.model",
    "gapdemo.runs", "gapdemo.operator", "gapdemo.budget", "gapdemo.data", "gapdemo.images", "gapdemo.validation",
    "gapdemo.insight", "gapdemo.training", "gapdemo.charts", "gapdemo.export", "gapdemo.cluster", "gapdemo.sweep",
    "gapdemo.claims", "gapdemo.jobs", "gapdemo.commands", "gapdemo.cli", "gapdemo.__main__", "dashboard", "app",
)


def package_of(module: str) -> str:
    """gapdemo.data.cache -> gapdemo.data; a loose module (gapdemo.config) and dashboard.* stand for themselves."""
    parts = module.split(".")
    if parts[0] in ("dashboard", "app"):
        return parts[0]
    if len(parts) >= 2 and (ROOT / "gapdemo" / parts[1]).is_dir():
        return ".".join(parts[:2])
    return module


def package_graph(graph: dict[str, set[str]]) -> dict[str, dict[str, set[str]]]:
    """package -> imported package -> the module imports that make the arrow (for the failure message)."""
    arrows: dict[str, dict[str, set[str]]] = {}
    for module, targets in graph.items():
        for target in targets:
            source, destination = package_of(module), package_of(target)
            if source != destination and "gapdemo" not in (source, destination):  # the root: its own test
                arrows.setdefault(source, {}).setdefault(destination, set()).add(f"{module} -> {target}")
    return arrows


def upward_arrows(arrows: dict[str, dict[str, set[str]]], layers: tuple[str, ...]) -> list[str]:
    rank = {name: index for index, name in enumerate(layers)}
    return sorted(f"{source} imports {destination} above it: {sorted(modules)[0]}"
                  for source, targets in arrows.items() for destination, modules in targets.items()
                  if rank[destination] >= rank[source])


def test_the_layer_check_finds_a_planted_upward_import():
    arrows = package_graph({"gapdemo.data.cache": {"gapdemo.training.trainer"}, "gapdemo.training.trainer": set()})
    assert upward_arrows(arrows, LAYERS) == [
        "gapdemo.data imports gapdemo.training above it: gapdemo.data.cache -> gapdemo.training.trainer"]
    assert upward_arrows(package_graph({"gapdemo.training.trainer": {"gapdemo.data.cache"}}), LAYERS) == []


def test_every_package_has_its_layer_and_imports_only_below_it():
    """No two packages import each other (the Ray code once made training and sweep do so), nor any upward."""
    arrows = package_graph(import_graph())
    packages = set(arrows) | {target for targets in arrows.values() for target in targets}
    assert {"gapdemo.cluster", "gapdemo.sweep", "gapdemo.training", "dashboard"} <= packages
    assert packages - {"gapdemo"} <= set(LAYERS), f"give these a place in LAYERS: {packages - set(LAYERS)}"
    both_ways = sorted(f"{a} <-> {b}" for a in arrows for b in arrows[a] if a in arrows.get(b, {}))
    assert both_ways == []
    assert upward_arrows(arrows, LAYERS) == []


@pytest.mark.parametrize("path", sorted(ROOT.glob("gapdemo/**/*.py")), ids=lambda p: module_name(p))
def test_gapdemo_never_imports_streamlit(path):
    names = imported_names(path, module_name(path))
    assert not any(name == "streamlit" or name.startswith("streamlit.") for name in names)


def test_no_module_reads_another_modules_private_members():
    offenders = []
    for path in source_files():
        tree = ast.parse(path.read_text())
        # our own modules only: the page deliberately patches one of streamlit's (dashboard/common.py says why;
        # tests/test_streamlit_patch.py fails when an upgrade drops it, and streamlit is capped below 2)
        imported_modules = {alias.asname or alias.name.split(".")[-1]
                            for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                            for alias in node.names
                            if (getattr(node, "module", None) or alias.name).startswith(("gapdemo", "dashboard"))}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(("gapdemo", "dashboard")):
                offenders += [f"{path.name}: from {node.module} import {a.name}" for a in node.names
                              if a.name.startswith("_")]
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in imported_modules and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                offenders.append(f"{path.name}: {node.value.id}.{node.attr}")
    assert offenders == []


def test_the_packages_show_the_architecture_and_few_modules_stand_loose():
    """A newcomer sees what belongs together: data, model, training, jobs, insight, runs, claims, sweep, commands."""
    packages = {path.parent.name for path in ROOT.glob("gapdemo/*/__init__.py")}
    assert {"data", "model", "training", "jobs", "insight", "runs", "claims", "sweep", "commands", "cluster",
            "budget"} <= packages
    loose = sorted(path.name for path in ROOT.glob("gapdemo/*.py"))
    assert len(loose) <= 12, loose


def test_no_class_runs_over_150_lines():
    """A class that long does several jobs (the Trainer once did five in 251 lines)."""
    longest = {}
    for path in source_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                longest[f"{module_name(path)}.{node.name}"] = node.end_lineno - node.lineno + 1
    assert "gapdemo.training.trainer.Trainer" in longest
    assert {name: lines for name, lines in longest.items() if lines > 150} == {}


def test_benchmark_only_paths_stay_in_benchmarks():
    """The product neither imports the benchmarks nor carries a switch that only they use."""
    offenders = []
    for path in source_files():
        text = path.read_text()
        if "engine_baseline" in text or "engine-baseline" in text:
            offenders.append(f"{path.relative_to(ROOT)}: the engine baseline")
        if any(name == "benchmarks" or name.startswith("benchmarks.")
               for name in imported_names(path, module_name(path))):
            offenders.append(f"{path.relative_to(ROOT)}: imports benchmarks")
    assert offenders == []
    assert "BaselineTrainer" in (ROOT / "benchmarks" / "baseline.py").read_text()


def test_only_runs_py_names_the_run_folders_files():
    """Every read and write of a run folder's files goes through gapdemo.runs."""
    offenders = []
    for path in source_files():
        if (ROOT / "gapdemo" / "runs") in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in RUN_FOLDER_FILES:
                offenders.append(f"{path.relative_to(ROOT)}: {node.value!r}")
    assert offenders == []


def environment_reads(tree: ast.AST):
    """(key expression, line) of every read of the environment: os.environ[key], <x>.environ.get(key),
    os.getenv(key), environ.get(key) and `key in os.environ`; writes (environ[key] = ...) are not reads."""
    def is_environ(node) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
            isinstance(node, ast.Name) and node.id == "environ")

    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and is_environ(node.value):
            yield node.slice, node.lineno
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            if (node.func.attr in ("get", "pop", "setdefault") and is_environ(node.func.value)) or (
                    node.func.attr == "getenv" and isinstance(node.func.value, ast.Name) and node.func.value.id == "os"):
                yield node.args[0], node.lineno
        elif isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops) and any(
                is_environ(comparator) for comparator in node.comparators):
            yield node.left, node.lineno


def names_of_gapdemo_variables(trees) -> set[str]:
    """Module-level names bound to a GAPDEMO_* name: NAME = "GAPDEMO_..." or NAME = settings.SETTING.name."""
    names = set()
    for tree in trees:
        for node in tree.body:
            if not isinstance(node, ast.Assign):
                continue
            values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
            targets = [t for target in node.targets for t in (target.elts if isinstance(target, ast.Tuple) else [target])]
            for target, value in zip(targets, values * len(targets) if len(values) == 1 else values, strict=False):
                if isinstance(target, ast.Name) and (
                        (isinstance(value, ast.Constant) and str(value.value).startswith("GAPDEMO_"))
                        or (isinstance(value, ast.Attribute) and value.attr == "name")):
                    names.add(target.id)
    return names


def gapdemo_variable_reads(sources: dict[str, str]) -> list[str]:
    """'file:line' of each read of a GAPDEMO_* variable, by its string or by a name bound to it."""
    trees = {name: ast.parse(text) for name, text in sources.items()}
    variable_names = names_of_gapdemo_variables(trees.values())
    offenders = []
    for name, tree in trees.items():
        for key, line in environment_reads(tree):
            text = ast.unparse(key)
            if "GAPDEMO_" in text or (isinstance(key, ast.Name) and key.id in variable_names) or (
                    isinstance(key, ast.Attribute) and key.attr in variable_names | {"name"}):
                offenders.append(f"{name}:{line}: {text}")
    return offenders


def test_the_variable_read_check_finds_planted_reads():
    planted = {"a.py": 'import os\nX = "GAPDEMO_X"\nos.environ.get("GAPDEMO_Y")\nos.getenv(X)\n',
               "b.py": 'import os\nfrom a import X\nif X in os.environ:\n    os.environ[X]\nos.environ[X] = "1"\n',
               "c.py": 'import os\nos.environ.get("HOME")\nos.environ["PATH"] = "/bin"\n'}
    assert gapdemo_variable_reads(planted) == [
        'a.py:3: \'GAPDEMO_Y\'', "a.py:4: X", "b.py:3: X", "b.py:4: X"]


def test_only_settings_reads_gapdemo_variables():
    """Every GAPDEMO_* variable is read in gapdemo/settings.py, by one rule each; others may only write them
    (a child process's environment)."""
    sources = {str(path.relative_to(ROOT)): path.read_text() for path in source_files()
               if path != ROOT / "gapdemo" / "settings.py"}
    assert gapdemo_variable_reads(sources) == []


def test_settings_is_a_leaf():
    path = ROOT / "gapdemo" / "settings.py"
    assert not [name for name in imported_names(path, "gapdemo.settings") if name.split(".")[0] == "gapdemo"]


def test_no_module_runs_over_300_lines():
    """A longer module holds several concerns (charts.py once drew curves, probes, parameters and results)."""
    lengths = {str(path.relative_to(ROOT)): len(path.read_text().splitlines())
               for path in [*ROOT.glob("gapdemo/**/*.py"), *ROOT.glob("dashboard/**/*.py")]}
    assert "gapdemo/charts/curves.py" in lengths
    assert {name: count for name, count in lengths.items() if count > 300} == {}
