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
