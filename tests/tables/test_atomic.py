"""Files that appear only when complete, and the clean-up of those left by killed runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from infer_cli.tables import atomic_output


def test_atomic_output_keeps_the_previous_file_when_the_block_fails(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("previous\n")
    with pytest.raises(RuntimeError), atomic_output(str(target)) as handle:
        handle.write(b"partial")
        raise RuntimeError("boom")
    assert target.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_leftover_part_files_of_dead_processes_are_removed(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    with atomic_output(str(target)) as handle:
        host = next(tmp_path.glob(".out.csv.*.part")).name.split(".")[3]
        handle.write(b"new\n")
    stale = tmp_path / f".out.csv.{host}.{dead.stdout.strip()}.abc.part"
    alive = tmp_path / f".out.csv.{host}.{os.getpid()}.abc.part"
    other_host = tmp_path / ".out.csv.elsewhere.1.abc.part"
    for leftover in (stale, alive, other_host):
        leftover.write_text("x")
    with atomic_output(str(target)) as handle:
        handle.write(b"newer\n")
    assert target.read_text() == "newer\n"
    assert not stale.exists()
    assert alive.exists() and other_host.exists()


def test_a_device_is_written_to_and_never_replaced(tmp_path: Path) -> None:
    with atomic_output(os.devnull) as handle:
        handle.write(b"discarded\n")
    assert Path(os.devnull).is_char_device()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen([sys.executable, "-c", f"print(open({str(fifo)!r}).read(), end='')"],
                              stdout=subprocess.PIPE)  # fmt: skip
    with atomic_output(str(fifo)) as handle:
        handle.write(b"through the pipe")
    assert reader.communicate(timeout=30)[0] == b"through the pipe"
    assert fifo.is_fifo()
