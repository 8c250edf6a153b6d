"""Layers: what each part of triune imports, checked in fresh interpreters and by reading the code."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "triune_data"


def test_data_side_never_imports_torch_or_the_math_stack():
    """triune_data stays light: building or validating a dataset must not import torch (or sympy)."""
    code = (
        "import sys\n"
        "import triune_data.build, triune_data.inspect, triune_data.export, triune_data.hub\n"
        "import triune_data.sources, triune_data.verifiers\n"
        "from triune_data.verifiers import params_json\n"
        "params_json('math', {}); params_json('detection', {})\n"
        "bad = [m for m in ('torch', 'transformers', 'sympy', 'math_verify') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("heavy", ["pyarrow", "torch", "triune_data.schema", "triune_data.writer"])
def test_verifiers_and_reward_workers_stay_light(heavy):
    """Reward workers import the verifiers and the pool only: no storage layer, no torch."""
    code = (
        "import sys\n"
        "import triune_data.verifiers, triune_train.rewards.pool\n"
        f"assert {heavy!r} not in sys.modules, sorted(m for m in sys.modules if m.startswith({heavy!r}))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def imported_modules(path: Path) -> set[str]:
    """Every module an import statement anywhere in `path` names (lazy imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(DATA.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_data_modules_never_import_the_training_side(path):
    reaching_up = {m for m in imported_modules(path) if m == "triune_train" or m.startswith("triune_train.")}
    assert not reaching_up, f"{path.relative_to(ROOT)} imports {sorted(reaching_up)}"


def top_level_imports(path: Path, package: str) -> set[str]:
    """Modules of `package` imported when `path` is imported (module level, outside TYPE_CHECKING)."""
    out = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in out if m.startswith(package + ".")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_import_cycles_between_modules():
    """Module-level imports among triune_data and triune_train form no cycle (a package importing
    its own submodules to register them is not a cycle through the submodule)."""
    paths = [*DATA.rglob("*.py"), *(ROOT / "triune_train").rglob("*.py")]
    modules = {module_name(p): p for p in paths}
    graph = {
        name: {
            m for pkg in ("triune_data", "triune_train") for m in top_level_imports(p, pkg) if m in modules
        }
        for name, p in modules.items()
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep) :], dep]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if dep not in state:
                visit(dep, [*path, dep])
        state[name] = 2

    for name in sorted(modules):
        if name not in state:
            visit(name, [name])
