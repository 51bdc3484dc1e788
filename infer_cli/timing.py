"""Wall-clock timing of a command's phases, and its peak memory.

A command run as the console script counts its wall time from the process's start, so that
the interpreter's start and the imports before its first phase show (as `start-up time`)
rather than hide; run in-process (a test runner, a library), from the stopwatch's start.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

# The process's start on the perf_counter clock, once the console script has asked for it.
_process_started: float | None = None


def count_from_process_start() -> None:
    """Count the wall time of the stopwatches made from now on from the process's start."""
    global _process_started
    age = _process_age()
    if age is not None:
        _process_started = time.perf_counter() - age


def _process_age() -> float | None:
    """Seconds since this process started (to 10 ms, the kernel's clock tick); None where
    /proc does not say."""
    try:
        with open("/proc/self/stat", "rb") as stat, open("/proc/uptime", "rb") as uptime:
            # The command's name, in parentheses, may hold spaces: count fields after it.
            fields = stat.read().rpartition(b")")[2].split()
            since_boot = float(uptime.read().split()[0])
        return max(0.0, since_boot - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


class Stopwatch:
    """Accumulates the time spent in named phases of one run."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        before = _process_started
        self.command_started = before if before is not None and before < self.started else None
        self.phases: dict[str, float] = {}

    @property
    def start_up(self) -> float | None:
        """The time from the process's start to this stopwatch's (the interpreter's start and
        the first imports), when the process's start is counted from."""
        return None if self.command_started is None else self.started - self.command_started

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        begin = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - begin)

    def add(self, name: str, seconds: float) -> None:
        self.phases[name] = self.phases.get(name, 0.0) + seconds

    def elapsed(self) -> float:
        """The wall time so far: from the process's start when it is counted from."""
        return time.perf_counter() - (self.command_started or self.started)


def peak_memory_mb() -> float:
    """This process's peak resident set size, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kibibytes, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
