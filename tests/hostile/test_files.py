"""Hostile input files: long fields, stray quotes, quote bombs, width bombs, values no
column can hold. Each gets one line and a documented exit code (or a reject in skip mode),
in bounded memory; never an internal error."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from .limited import run_limited
from conftest import run_infer_cli

HEADER = "sepal_length,sepal_width,petal_length,petal_width,note\n"
ROW = "5.1,3.5,1.4,0.2,{note}\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def notes(path: Path) -> list[str]:
    """The `note` column of a CSV, parsed."""
    csv.field_size_limit(2**31 - 1)
    with open(path, newline="") as handle:
        return [row["note"] for row in csv.DictReader(handle)]


@pytest.mark.parametrize("quoted", [True, False])
@pytest.mark.parametrize("size", [1024 * 1024 + 1, 3 * 1024 * 1024])
def test_fields_over_a_mebibyte_are_read_whole(
    trained_models: dict[str, Path], tmp_path: Path, quoted: bool, size: int
) -> None:
    """pyarrow parses in pieces of 1 MiB and fails on a value spanning more than two; the
    documented record limit is 64 MiB."""
    long = "x" * size
    field = f'"{long}"' if quoted else long
    rows = [ROW.format(note=i) for i in range(1000)]
    source = write(tmp_path / "in.csv", HEADER + "".join(rows) + ROW.format(note=field))
    result = run_limited(
        "predict", "-m", trained_models["iris"], "-i", source, "-o", tmp_path / "out.csv", "-q"
    )
    assert result.returncode == 0, result.stderr.decode()
    assert notes(tmp_path / "out.csv") == [*map(str, range(1000)), long]


def test_a_stray_quote_near_a_field_over_128_kib_is_a_bad_value(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    """A stray quote sends the record splitter to Python's csv module, whose default field
    limit is 128 KiB."""
    text = HEADER + ROW.format(note="y" * 200_000) + '5.1,3"5,1.4,0.2,z\n' + ROW.format(note="w")
    source = write(tmp_path / "in.csv", text)
    model = trained_models["iris"]
    failed = run_infer_cli("predict", "-m", model, "-i", source, "-o", tmp_path / "out.csv")
    assert failed.returncode == 3
    assert failed.stderr.decode() == (
        f"infer-cli: error: {source}, line 3, column 'sepal_width': '3\"5' is not a number\n"
    )
    skipped = run_infer_cli(
        "predict", "-m", model, "-i", source, "-o", tmp_path / "out.csv", "-q",
        "--on-bad-rows", "skip", "--rejects", tmp_path / "rejects.csv",
    )  # fmt: skip
    assert skipped.returncode == 0, skipped.stderr.decode()
    assert notes(tmp_path / "out.csv") == ["y" * 200_000, "w"]
    assert notes(tmp_path / "rejects.csv") == ["z"]


def test_a_field_of_millions_of_doubled_quotes_costs_memory_in_proportion(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    """20 MB of quotes: finding where its records end took 1.2 GB (an index per quote)."""
    quotes = 10_000_000
    source = write(tmp_path / "in.csv", HEADER + ROW.format(note='"' + '""' * quotes + '"'))
    result = run_limited(
        "predict", "-m", trained_models["iris"], "-i", source, "-o", tmp_path / "out.csv", "-q"
    )
    assert result.returncode == 0, result.stderr.decode()
    assert notes(tmp_path / "out.csv") == ['"' * quotes]


def test_a_header_of_a_million_columns_is_refused_naming_the_limit(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    columns = 1_000_000
    names = ",".join(f"c{i}" for i in range(columns))
    source = write(tmp_path / "wide.csv", f"{names}\n{','.join(['1'] * columns)}\n")
    expected = (
        f"infer-cli: error: {source}, line 1: 1,000,000 columns, more than the limit of "
        "10,000 (--max-columns raises it)\n"
    )
    model = trained_models["iris"]
    for command in (
        ["predict", "-m", model, "-i", source, "-o", tmp_path / "out.csv"],
        ["evaluate", "-m", model, "-i", source],
        ["train", "-i", source, "--target", "c1", "-o", tmp_path / "model"],
    ):
        result = run_limited(*command)
        assert result.returncode == 3, result.stderr.decode()
        assert result.stderr.decode() == expected
    assert not (tmp_path / "out.csv").exists()
    assert not (tmp_path / "model").exists()


def test_max_columns_is_a_limit_the_user_sets(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    source = write(tmp_path / "in.csv", HEADER + ROW.format(note="a"))
    model = trained_models["iris"]
    narrow = run_infer_cli("predict", "-m", model, "-i", source, "--max-columns", "4")
    assert narrow.returncode == 3
    assert b"line 1: 5 columns, more than the limit of 4 (--max-columns raises it)" in (
        narrow.stderr
    )
    assert run_infer_cli("predict", "-m", model, "-i", source, "--max-columns", "5").returncode == 0
    zero = run_infer_cli("predict", "-m", model, "-i", source, "--max-columns", "0")
    assert zero.returncode == 2
    assert zero.stderr == (
        b"infer-cli: error: invalid value for '--max-columns': must be at least 1 (got 0)\n"
    )


def test_train_counts_columns_of_a_piped_table(sample_data: Path, tmp_path: Path) -> None:
    data = (sample_data / "iris.csv").read_bytes()
    result = run_infer_cli(
        "train", "-i", "-", "--target", "species", "-o", tmp_path / "model", "--max-columns", "3",
        input=data,
    )  # fmt: skip
    assert result.returncode == 3
    assert result.stderr == (
        b"infer-cli: error: <stdin>, line 1: 5 columns, more than the limit of 3 "
        b"(--max-columns raises it)\n"
    )
    trained = run_infer_cli(
        "train", "-i", "-", "--target", "species", "-o", tmp_path / "model", "-q", input=data
    )
    assert trained.returncode == 0, trained.stderr.decode()


def test_a_parquet_file_too_wide_is_refused_from_its_footer(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = tmp_path / "wide.parquet"
    pq.write_table(pa.table({f"c{i}": [1.0] for i in range(12)}), source)
    result = run_infer_cli(
        "predict", "-m", trained_models["iris"], "-i", source, "--max-columns", "10"
    )
    assert result.returncode == 3
    assert result.stderr.decode() == (
        f"infer-cli: error: {source}: 12 columns, more than the limit of 10 "
        "(--max-columns raises it)\n"
    )
