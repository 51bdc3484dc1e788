"""Streaming readers and writers: record boundaries, line numbers, formats, atomic output."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from infer_cli.errors import DataError, UsageError
from infer_cli.tables import open_table, read_table
from infer_cli.tables.csv_blocks import RecordBlocks

# Quoted commas, doubled quotes, a newline inside quotes, a blank line, a CRLF line, a stray
# quote inside an unquoted field: the line each record starts on is in the first column.
TRICKY = (
    b"line,text\n"
    b"2,plain\n"
    b'3,"with, comma"\n'
    b'4,"say ""hi"""\n'
    b'5,"two\nlines"\n'
    b"\n"
    b"8,after blank\r\n"
    b'9,5"3 stray\n'
    b'10,"x"\n'
)


def read_all(path: Path, **options: object) -> list[tuple[list[dict], list[int | None]]]:
    with open_table(str(path), **options) as reader:  # type: ignore[arg-type]
        return [
            (chunk.table.to_pylist(), [chunk.line_of(i) for i in range(chunk.num_rows)])
            for chunk in reader
        ]


@pytest.mark.parametrize("block_size", [1, 7, 16, 64, 4096])
def test_blocks_end_on_record_boundaries_and_know_their_lines(block_size: int) -> None:
    blocks = RecordBlocks(io.BytesIO(TRICKY), source="t", delimiter=",", block_size=block_size)
    assert blocks.header == b"line,text"
    found = []
    pieces = []
    for block in blocks:
        pieces.append(block.data)
        found.extend(block.record_lines().tolist())
    assert b"".join(pieces) == TRICKY[len(b"line,text\n") :]
    assert found == [2, 3, 4, 5, 8, 9, 10]


def test_csv_values_and_lines_survive_quotes_newlines_crlf_and_stray_quotes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tricky.csv"
    path.write_bytes(TRICKY)
    rows, lines = read_all(path)[0]
    assert [row["text"] for row in rows] == [
        "plain",
        "with, comma",
        'say "hi"',
        "two\nlines",
        "after blank",
        '5"3 stray',
        "x",
    ]
    assert lines == [int(row["line"]) for row in rows]


def test_chunks_hold_at_most_batch_size_rows_and_count_rows_across_chunks(
    tmp_path: Path,
) -> None:
    path = tmp_path / "many.csv"
    path.write_text("n\n" + "".join(f"{i}\n" for i in range(1000)))
    with open_table(str(path), batch_size=64) as reader:
        chunks = list(reader)
    assert max(chunk.num_rows for chunk in chunks) <= 64
    assert [chunk.first_row for chunk in chunks] == list(
        np.cumsum([0] + [c.num_rows for c in chunks[:-1]])
    )
    last = chunks[-1]
    assert last.line_of(last.num_rows - 1) == 1001
    values = [int(v) for chunk in chunks for v in chunk.table["n"].to_pylist()]
    assert values == list(range(1000))


def test_bom_delimiter_and_missing_values(tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_bytes(b"\xef\xbb\xbfa;b\r\n1;\r\n;x\r\n")
    with open_table(str(path), delimiter=";") as reader:
        assert reader.columns == ["a", "b"]
        rows = [row for chunk in reader for row in chunk.table.to_pylist()]
    assert rows == [{"a": "1", "b": None}, {"a": None, "b": "x"}]


def test_gzip_csv_is_read_like_csv(tmp_path: Path) -> None:
    path = tmp_path / "in.csv.gz"
    path.write_bytes(gzip.compress(TRICKY))
    assert read_all(path) == read_all(_write(tmp_path / "plain.csv", TRICKY))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty.csv: the file is empty (expected a header row)"),
        (b"a,b,a\n1,2,3\n", "empty.csv, line 1: column 'a' appears twice in the header"),
        (
            b"a,b\n1,2\n3,4,5\n",
            "empty.csv, line 3: expected 2 fields, found 3 (quote a value that holds the "
            'separator: "a, b")',
        ),
        (b"a,b\n1,2\n3,\xff\n", "empty.csv, line 3: not UTF-8 text"),
    ],
)
def test_unreadable_csv_names_file_and_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = _write(tmp_path / "empty.csv", content)
    with pytest.raises(DataError) as caught:
        read_all(path)
    assert str(caught.value).replace(str(tmp_path) + "/", "") == message


def test_unclosed_quote_is_malformed(tmp_path: Path) -> None:
    path = _write(tmp_path / "open.csv", b'a,b\n1,2\n3,"never closed\n4,5\n')
    with pytest.raises(DataError, match=r"open.csv, line 3: a quoted field is never closed"):
        read_all(path)


def test_rows_with_the_wrong_field_count_can_be_collected(tmp_path: Path) -> None:
    path = _write(tmp_path / "ragged.csv", b'a,b\n1,2\n3,4,5\n"6\n",7\n8\n')
    with open_table(str(path), malformed="collect") as reader:
        chunks = list(reader)
    rows = [row for chunk in chunks for row in chunk.table.to_pylist()]
    malformed = [bad for chunk in chunks for bad in chunk.malformed]
    assert rows == [{"a": "1", "b": "2"}, {"a": "6\n", "b": "7"}]
    assert [chunk.line_of(i) for chunk in chunks for i in range(chunk.num_rows)] == [2, 4]
    assert [(bad.line, bad.reason) for bad in malformed] == [
        (
            3,
            'expected 2 fields, found 3 (quote a value that holds the separator: "a, b"): '
            "'3,4,5'",
        ),
        (6, "expected 2 fields, found 1: '8'"),
    ]


def test_header_only_input_has_columns_and_no_chunks(tmp_path: Path) -> None:
    path = _write(tmp_path / "header.csv", b"a,b\r\n")
    with open_table(str(path)) as reader:
        assert reader.columns == ["a", "b"]
        assert list(reader) == []


def test_parquet_is_read_in_batches_keeping_types(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"x": [1.5, None, 3.0], "id": ["a", "b", "c"]}), path)
    with open_table(str(path), batch_size=2) as reader:
        assert not reader.text_columns
        chunks = list(reader)
    assert [chunk.first_row for chunk in chunks] == [0, 2]
    assert chunks[0].line_of(0) is None
    assert chunks[0].table["x"].to_pylist() == [1.5, None]


def test_parquet_from_stdin_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="Parquet cannot be read from stdin"):
        open_table("-", format="parquet")


def test_read_table_still_reads_a_whole_csv_for_training(sample_data: Path) -> None:
    frame = read_table(str(sample_data / "iris.csv"))
    assert len(frame) == 150 and "species" in frame.columns


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    "content",
    [
        b"not gzip at all",
        gzip.compress(TRICKY, mtime=0)[:40],
        gzip.compress(TRICKY, mtime=0)[:20] + b"\0" * 30,
    ],
    ids=["not gzip", "cut short", "zeros after the header"],
)
def test_a_broken_gzip_file_is_a_data_error(tmp_path: Path, content: bytes) -> None:
    path = _write(tmp_path / "broken.csv.gz", content)
    with pytest.raises(DataError, match=r"broken.csv.gz: cannot read"):
        read_all(path)


def test_a_stray_quote_in_the_header_is_a_plain_character(tmp_path: Path) -> None:
    path = _write(tmp_path / "inches.csv", b'id,size"in\n1,5\n2,6\n')
    with open_table(str(path)) as reader:
        assert reader.columns == ["id", 'size"in']
        assert [row for chunk in reader for row in chunk.table.to_pylist()] == [
            {"id": "1", 'size"in': "5"},
            {"id": "2", 'size"in': "6"},
        ]
