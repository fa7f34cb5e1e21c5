"""The package layout: stage subpackages in layers, no import cycles, light ``__init__``s."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import sklearn_overseg

PACKAGE_DIR = Path(sklearn_overseg.__file__).parent
# The napari plugin needs napari and Qt to import; it is checked statically only.
OPTIONAL = ("sklearn_overseg.napari",)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py")) if p.name != "__main__.py"
    }


def _import_time_imports(path: Path, name: str) -> set[str]:
    """Package modules ``name`` imports when it is imported (not inside functions)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue  # runs later, when called: a lazy import breaks no cycle
            if isinstance(child, ast.ImportFrom):
                base = package.split(".")
                if child.level:
                    base = base[: len(base) - child.level + 1]
                    module = ".".join([*base, *([child.module] if child.module else [])])
                else:
                    module = child.module or ""
                found.add(module)
                found.update(f"{module}.{alias.name}" for alias in child.names)
            elif isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    modules = _modules()
    edges = set()
    for module in found:
        parts = module.split(".")
        # importing a.b.c runs a, a.b and a.b.c
        edges.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return {m for m in edges if m in modules and m != name}


def test_every_package_directory_is_a_package():
    # setuptools' find_packages only ships directories with an __init__.py
    for path in PACKAGE_DIR.rglob("*.py"):
        assert (path.parent / "__init__.py").is_file(), path.parent


def test_no_import_cycles():
    graph = {name: _import_time_imports(path, name) for name, path in _modules().items()}
    done: set[str] = set()

    def visit(name: str, stack: list[str]) -> None:
        if name in stack:
            cycle = [*stack[stack.index(name) :], name]
            pytest.fail(f"import cycle: {' -> '.join(cycle)}")
        if name in done:
            return
        for other in sorted(graph[name]):
            visit(other, [*stack, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_every_module_imports_on_its_own():
    """Each module imported first, with none of the package loaded (cycles would fail)."""
    names = [n for n in _modules() if not n.startswith(OPTIONAL)]
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    for loaded in [m for m in sys.modules if m.split('.')[0] == 'sklearn_overseg']:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        print(f'{name}: {type(exc).__name__}: {exc}')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""


def test_subpackages_import_nothing_heavy():
    # the stage subpackages' __init__ only document them; io re-exports io.volumes lazily
    packages = sorted(
        name for name, path in _modules().items() if path.name == "__init__.py" and "." in name
    )
    packages = [p for p in packages if not p.startswith(OPTIONAL) and p != "sklearn_overseg.cli"]
    code = (
        "import importlib, sys\n"
        f"for name in {packages!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in ('numpy', 'sklearn', 'torch', 'pandas') if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert proc.stdout.strip() == "[]"


def test_io_reexports_the_volume_functions():
    from sklearn_overseg import io
    from sklearn_overseg.io import load_volume, open_volume, save_volume, volumes

    assert (load_volume, open_volume, save_volume) == (
        volumes.load_volume,
        volumes.open_volume,
        volumes.save_volume,
    )
    assert set(io.__all__) == set(volumes.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        io.nothing  # noqa: B018


def test_public_names_live_in_the_modules_the_exports_table_names():
    for name, module in sklearn_overseg._EXPORTS.items():
        obj = getattr(sklearn_overseg, name)
        if hasattr(obj, "__module__") and not isinstance(obj, dict | tuple):
            assert obj.__module__ == f"sklearn_overseg.{module}", name
