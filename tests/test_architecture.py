"""The package's shape: imports flow one way between the wings, with no cycle, lazy
imports included, and each wing names its surface."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from types import ModuleType

import infer_cli

PACKAGE = Path(infer_cli.__file__).parent
# Each wing may import only from the wings after it in this order; `cli` is the top.
LAYERS = [
    {"__main__"},
    {"cli"},
    {"report"},
    {"batch", "serve", "training", "benchmarking"},
    # loadgen is the bench engine's HTTP client: it knows no model.
    {"core", "tables", "loadgen"},
    {"errors", "choices", "timing", "__init__"},
]
WINGS = ("core", "tables", "batch", "serve", "report")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every infer_cli module `path` imports, at the top or inside a function."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("infer_cli"):
                found.add(target)
                # `from . import protocol` imports a module, not a name.
                for alias in node.names:
                    candidate = f"{target}.{alias.name}"
                    if _exists(candidate):
                        found.add(candidate)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("infer_cli"))
    found.discard(name)
    return {module for module in found if _exists(module)}


def _exists(module: str) -> bool:
    relative = Path(*module.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").exists() or (
        PACKAGE / relative / "__init__.py"
    ).exists()


def _graph() -> dict[str, set[str]]:
    return {_module_name(path): _imports(path) for path in PACKAGE.rglob("*.py")}


def _wing(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(wing: str) -> int:
    return next(index for index, layer in enumerate(LAYERS) if wing in layer)


def test_the_package_has_no_import_cycle() -> None:
    graph = _graph()
    # A module imports its package's __init__ implicitly; an __init__ that imports its own
    # modules lazily or eagerly is not a cycle with them, so packages are left out.
    edges = {
        module: {t for t in targets if not _is_package(t) and t != module}
        for module, targets in graph.items()
        if not _is_package(module)
    }
    cycle = _find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_imports_flow_one_way_between_wings() -> None:
    wrong = []
    for module, targets in _graph().items():
        for target in targets:
            source_wing, target_wing = _wing(module), _wing(target)
            if source_wing == target_wing:
                continue
            if _layer(target_wing) <= _layer(source_wing):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "imports against the flow:\n" + "\n".join(sorted(wrong))


def test_nothing_below_the_command_line_imports_typer() -> None:
    offenders = [
        _module_name(path)
        for path in PACKAGE.rglob("*.py")
        if path.name != "cli.py" and "typer" in _third_party_imports(path)
    ]
    assert offenders == []


def test_each_wing_names_its_surface_and_every_name_exists() -> None:
    for wing in WINGS:
        module = importlib.import_module(f"infer_cli.{wing}")
        surface = getattr(module, "__all__", None)
        assert surface, f"infer_cli.{wing} has no __all__"
        for name in surface:
            value = getattr(module, name, None)
            # A name shared with a submodule is shadowed by it once that is imported.
            assert value is not None and not isinstance(value, ModuleType), f"{wing}.{name}"


def test_modules_stay_small_and_few_sit_at_the_top() -> None:
    top = [path.name for path in PACKAGE.glob("*.py")]
    assert len(top) <= 12, top
    # cli.py is the declarations of options with their help and examples, which grow with
    # them, and one engine call per command.
    long = {
        _module_name(path): lines
        for path in PACKAGE.rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > 500 and path.name != "cli.py"
    }
    assert long == {}


def _is_package(module: str) -> bool:
    return (PACKAGE / Path(*module.split(".")[1:]) / "__init__.py").exists()


def _third_party_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def _find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for target in sorted(edges.get(node, ())):
            cycle = visit(target)
            if cycle:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for start in sorted(edges):
        cycle = visit(start)
        if cycle:
            return cycle
    return None


def test_names_taken_from_a_wing_are_on_its_surface() -> None:
    # A wing's names are looked up lazily, so a type checker cannot see a missing one.
    surfaces = {
        f"infer_cli.{wing}": set(importlib.import_module(f"infer_cli.{wing}").__all__)
        for wing in WINGS
    }
    missing = []
    for path in [*PACKAGE.rglob("*.py"), *PACKAGE.parent.joinpath("tests").rglob("*.py")]:
        for target, names in _names_imported(path):
            if target in surfaces:
                unknown = {n for n in names - surfaces[target] if not _exists(f"{target}.{n}")}
                missing += [f"{path.name}: {target}.{name}" for name in sorted(unknown)]
    assert missing == []


def _names_imported(path: Path) -> list[tuple[str, set[str]]]:
    inside = PACKAGE in path.parents
    package = (
        _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    )
    package = package if inside else ""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.level:
                base = package.split(".")
                target = ".".join([*base[: len(base) - node.level + 1], node.module])
            else:
                target = node.module
            found.append((target, {alias.name for alias in node.names}))
    return found


def test_the_choices_import_nothing_heavy() -> None:
    # The command line builds its options from them before any command runs.
    assert _third_party_imports(PACKAGE / "choices.py") <= {"__future__", "typing"}
