"""Package edges: what each part of octo may import. Training must not depend on the analysis (a run needs no
study code), and the class names live with the data. Each check runs in a fresh interpreter, so that modules
imported by other tests cannot hide a dependency."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _fresh(code: str) -> dict:
    """Run ``code`` in a new interpreter at the repository root; it prints one JSON object, returned here."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_training_loggers_do_not_import_the_analysis():
    # also render the W&B specialization heatmap and its class labels: both were imported from the analysis
    loaded = _fresh(
        "import json, sys\n"
        "from octo.training import loggers\n"
        "names = loggers._class_names(10, 'cifar10')\n"
        "rgba = loggers._heatmap_rgba({'arm0': [0.9, 0.1] * 5, 'arm1': [0.2, 0.8] * 5}, names)\n"
        "assert names[0] == 'airplane' and rgba.ndim == 3 and rgba.shape[2] == 4\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('octo.'))))\n")
    assert "octo.training.loggers" in loaded
    assert not [m for m in loaded if m == "octo.analysis" or m.startswith("octo.analysis.")]


def test_class_names_are_read_without_torch():
    loaded = _fresh("import json, sys\nfrom octo.data.classes import CIFAR10_CLASSES\n"
                    "print(json.dumps({'torch': 'torch' in sys.modules, 'n': len(CIFAR10_CLASSES)}))\n")
    assert loaded == {"torch": False, "n": 10}


# --- import cycles ------------------------------------------------------------------------------------------------
SUBPACKAGES = sorted(p.parent.relative_to(ROOT).as_posix().replace("/", ".")
                     for p in (ROOT / "octo").rglob("__init__.py"))


def _modules(package: str) -> list[str]:
    """``package`` and its own modules (not those of its subpackages, which are checked on their own)."""
    folder = ROOT / package.replace(".", "/")
    return [package, *(f"{package}.{p.stem}" for p in sorted(folder.glob("*.py")) if p.stem != "__init__")]


@pytest.mark.parametrize("package", SUBPACKAGES)
def test_every_module_imports_first_in_a_fresh_interpreter(package):
    # a cycle shows only when one of its modules is imported first: each module of the subpackage is imported
    # with every octo module forgotten before it (torch and the other libraries stay loaded, so this is fast)
    code = ("import importlib, json, sys\n"
            f"names = {_modules(package)!r}\n"
            "failed = {}\n"
            "for name in names:\n"
            "    for loaded in [m for m in sys.modules if m == 'octo' or m.startswith('octo.')]:\n"
            "        del sys.modules[loaded]\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except Exception as err:\n"
            "        failed[name] = f'{type(err).__name__}: {err}'\n"
            "print(json.dumps(failed))\n")
    assert _fresh(code) == {}


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The octo modules ``path`` imports, at its top or inside functions (lazy imports count: they form a cycle
    as much as top-level ones do), but not under ``if TYPE_CHECKING:``."""
    found: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            test = node.test
            if getattr(test, "id", None) == "TYPE_CHECKING" or getattr(test, "attr", None) == "TYPE_CHECKING":
                for child in node.orelse:
                    self.visit(child)
                return
            self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            found.update(a.name for a in node.names)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.module and not node.level:
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)

    Visitor().visit(ast.parse(path.read_text()))
    return found & modules


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _import_graph() -> dict[str, set[str]]:
    files = {}
    for path in (ROOT / "octo").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return {name: _imports(path, set(files)) - {name} for name, path in files.items()}


def _package(module: str) -> str:
    """The unit of the layering: ``octo.<subpackage>``, with the OctopusNet study as its own unit."""
    depth = 3 if module.startswith("octo.analysis.octopus") else 2
    return ".".join(module.split(".")[:depth])


def test_no_import_cycles_between_modules_or_packages():
    graph = _import_graph()
    assert _cycles(graph) == []
    packages: dict[str, set[str]] = {}
    for module, deps in graph.items():
        own = _package(module)
        packages.setdefault(own, set()).update(_package(d) for d in deps if _package(d) != own)
    assert _cycles(packages) == []
    # the edges the layering rests on
    assert "octo.algorithms" not in packages["octo.evaluation"]          # only a type hint there: TYPE_CHECKING
    assert not {"octo.analysis", "octo.analysis.octopus"} & packages["octo.training"]
    assert "octo.analysis.octopus" not in packages["octo.analysis"]      # the generic tools know no study


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
