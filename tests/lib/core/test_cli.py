"""Every command's edges (colorgan.core.cli), run as users run them: --help and --helpfull exit 0 with the help on
stdout; an unknown flag, a bad value or a stray word is one line naming it, exit 2."""

import ast
import os
import pathlib

import pytest
from conftest import REPO_ROOT
from conftest import run_script

SCRIPTS = sorted([f"launch/{name}" for name in os.listdir(os.path.join(REPO_ROOT, "launch")) if name.endswith(".py")]
                 + ["data_prep/make_tfrecords.py", "data_prep/inspect_tfrecords.py"])
# TensorFlow's own C++ log lines (the GPU probe's error among them) are not the tool's.
_NATIVE_LOG_PREFIXES = ("E0000 ", "I0000 ", "W0000 ", "WARNING: All log messages before absl::InitializeLog()")


def _tool_lines(stderr):
    return [line for line in stderr.splitlines() if line and not line.startswith(_NATIVE_LOG_PREFIXES)]


def test_every_command_is_checked():
    assert len(SCRIPTS) == 11


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_exits_0_and_a_bad_command_line_is_one_line_exiting_2(script):
    tool = os.path.basename(script)[:-3]
    summary = ast.get_docstring(ast.parse(pathlib.Path(REPO_ROOT, script).read_text())).splitlines()[0]
    for option in ("--help", "--helpfull"):
        shown = run_script(script, option, timeout=120)
        assert (shown.returncode, _tool_lines(shown.stderr)) == (0, []), shown.stderr[-2000:]
        assert summary in shown.stdout and "--" in shown.stdout  # the script's docstring, then its flags
    unknown = run_script(script, "--no_such_flag=1", timeout=120)
    assert (unknown.returncode, _tool_lines(unknown.stderr)) == (
        2, [f"{tool}: error: Unknown command line flag 'no_such_flag'"]), unknown.stderr[-2000:]
    if tool != "local_cluster":  # its words after the flags are the program to run
        stray = run_script(script, "stray", "words", timeout=120)
        assert (stray.returncode, _tool_lines(stray.stderr)) == (
            2, [f"{tool}: error: unexpected arguments: stray words"]), stray.stderr[-2000:]


# Each tool's flags come from its dataclass (flag_config) and are checked at start-up: several bad flags at once are
# each a line of their own, exit 2, before any model loads.
BAD_FLAGS = {
    "colorize": (["--step=-1", "--jpeg_quality=0", "--batch_size=0", "--format=gif"],
                 ["--model is required", "--input is required", "--output_dir is required", "--step=-1: must be at "
                  "least 0", "--jpeg_quality=0: not in 1..100", "--batch_size=0: must be at least 1",
                  "--format='gif' is not one of jpeg, png, tiff, webp"]),
    "export": (["--model_dir=run", "--step=-2", "--render_size=-1"],
               ["--export_dir is required", "--step=-2: must be at least 0", "--render_size=-1: must be at least 0"]),
    "evaluate": (["--model=run", "--samples=2", "--max_pixels=0"],
                 ["--max_pixels=0: must be positive", "give either --data_dir or --input_dir",
                  "--samples=2 needs --output_dir"]),
    "serve": (["--model=run", "--port=-1", "--max_batch=0", "--host=localhost"],
              ["--port=-1: not in 0..65535", "--max_batch=0: must be positive", "--host=localhost: not an IP "
               "address"]),
}


@pytest.mark.parametrize("tool", sorted(BAD_FLAGS))
def test_every_bad_flag_is_a_line_of_its_own(tool):
    arguments, problems = BAD_FLAGS[tool]
    result = run_script(f"launch/{tool}.py", *arguments, timeout=120)
    assert (result.returncode, _tool_lines(result.stderr)) == (
        2, [f"{tool}: error: {problem}" for problem in problems]), result.stderr[-2000:]
