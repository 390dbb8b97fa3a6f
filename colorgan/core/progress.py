"""One way to show a duration (ETAs of data prep, training and colorize), so every tool's progress line reads alike."""

import math


def format_duration(seconds):
    """H:MM:SS of a number of seconds; '?' when unknown (infinite or NaN, e.g. no rate measured yet)."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"

