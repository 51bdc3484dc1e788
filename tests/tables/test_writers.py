"""Writers for each output format: quoting, missing values, round trips."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from infer_cli.tables import atomic_output, open_writer

SCHEMA = pa.schema([("id", pa.string()), ("score", pa.float64()), ("n", pa.int64())])
TABLE = pa.table(
    {"id": ["a", "b,c", None], "score": [0.5, float("nan"), None], "n": [1, None, 3]},
    schema=SCHEMA,
)


def test_csv_writer_quotes_only_what_needs_it_and_writes_missing_as_empty() -> None:
    plain = io.BytesIO()
    writer = open_writer(plain, "csv", SCHEMA)
    writer.write(TABLE.slice(0, 1))
    writer.close()
    assert plain.getvalue() == b"id,score,n\na,0.5,1\n"
    quoted = io.BytesIO()
    writer = open_writer(quoted, "csv", SCHEMA)
    writer.write(TABLE)
    writer.close()
    assert quoted.getvalue() == b'id,score,n\na,0.5,1\n"b,c",,\n,,3\n'


def test_jsonl_writer_writes_missing_as_null_and_keeps_integers() -> None:
    handle = io.BytesIO()
    writer = open_writer(handle, "jsonl", SCHEMA)
    writer.write(TABLE)
    writer.close()
    rows = [json.loads(line) for line in handle.getvalue().decode().splitlines()]
    assert rows == [
        {"id": "a", "score": 0.5, "n": 1},
        {"id": "b,c", "score": None, "n": None},
        {"id": None, "score": None, "n": 3},
    ]
    assert b"NaN" not in handle.getvalue()


def test_gzip_and_parquet_writers_round_trip(tmp_path: Path) -> None:
    for name, fmt in (("out.csv.gz", "csv.gz"), ("out.parquet", "parquet")):
        with atomic_output(str(tmp_path / name)) as handle:
            writer = open_writer(handle, fmt, SCHEMA)
            writer.write(TABLE)
            writer.close()
    text = gzip.decompress((tmp_path / "out.csv.gz").read_bytes())
    assert text == b'id,score,n\na,0.5,1\n"b,c",,\n,,3\n'
    back = pq.read_table(tmp_path / "out.parquet")
    assert back["score"].to_pylist() == [0.5, None, None]
    assert back["id"].to_pylist() == ["a", "b,c", None]
