"""How every long tool shows its progress: a tqdm bar (count, rate, ETA) when a person watches a terminal, and the
tool's rate/ETA lines when its output goes to a log, where a bar's carriage returns would be noise. One duration
format for every ETA, so the lines read alike."""

import math
import sys
import time

import tqdm


def format_duration(seconds):
    """H:MM:SS of a number of seconds; '?' when unknown (infinite or NaN, e.g. no rate measured yet)."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Progress through `total` items (`done` of them finished before this run).

    On a terminal (`stream.isatty()`) a bar on `stream`; `note` lines are printed above it. Elsewhere `update`'s
    line, given the count done, the rate and the ETA text, goes to `log` at most every `every_s` seconds (0: every
    update) and at the end, and notes go to `log` as they come. Without `log`, nothing is shown."""

    def __init__(self, tool, total, unit, log, done=0, every_s=0.0, stream=None):
        stream = stream or sys.stderr
        self.total, self.done, self.log, self.every_s = total, done, log, every_s
        self.counted = 0  # items finished in this run: the rate's numerator
        self.start = self.last_line = time.monotonic()
        self.bar = (tqdm.tqdm(total=total, initial=done, unit=unit, desc=tool, file=stream, dynamic_ncols=True,
                              smoothing=0.1) if log is not None and _is_terminal(stream) else None)

    def update(self, count=1, line=None, timed=True):
        """`count` more items finished; `line(done, rate, eta_text)` is the log line for this point. Items that took
        no work (skipped) are not `timed`: they would inflate the rate."""
        self.done += count
        self.counted += count if timed else 0
        if self.bar is not None:
            self.bar.update(count)
            return
        now = time.monotonic()
        due = now - self.last_line >= self.every_s or self.done >= self.total  # the last one always: 100%
        if self.log is not None and line is not None and due:
            self.last_line = now
            elapsed = now - self.start
            rate = self.counted / elapsed if elapsed > 0 else 0.0
            eta = (self.total - self.done) / rate if rate > 0 else math.inf
            self.log(line(self.done, rate, format_duration(eta)))

    def note(self, message):
        """A line that is not progress (a skipped file): above the bar on a terminal, else to the log."""
        if self.bar is not None:
            self.bar.write(message, file=self.bar.fp)
        elif self.log is not None:
            self.log(message)

    def close(self):
        if self.bar is not None:
            self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False
