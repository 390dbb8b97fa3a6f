"""What every colorgan command does alike at its edges (BUILD.md, "Exit statuses"): --help and its kin exit 0, and a
command line that cannot be used (an unknown flag, a bad value, a stray argument) is one line naming it, exit 2.

absl's app.run exits 1 after printing help, which breaks `cmd --help && ...`, and reports a bad flag in two lines
(FATAL ... and a pointer to --helpfull) or a UsageError with the whole usage text, also with 1.
"""

import sys

from absl import app
from absl import flags

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_HELP_FLAGS = frozenset({"help", "?", "helpshort", "helpfull", "helpxml"})


def run(tool, main, takes_arguments=False):
    """app.run(main) for the command `tool` (the name its error lines start with). Without `takes_arguments`, words
    left after the flags are a usage error. --help shows the docstring and the key flags (those defined or adopted) of
    `main`'s module: absl shows the program's own, and the program is an installed command or a launch/ script, not
    that module."""
    tool_module = sys.modules[main.__module__]
    for flag in flags.FLAGS.get_key_flags_for_module(tool_module.__name__):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    # absl's usage text is the main module's docstring: pip's script has none, launch/ wrappers a line.
    sys.modules["__main__"].__doc__ = tool_module.__doc__

    def checked_main(argv):
        if len(argv) > 1 and not takes_arguments:
            return usage_error(tool, f"unexpected arguments: {' '.join(argv[1:])}")
        return main(argv)

    app.run(checked_main, flags_parser=lambda argv: _parse(tool, argv))


def usage_error(tool, message):
    """Reports a usage error in one line; returns the exit status to end with."""
    return _error(tool, message, EXIT_USAGE)


def usage_errors(tool, problems):
    """Reports each of a command line's problems in a line of its own; returns the exit status to end with."""
    for problem in problems:
        usage_error(tool, problem)
    return EXIT_USAGE


def failure(tool, message):
    """Reports a failure at run time (the work started and failed, or nothing could be done) in one line; returns
    the exit status to end with."""
    return _error(tool, message, EXIT_FAILED)


def _error(tool, message, status):
    print(f"{tool}: error: {message}", file=sys.stderr, flush=True)
    return status


def _parse(tool, argv):
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        sys.exit(usage_error(tool, " ".join(str(error).split())))
    except SystemExit as stop:  # absl's help flags print their text, then exit 1
        if stop.code == 1 and _asks_for_help(argv):
            sys.exit(EXIT_OK)
        raise


def _asks_for_help(argv):
    for argument in argv[1:]:
        if argument == "--":
            return False
        if argument.startswith("-") and argument.lstrip("-").split("=", 1)[0] in _HELP_FLAGS:
            return True
    return False
