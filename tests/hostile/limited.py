"""Running the installed command under a memory limit, so that a regression in a
memory-heavy case fails the test (exit code 3, "out of memory") instead of exhausting the
machine that runs the tests."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

# Address space, not resident memory: an infer-cli run reserves about 700 MiB of it before
# reading a row (libraries, thread stacks), and the cases here need a few hundred MiB more.
MEMORY_LIMIT_MIB = 1536


def run_limited(
    *args: str | Path, cwd: Path | None = None, limit_mib: int = MEMORY_LIMIT_MIB
) -> subprocess.CompletedProcess[bytes]:
    """Run `infer-cli ARGS` as a real subprocess whose address space is capped."""
    limit = limit_mib * 1024 * 1024

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    executable = Path(sys.executable).with_name("infer-cli")
    return subprocess.run(
        [str(executable), *(str(arg) for arg in args)],
        capture_output=True,
        cwd=cwd,
        preexec_fn=cap,
        timeout=300,
    )
