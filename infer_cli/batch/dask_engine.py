"""Scoring partitioned data on a Dask cluster: each input file is one partition, scored on a
worker by the single-process engine into its own part of an output directory.

The output and rejects directories are filled under hidden sibling names and renamed into
place, with a `_SUCCESS` marker, only once every part is complete: a reader never takes a
half-written directory for a finished one.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..choices import OUTPUT_FORMATS
from ..core.drift import DriftCounts, ProfileBins
from ..core.model import Model
from ..errors import DataError, UsageError
from ..tables.atomic import STDIO, current_umask
from ..tables.inputs import INPUT_EXTENSIONS, input_format, output_format
from ..tables.paths import refuse_aliases
from .scoring import BatchScoring, Progress, ScoringOptions, ScoringReport

if TYPE_CHECKING:
    from distributed import Client

INSTALL_HINT = "pip install '.[dask]' in infer-cli's checkout (or pip install dask distributed)"
SUCCESS_MARKER = "_SUCCESS"
PART_EXTENSIONS = {f: f for f in OUTPUT_FORMATS} | {"mlflow-json": "json"}
# Long enough for a scheduler on another host to answer, short enough for a typo to show.
CONNECT_SECONDS = 10
WORKERS_SECONDS = 10
STAGING_REMOVAL_SECONDS = 5


@dataclass
class DaskReport(ScoringReport):
    """A `ScoringReport` summed over partitions, with the cluster that scored them."""

    partitions: int = 0
    partitions_done: int = 0
    workers: int = 0
    scheduler: str = ""


@dataclass(frozen=True)
class Partition:
    """One input file and the part files it becomes (absolute paths: workers may run elsewhere)."""

    input: str
    output: str
    rejects: str | None


def require_dask() -> None:
    """Refuse, with the command that fixes it, when the `dask` extra is not installed."""
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise UsageError(
            f"--engine dask needs Dask and its distributed scheduler: {INSTALL_HINT}"
        ) from None


def find_partitions(pattern: str) -> list[str]:
    """The files a glob or a directory names, sorted; a directory's hidden, `_` and
    non-CSV/Parquet files are left out (markers, leftovers of other tools)."""
    if pattern == STDIO:
        raise UsageError("--engine dask reads files (a glob or a directory), not stdin")
    path = Path(pattern)
    if path.is_dir():
        files = [
            item
            for item in path.iterdir()
            if item.is_file()
            and not item.name.startswith((".", "_"))
            and item.name.lower().endswith(INPUT_EXTENSIONS)
        ]
    elif any(mark in pattern for mark in "*?["):
        files = [Path(name) for name in glob.glob(pattern) if Path(name).is_file()]
    elif path.is_file():
        files = [path]
    else:
        raise DataError(f"{pattern}: no such file or directory")
    if not files:
        raise DataError(f"{pattern}: no CSV or Parquet files to score")
    return [str(item.resolve()) for item in sorted(files)]


@contextmanager
def staged_directory(path: str, flag: str) -> Iterator[Path]:
    """A directory filled under a hidden sibling name and renamed to `path` with a
    `_SUCCESS` marker if the block completes; removed if it does not.

    `path` must not exist or be an empty directory: a finished output is never replaced,
    so a rerun cannot destroy the result of the last good one.
    """
    if path == STDIO:
        raise UsageError(f"{flag}: --engine dask writes a directory of parts, not stdout")
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise UsageError(f"{flag} {path}: is a file; --engine dask writes a directory of parts")
    if target.is_dir() and any(target.iterdir()):
        raise UsageError(
            f"{flag} {path}: the directory exists and is not empty; remove it or choose another"
        )
    parent = target.resolve().parent
    if not parent.is_dir():
        raise DataError(f"{path}: no such directory '{parent}'")
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=parent))
    except PermissionError as exc:
        raise DataError(f"{path}: cannot write in '{parent}' (permission denied)") from exc
    try:
        # Workers may run as another user on a shared file system.
        os.chmod(staging, 0o777 & ~current_umask())
        yield staging
        (staging / SUCCESS_MARKER).touch()
        try:
            os.rename(staging, target)  # replaces an empty directory, never a full one
        except OSError as exc:
            raise DataError(f"{path}: cannot put the finished output in place ({exc})") from exc
    except BaseException:
        _remove_staging(staging)
        raise


def _remove_staging(staging: Path) -> None:
    """Remove a failed run's staging directory. A cancelled partition that was already
    running still finishes on its worker and may land its part while the directory is being
    removed, so removal is tried again for a few seconds; what a partition still running
    after that leaves behind stays hidden (a dot-name ending in .part)."""
    deadline = time.monotonic() + STAGING_REMOVAL_SECONDS
    while True:
        shutil.rmtree(staging, ignore_errors=True)
        if not staging.exists() or time.monotonic() > deadline:
            return
        time.sleep(0.1)


def score_partition(
    partition: Partition, *, model: Model, options: ScoringOptions, drift: ProfileBins | None = None
) -> ScoringReport:
    """Run on a worker: score one input file into its part files."""
    chosen = replace(
        options, input=partition.input, output=partition.output, rejects=partition.rejects
    )
    return BatchScoring(model, chosen, drift).run()


class DaskScoring:
    """One run of scoring on a Dask cluster; `report` holds its figures, also after a failure.

    `scheduler` is the address of a running scheduler; without one, a local cluster with a
    worker per core is started for the run and stopped after it.
    """

    def __init__(
        self,
        model: Model,
        options: ScoringOptions,
        scheduler: str | None = None,
        drift: ProfileBins | None = None,
    ):
        self.model = model
        self.options = options
        self.scheduler = scheduler
        self.drift = drift
        self.report = DaskReport(drift=DriftCounts.empty(drift) if drift else None)

    def run(self, progress: Progress | None = None) -> DaskReport:
        require_dask()
        from distributed import as_completed

        options = self.options
        inputs = find_partitions(options.input)
        input_formats = [input_format(name, options.input_format) for name in inputs]
        output_kind = options.output_format and output_format("", options.output_format)
        self._check_options()
        self.report.partitions = len(inputs)
        with ExitStack() as stack:
            output = stack.enter_context(staged_directory(options.output, "--output"))
            rejects = None
            if options.rejects is not None:
                rejects = stack.enter_context(staged_directory(options.rejects, "--rejects"))
            partitions = [
                Partition(
                    input=name,
                    output=str(output / _part_name(index, output_kind or kind)),
                    rejects=None if rejects is None else str(rejects / _part_name(index, kind)),
                )
                for index, (name, kind) in enumerate(zip(inputs, input_formats, strict=True))
            ]
            client = stack.enter_context(self._connect())
            self.report.workers = len(client.nthreads())
            self.report.scheduler = str(client.scheduler_info()["address"])
            # Once to every worker, rather than once per partition.
            model = client.scatter(self.model, broadcast=True)
            futures = client.map(
                score_partition,
                partitions,
                model=model,
                options=options,
                drift=self.drift,
                pure=False,
            )
            try:
                for future in as_completed(futures):
                    self._add(future.result())
                    if progress is not None:
                        progress(self.report, self.report.partitions_done, len(partitions))
            except BaseException:
                client.cancel(futures)
                raise
        return self.report

    def _check_options(self) -> None:
        options = self.options
        self.model.decision(options.threshold, options.positive_class)
        if options.skip_bad_rows and options.rejects is None:
            raise UsageError("--on-bad-rows skip needs --rejects DIR, so that no row is lost")
        if options.rejects is not None and not options.skip_bad_rows:
            raise UsageError("--rejects is only written with --on-bad-rows skip")
        refuse_aliases([], [("--output", options.output), ("--rejects", options.rejects)])

    @contextmanager
    def _connect(self) -> Iterator[Client]:
        from distributed import Client, LocalCluster

        # Workers log each failed task and the cluster its shutdown: the user gets the one
        # error line the command prints, as with the single-process engine.
        quiet = logging.getLogger("distributed")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)
        try:
            if self.scheduler is None:
                with (
                    LocalCluster(
                        n_workers=_cores(),
                        threads_per_worker=1,
                        dashboard_address=None,
                        silence_logs=logging.CRITICAL,
                    ) as cluster,
                    Client(cluster) as client,
                ):
                    yield client
                return
            try:
                client = Client(self.scheduler, timeout=CONNECT_SECONDS)
            except (OSError, ValueError, TypeError) as exc:
                raise UsageError(
                    f"--scheduler {self.scheduler}: cannot reach a Dask scheduler ({exc})"
                ) from None
            with client:
                try:
                    client.wait_for_workers(1, timeout=WORKERS_SECONDS)
                except TimeoutError:
                    raise UsageError(
                        f"--scheduler {self.scheduler}: no worker joined within "
                        f"{WORKERS_SECONDS} s; start one with `dask worker {self.scheduler}`"
                    ) from None
                yield client
        finally:
            quiet.setLevel(level)

    def _add(self, part: ScoringReport) -> None:
        report = self.report
        report.partitions_done += 1
        report.rows_read += part.rows_read
        report.rows_scored += part.rows_scored
        report.rows_rejected += part.rows_rejected
        report.read_seconds += part.read_seconds
        report.predict_seconds += part.predict_seconds
        report.write_seconds += part.write_seconds
        report.notices.extend(n for n in part.notices if n not in report.notices)
        if report.drift is not None and part.drift is not None:
            report.drift.merge(part.drift)


def _part_name(index: int, kind: str) -> str:
    return f"part-{index:05d}.{PART_EXTENSIONS[kind]}"


def _cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1
