"""Formats decided, never guessed: by option or extension; gzip known by its first bytes;
JSON Lines streamed in chunks with the line of every row."""

from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from infer_cli.errors import DataError, UsageError
from infer_cli.tables import input_format, json_lines, open_table, output_format, read_table


@pytest.mark.parametrize(
    ("path", "named", "expected"),
    [
        ("a.csv", None, "csv"),
        ("a.CSV.GZ", None, "csv.gz"),
        ("a.tsv", None, "tsv"),
        ("a.tsv.gz", None, "tsv"),
        ("a.parquet", None, "parquet"),
        ("a.pq", None, "parquet"),
        ("a.jsonl", None, "jsonl"),
        ("a.ndjson.gz", None, "jsonl"),
        ("-", None, "csv"),
        ("-", "jsonl", "jsonl"),
        ("a.txt", "csv", "csv"),
        ("/dev/stdin", "tsv", "tsv"),
    ],
)
def test_an_input_format_is_named_or_its_extension(
    path: str, named: str | None, expected: str
) -> None:
    assert input_format(path, named) == expected


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("out.xlsx", r"out.xlsx: cannot tell the format from its extension '.xlsx'; name it "
         r"with --output-format \[csv\|csv.gz\|tsv\|parquet\|jsonl\|mlflow-json\]"),
        ("scored", r"scored: cannot tell the format from its extension; name it with"),
        ("out.json", r"out.json: .json could be several formats: use .jsonl for JSON Lines "
         r"\(one object per line\), or --output-format mlflow-json"),
        ("out.tsv.gz", r"out.tsv.gz: only CSV is written compressed \(.csv.gz\)"),
    ],
)  # fmt: skip
def test_an_output_extension_that_names_no_format_is_refused(path: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        output_format(path, None)


def test_a_named_format_wins_over_the_extension() -> None:
    assert output_format("out.json", "mlflow-json") == "mlflow-json"
    assert input_format("rows.txt", "jsonl") == "jsonl"
    with pytest.raises(UsageError, match=r"--input-format: unknown format 'xml'"):
        input_format("a.csv", "xml")


def _rows(path: str | Path, **options: Any) -> list[dict[str, Any]]:
    with open_table(str(path), **options) as reader:
        return [row for chunk in reader for row in chunk.table.to_pylist()]


def test_gzip_is_known_by_its_first_bytes_whatever_the_name(tmp_path: Path) -> None:
    (tmp_path / "plain.csv").write_bytes(gzip.compress(b"a,b\n1,2\n"))
    (tmp_path / "tabs.tsv.gz").write_bytes(gzip.compress(b"a\tb\n1\t2\n"))
    assert _rows(tmp_path / "plain.csv") == [{"a": "1", "b": "2"}]
    assert _rows(tmp_path / "tabs.tsv.gz") == [{"a": "1", "b": "2"}]


def test_a_gz_name_without_gzip_inside_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "fake.csv.gz").write_bytes(b"a,b\n1,2\n")
    with pytest.raises(DataError, match=r"fake.csv.gz: cannot read \(not gzip-compressed"):
        _rows(tmp_path / "fake.csv.gz")


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        (b"PAR1" + b"\0" * 20, UsageError, r"<stdin>: this is a Parquet file, not csv text"),
        (b"PK\x03\x04 sheet", DataError, r"<stdin>: a zip archive \(an Excel workbook\?\)"),
    ],
)
def test_binary_files_on_stdin_are_named(
    monkeypatch: pytest.MonkeyPatch, content: bytes, error: type, message: str
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(_Pipe(content)))
    with pytest.raises(error, match=message):
        _rows("-")


class _Pipe(io.RawIOBase):
    """A stream that cannot seek, as stdin is when it is a pipe, handing out few bytes a read."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = min(len(buffer), len(self._data), 3)
        buffer[:size] = self._data[:size]
        self._data = self._data[size:]
        return size


def test_gzip_on_a_pipe_is_read_through(monkeypatch: pytest.MonkeyPatch) -> None:
    data = gzip.compress(b"a,b\n" + b"".join(b"%d,x\n" % i for i in range(1000)))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(_Pipe(data))))
    rows = _rows("-")
    assert len(rows) == 1000 and rows[-1] == {"a": "999", "b": "x"}


def test_csv_without_a_header_takes_the_names_given(tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_bytes(b"\xef\xbb\xbf1,2\n\n3,4\n")
    with open_table(str(tmp_path / "rows.csv"), column_names=["a", "b"]) as reader:
        chunks = list(reader)
    assert [row for chunk in chunks for row in chunk.table.to_pylist()] == [
        {"a": "1", "b": "2"},
        {"a": "3", "b": "4"},
    ]
    assert [chunks[0].line_of(i) for i in range(2)] == [1, 3]


JSONL = (
    b'{"id": 1, "x": 1, "when": "2020-01-01", "ok": true}\n'
    b"\n"
    b'{"id": 2, "x": 2.5, "note": null}\n'
    b'{"id": 3, "x": "n/a", "ok": false}\n'
)


def test_json_lines_values_arrive_as_text_with_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(JSONL)
    with open_table(str(path)) as reader:
        assert reader.columns == ["id", "x", "when", "ok", "note"]
        assert reader.text_columns
        chunks = list(reader)
    rows = [row for chunk in chunks for row in chunk.table.to_pylist()]
    assert rows == [
        {"id": "1", "x": "1", "when": "2020-01-01", "ok": "true", "note": None},
        {"id": "2", "x": "2.5", "when": None, "ok": None, "note": None},
        {"id": "3", "x": "n/a", "when": None, "ok": "false", "note": None},
    ]
    assert [chunks[0].line_of(i) for i in range(3)] == [1, 3, 4]


def test_json_lines_are_streamed_in_blocks_whose_types_may_differ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(json_lines, "FIRST_BLOCK_BYTES", 64)
    monkeypatch.setattr(json_lines, "MIN_BLOCK_BYTES", 64)
    lines = [{"n": i, "v": i if i < 50 else (i + 0.5 if i < 100 else f"t{i}")} for i in range(150)]
    path = tmp_path / "many.ndjson"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with open_table(str(path), batch_size=10) as reader:
        chunks = list(reader)
    assert len(chunks) > 10
    rows = [row for chunk in chunks for row in chunk.table.to_pylist()]
    assert [row["v"] for row in rows] == [str(line["v"]) for line in lines]
    located = [
        (chunk.first_row + i, chunk.line_of(i)) for chunk in chunks for i in range(chunk.num_rows)
    ]
    assert located == [(i, i + 1) for i in range(150)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"a": 1}\n{"a": 2}\n{"a": \n', r"rows.jsonl, line 3: not JSON \(Expecting value"),
        (b'{"a": 1}\n[1, 2]\n', r"rows.jsonl, line 2: a JSON array, not an object"),
        (b'{"a": 1}\n{"a": {"b": 1}}\n', r"rows.jsonl, line 2: key 'a' holds a JSON object"),
        (b'{"a": 1}\n{"a": "\xff"}\n', r"rows.jsonl, line 2: not UTF-8 text"),
        (b'{"a": 1}{"a": 2}\n', r"rows.jsonl, line 1: not JSON \(Extra data"),
        (b"\n\n", r"rows.jsonl: the file is empty \(expected one JSON object per line\)"),
    ],
)
def test_bad_json_lines_are_named_by_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        _rows(path)


def test_the_columns_are_the_keys_of_the_first_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(json_lines, "FIRST_BLOCK_BYTES", 30)
    monkeypatch.setattr(json_lines, "MIN_BLOCK_BYTES", 20)
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2, "b": 1}\n' + b'{"a": 3}\n' * 5 + b'{"c": 4}\n')
    with open_table(str(path)) as reader:
        assert reader.columns == ["a", "b"]
        with pytest.raises(DataError, match=r"rows.jsonl, line 8: key 'c' is not one of the "):
            list(reader)


def test_bad_json_lines_can_be_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": 1}\nnot json\n{"a": 3}\n')
    with open_table(str(path), malformed="collect") as reader:
        (chunk,) = list(reader)
    assert chunk.table.to_pylist() == [{"a": "1"}, {"a": "3"}]
    assert [(bad.line, bad.reason[:8]) for bad in chunk.malformed] == [(2, "not JSON")]
    assert [chunk.line_of(i) for i in range(2)] == [1, 3]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("t.tsv", b"a\tb\n1\tx\n2\ty\n"),
        ("t.jsonl", b'{"a": 1, "b": "x"}\n{"a": 2, "b": "y"}\n'),
        ("t.csv.gz", gzip.compress(b"a,b\n1,x\n2,y\n", mtime=0)),
    ],
    ids=["tsv", "jsonl", "csv.gz"],
)
def test_training_reads_every_text_format(tmp_path: Path, name: str, content: bytes) -> None:
    (tmp_path / name).write_bytes(content)
    frame = read_table(str(tmp_path / name))
    assert frame.to_dict(orient="list") == {"a": [1, 2], "b": ["x", "y"]}


def test_training_refuses_an_unknown_extension(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_bytes(b"a,b\n1,2\n")
    with pytest.raises(UsageError, match=r"t.txt: cannot tell the format"):
        read_table(str(tmp_path / "t.txt"))
    assert read_table(str(tmp_path / "t.txt"), format="csv").shape == (1, 2)
