"""The package as `pip install .` leaves it: a wheel built from the repository into a fresh virtual environment, whose
colorgan-* commands (setup.cfg's console_scripts) each print their help and exit 0, and exit 2 with one line on a
usage error, run from a folder outside the repository."""

import configparser
import os
import pathlib
import shutil
import site
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

# Each command, and a flag of its own that its --help must list (absl lists the main module's flags, and the main
# module of an installed command is pip's script, not the tool's module).
COMMANDS = {
    "colorgan-make-tfrecords": "--input_dir", "colorgan-inspect": "--data_dir", "colorgan-train": "--generator",
    "colorgan-plot": "--model_dir", "colorgan-export": "--export_dir", "colorgan-colorize": "--hints",
    "colorgan-evaluate": "--split", "colorgan-serve": "--allowed_hosts", "colorgan-local-cluster": "--num_workers",
    "colorgan-data-service": "--role",
}

# The name error lines start with, where it is not the command's.
TOOL_NAMES = {"colorgan-inspect": "inspect_tfrecords", "colorgan-plot": "plot_metrics"}


def _entry_points():
    config = configparser.ConfigParser()
    config.read(os.path.join(REPO_ROOT, "setup.cfg"))
    lines = [line.split("=") for line in config["options.entry_points"]["console_scripts"].splitlines() if line]
    return {name.strip(): target.strip() for name, target in lines}


ENTRY_POINTS = _entry_points()


def test_setup_cfg_installs_exactly_these_commands():
    assert sorted(ENTRY_POINTS) == sorted(COMMANDS)


HELP_WITHOUT_TENSORFLOW = """
import sys
from colorgan.tools import {module}
sys.argv = ["{module}", "--help"]
try:
    {module}.main()
except SystemExit as stop:
    print(stop.code, sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")))
"""


@pytest.mark.parametrize("module", sorted({entry.split(":")[0].split(".")[-1] for entry in ENTRY_POINTS.values()}))
def test_help_loads_no_tensorflow(module):
    """So --help and usage errors answer at once (about 0.1 s, 0.9 s for data prep, against 3 to 15 s with TensorFlow
    on these machines): flags and their choices are declared from TensorFlow-free modules."""
    result = subprocess.run([sys.executable, "-c", HELP_WITHOUT_TENSORFLOW.format(module=module)],
                            capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert result.stdout.strip().splitlines()[-1] == "0 []", result.stdout[-500:] + result.stderr[-2000:]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """bin/ of a fresh venv holding colorgan built from a copy of the repository's sources (so no build files land
    in the checkout). Its dependencies come from this interpreter's site-packages through a .pth file, as
    --system-site-packages would give them from the base interpreter's: nothing is downloaded (--no-index, no build
    isolation), and the editable install of colorgan there is not seen (a .pth file only adds a path)."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    shutil.copytree(os.path.join(REPO_ROOT, "colorgan"), source / "colorgan",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(os.path.join(REPO_ROOT, name), source / name)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    packages = pathlib.Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import site; "
                                            "print(site.getsitepackages()[0])"], capture_output=True, text=True,
                                           check=True).stdout.strip())
    (packages / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", str(source)], check=True, capture_output=True, cwd=root)
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import colorgan; print(colorgan.__file__)"],
                           capture_output=True, text=True, check=True, cwd=root).stdout.strip()
    assert where.startswith(str(packages)), where  # the wheel's copy, not the checkout
    return venv / "bin", root


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_installed_command_prints_its_help_and_exits_2_on_a_usage_error(installed, command):
    bin_dir, outside = installed
    result = subprocess.run([str(bin_dir / command), "--help"], capture_output=True, text=True, cwd=outside,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    usage = result.stdout.split("\nflags:\n")[0]
    assert f"  {command} --" in usage, usage  # the tool's docstring, with its usage lines, heads the help
    assert f"  {COMMANDS[command]}" in result.stdout, result.stdout
    for bad in (["--no_such_flag=1"], ["stray"]) if command != "colorgan-local-cluster" else (["--no_such_flag=1"],):
        result = subprocess.run([str(bin_dir / command), *bad], capture_output=True, text=True, cwd=outside,
                                timeout=120)
        short = TOOL_NAMES.get(command, command.removeprefix("colorgan-").replace("-", "_"))
        assert result.returncode == 2 and result.stderr.count("\n") == 1, (bad, result.stderr[-2000:])
        assert result.stderr.startswith(f"{short}: error: "), result.stderr
