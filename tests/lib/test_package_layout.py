"""The package's architecture, as BUILD.md ("Architecture") states it: subpackages in layers whose import directions
import-linter enforces (shown failing on planted upward and sibling imports), no import cycle, every folder a
package whose __init__ loads nothing, and no module grown past 400 lines without a stated reason."""

import ast
import os
import pathlib
import shutil
import subprocess
import sys

import pytest
from conftest import REPO_ROOT
from conftest import skip_unless_ci

PACKAGE = pathlib.Path(REPO_ROOT) / "colorgan"
SUBPACKAGES = ("core", "data", "modeling", "evaluation", "training", "inference", "serving", "demo", "tools")
MAX_MODULE_LINES = 400
# Modules allowed past MAX_MODULE_LINES, each with the reason it is one module.
LONG_MODULES = {}


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def _imported_colorgan_modules(path):
    """Every colorgan module `path` imports, at the top or inside a function ("from colorgan.x import y" names the
    module colorgan.x.y when that is a module, else colorgan.x)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("colorgan"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if _module_path(candidate) else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("colorgan"))
    return found


def _module_path(name):
    base = pathlib.Path(REPO_ROOT, *name.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.exists()), None)


def _name(path):
    return ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")


def test_every_folder_is_a_subpackage_of_the_layers_with_an_empty_init():
    """A folder without __init__.py is skipped by import-linter's graph (without a warning) and left out of the
    wheel by `packages = find:`; an __init__ that imports would load TensorFlow into data prep's workers."""
    folders = {path.parent for path in _modules()}
    assert {folder.name for folder in folders if folder != PACKAGE} == set(SUBPACKAGES)
    for folder in folders:
        init = folder / "__init__.py"
        assert init.exists(), f"{folder} has no __init__.py"
        if folder != PACKAGE:
            assert init.read_text() == "", f"{init} is not empty"


def test_no_test_folder_shadows_the_package():
    """tests/ is on sys.path (pytest's pythonpath): a folder there named colorgan, without __init__.py, becomes the
    package itself wherever the repository root is not on the path (the editable install finds colorgan by a meta
    path finder, which a namespace package on sys.path beats)."""
    assert not list(pathlib.Path(REPO_ROOT, "tests").rglob("colorgan"))


def test_no_test_module_imports_another():
    """Test modules live in several folders, so one importing another works only when pytest happened to put that
    folder on sys.path first: helpers shared by tests live at the top of tests/ (conftest, run_dirs, ...)."""
    importers = {}
    for path in pathlib.Path(REPO_ROOT, "tests").rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            if any(name.split(".")[0].startswith("test_") for name in names):
                importers[path.name] = names
    assert not importers, importers


def test_importing_every_subpackage_loads_no_tensorflow():
    code = (f"import sys; import {', '.join(f'colorgan.{name}' for name in SUBPACKAGES)}; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert result.stdout.strip() == "[]"


def test_no_module_is_over_400_lines_without_a_reason():
    lengths = {path.relative_to(REPO_ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
               for path in _modules()}
    assert len(lengths) >= 50
    too_long = {path: lines for path, lines in lengths.items() if lines > MAX_MODULE_LINES and path not in LONG_MODULES}
    assert not too_long, too_long
    assert set(LONG_MODULES) <= set(lengths), "a listed long module no longer exists"


def test_there_is_no_import_cycle():
    """Between any two modules, lazy (function-level) imports included: a cycle hidden in a function is still one."""
    graph = {_name(path): {name for name in _imported_colorgan_modules(path) if name != _name(path)}
             for path in _modules()}
    assert len(graph) >= 50
    visiting, done, cycles = [], set(), []

    def visit(module):
        if module in visiting:
            cycles.append(visiting[visiting.index(module):] + [module])
            return
        if module in done:
            return
        visiting.append(module)
        for imported in sorted(graph.get(module, ())):
            visit(imported)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
    assert not cycles, cycles


def _lint_imports(root):
    """lint-imports (import-linter) on the package under `root`, with setup.cfg's contracts."""
    executable = shutil.which("lint-imports", path=os.path.dirname(sys.executable)) or shutil.which("lint-imports")
    if executable is None:
        skip_unless_ci("import-linter is not installed (pip install -e '.[lint]')")
    return subprocess.run([executable, "--config", os.path.join(REPO_ROOT, "setup.cfg"), "--no-cache"],
                          capture_output=True, text=True, cwd=root, env=dict(os.environ, PYTHONPATH=str(root)))


@pytest.fixture
def package_copy(tmp_path):
    shutil.copytree(PACKAGE, tmp_path / "colorgan", ignore=shutil.ignore_patterns("__pycache__", "static"))
    return tmp_path


def _plant(root, module, line):
    path = root.joinpath("colorgan", *module.split(".")[1:]).with_suffix(".py")
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")


def test_the_layers_contract_holds_on_the_package(package_copy):
    result = _lint_imports(package_copy)
    assert result.returncode == 0 and "Contracts: 1 kept, 0 broken." in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize(("module", "line", "message"), [
    ("colorgan.core.color", "from colorgan.serving import limits", "colorgan.core is not allowed to import "
                                                                   "colorgan.serving"),
    ("colorgan.data.records", "from colorgan.modeling import losses", "colorgan.data is not allowed to import "
                                                                     "colorgan.modeling"),
    ("colorgan.training.trainer", "import colorgan.inference.loading", "colorgan.training is not allowed to import "
                                                                       "colorgan.inference"),
])
def test_the_layers_contract_fails_on_a_planted_upward_or_sibling_import(package_copy, module, line, message):
    _plant(package_copy, module, line)
    result = _lint_imports(package_copy)
    assert result.returncode == 1 and message in result.stdout, result.stdout + result.stderr


def test_the_layers_contract_is_exhaustive(package_copy):
    """A new subpackage (or a module at the top of the package) must be given its layer."""
    (package_copy / "colorgan" / "plugins").mkdir()
    (package_copy / "colorgan" / "plugins" / "__init__.py").write_text("")
    result = _lint_imports(package_copy)
    assert result.returncode == 1 and "colorgan.plugins" in result.stdout, result.stdout + result.stderr
