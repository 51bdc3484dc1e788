"""Hostile input files: long fields, stray quotes, quote bombs, width bombs, values no
column can hold. Each gets one line and a documented exit code (or a reject in skip mode),
in bounded memory; never an internal error."""

from __future__ import annotations

import csv
import os
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


@pytest.fixture(scope="module")
def whole_number_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Logistic regressions on two whole-number columns and no imputer (the estimator itself
    refuses a missing value), one of them pinned to int64 as an MLflow `long` column is."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from infer_cli.core import ModelCard, save_model
    from infer_cli.core.signature import Column, Signature

    x = pd.DataFrame({"n": np.arange(100), "m": np.arange(100) * 2})
    estimator = LogisticRegression().fit(x, np.where(x["n"] > 50, "hi", "lo"))
    root = tmp_path_factory.mktemp("whole")
    paths = {}
    for name, pinned in (("plain", None), ("int64", "int64")):
        columns = tuple(Column(c, "integer", numpy_dtype=pinned) for c in ("n", "m"))
        card = ModelCard(
            task="classification", target="label", classes=["hi", "lo"],
            signature=Signature(columns),
        )  # fmt: skip
        paths[name] = root / name
        save_model(estimator, card, paths[name])
    return paths


def test_rows_the_estimator_refuses_are_set_aside_whatever_the_batch_size(
    whole_number_models: dict[str, Path], tmp_path: Path
) -> None:
    """1,100 rows refused by the estimator in one chunk: past 1,000 the run used to fail, so
    the outcome depended on --batch-size."""
    rows = "".join(f"{i},\n" if i % 2 else f"{i},{i}\n" for i in range(2200))
    source = write(tmp_path / "in.csv", "n,m\n" + rows)
    outputs = []
    for batch_size in ("50000", "500"):
        out, rejects = tmp_path / f"out{batch_size}.csv", tmp_path / f"rejects{batch_size}.csv"
        result = run_infer_cli(
            "predict", "-m", whole_number_models["plain"], "-i", source, "-o", out, "-q",
            "--on-bad-rows", "skip", "--rejects", rejects, "--batch-size", batch_size,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr.decode()
        outputs.append((out.read_text(), rejects.read_text()))
    assert outputs[0] == outputs[1]
    scored, rejected = outputs[0]
    assert len(scored.splitlines()) == len(rejected.splitlines()) == 1 + 1100
    assert rejected.splitlines()[1] == (
        "1,,line 3: the model cannot score this input: Input X contains NaN."
    )


NOT_WHOLE = [
    ("inf", "'inf' is not a finite number"),
    ("-Infinity", "'-inf' is not a finite number"),
    ("1e400", "'inf' is not a finite number"),
    ("2.5", "'2.5' is not a whole number"),
    ("123456789012345678901234567890", "'1.2345678901234568e+29' is too large for a whole number"),
    ("9223372036854775808", "'9.223372036854776e+18' is too large for a whole number"),
]


@pytest.mark.parametrize("model", ["plain", "int64"])
def test_values_no_whole_number_column_holds_are_bad_rows(
    whole_number_models: dict[str, Path], tmp_path: Path, model: str
) -> None:
    """The values a JSON request may carry, in a file: exit code 3, or a reject each."""
    rows = "".join(f"{value},3\n4,5\n" for value, _ in NOT_WHOLE)
    source = write(tmp_path / "in.csv", f"n,m\n1,2\n{rows}")
    model_path = whole_number_models[model]
    failed = run_infer_cli(
        "predict", "-m", model_path, "-i", source, "-o", tmp_path / "o.csv", "-q"
    )
    assert failed.returncode == 3
    first = NOT_WHOLE[0][1]
    assert failed.stderr.decode() == f"infer-cli: error: {source}, line 3, column 'n': {first}\n"
    skipped = run_infer_cli(
        "predict", "-m", model_path, "-i", source, "-o", tmp_path / "o.csv", "-q",
        "--on-bad-rows", "skip", "--rejects", tmp_path / "rejects.csv",
    )  # fmt: skip
    assert skipped.returncode == 0, skipped.stderr.decode()
    assert (tmp_path / "rejects.csv").read_text().splitlines()[1:] == [
        f"{value},3,\"line {3 + 2 * i}, column 'n': {reason}\""
        for i, (value, reason) in enumerate(NOT_WHOLE)
    ]
    assert len((tmp_path / "o.csv").read_text().splitlines()) == 2 + len(NOT_WHOLE)


@pytest.mark.parametrize("output_format", ["csv", "csv.gz", "parquet", "jsonl", "mlflow-json"])
def test_a_full_disk_is_a_data_error_naming_the_file(
    trained_models: dict[str, Path], tmp_path: Path, output_format: str
) -> None:
    source = write(tmp_path / "in.csv", HEADER + ROW.format(note="a"))
    result = run_infer_cli(
        "predict", "-m", trained_models["iris"], "-i", source, "-o", "/dev/full",
        "--output-format", output_format,
    )  # fmt: skip
    assert result.returncode == 3
    assert result.stderr == b"infer-cli: error: /dev/full: cannot write (no space left on device)\n"


def test_a_full_disk_behind_stdout_rejects_or_the_summary_is_named(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    source = write(tmp_path / "in.csv", HEADER + ROW.format(note="a"))
    model = trained_models["iris"]
    with open("/dev/full", "wb") as full:
        import subprocess
        import sys

        executable = Path(sys.executable).with_name("infer-cli")
        piped = subprocess.run(
            [executable, "predict", "-m", model, "-i", source, "-q"],
            stdout=full, stderr=subprocess.PIPE, timeout=120,
        )  # fmt: skip
    assert piped.returncode == 3
    assert piped.stderr == b"infer-cli: error: <stdout>: cannot write (no space left on device)\n"
    for flags in (
        ["--on-bad-rows", "skip", "--rejects", "/dev/full"],
        ["--summary-json", "/dev/full"],
    ):
        result = run_infer_cli(
            "predict", "-m", model, "-i", source, "-o", tmp_path / "o.csv", "-q", *flags
        )
        assert result.returncode == 3
        assert result.stderr == (
            b"infer-cli: error: /dev/full: cannot write (no space left on device)\n"
        )


def test_a_closed_pipe_gives_the_same_status_to_the_shell_and_the_summary(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    """Like any tool killed by SIGPIPE: 141, and --summary-json says so."""
    import json
    import subprocess
    import sys

    # Far more output than a pipe holds, so the run is still writing when the reader leaves.
    source = write(tmp_path / "in.csv", HEADER + ROW.format(note="a") * 200_000)
    summary = tmp_path / "run.json"
    executable = Path(sys.executable).with_name("infer-cli")
    run = subprocess.Popen(
        [executable, "predict", "-m", trained_models["iris"], "-i", source, "-q",
         "--batch-size", "1000", "--summary-json", summary],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert run.stdout is not None and run.stderr is not None
    assert run.stdout.readline().startswith(b"sepal_length,")
    run.stdout.close()
    stderr = run.stderr.read()
    assert run.wait(timeout=120) == 141
    assert stderr == b""
    figures = json.loads(summary.read_text())
    assert (figures["status"], figures["exit_code"]) == ("failed", 141)
    assert "broken pipe" in figures["error"]
    assert figures["rows_scored"] < 200_000


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_a_port_out_of_range_is_a_usage_error(trained_models: dict[str, Path], port: str) -> None:
    result = run_infer_cli("serve", "-m", trained_models["iris"], "--port", port)
    assert result.returncode == 2
    assert result.stderr.decode() == (
        f"infer-cli: error: invalid value for '--port' / '-p': must be between 0 and 65535 "
        f"(got {port})\n"
    )


HOSTILE_NAMES = ["\x1b[31mred\x1b[0m", "two\nlines", "[bold]markup[/]", "\u202eevil", "bell\x07"]
ESCAPED_NAMES = [
    "\\x1b[31mred\\x1b[0m",
    "two\\nlines",
    "[bold]markup[/]",
    "\\u202eevil",
    "bell\\x07",
]


def _quoted(names: list[str]) -> str:
    return ",".join('"' + name.replace('"', '""') + '"' for name in names)


def test_column_names_from_a_file_reach_the_terminal_escaped(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    model = trained_models["iris"]
    features = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    noted = write(
        tmp_path / "noted.csv", f"{_quoted(features + HOSTILE_NAMES)}\n1,2,3,4,a,b,c,d,e\n"
    )
    result = run_infer_cli("predict", "-m", model, "-i", noted, "-o", tmp_path / "out.csv")
    assert result.returncode == 0, result.stderr.decode()
    stderr = result.stderr.decode()
    assert f"ignoring 5 column(s) the model does not use: {', '.join(ESCAPED_NAMES)}\n" in stderr
    assert "\x1b" not in stderr and "\x07" not in stderr and "\u202e" not in stderr
    for hostile, escaped in zip(HOSTILE_NAMES, ESCAPED_NAMES, strict=True):
        twice = write(tmp_path / "twice.csv", f"{_quoted([hostile, hostile])}\n1,2\n")
        failed = run_infer_cli("predict", "-m", model, "-i", twice, "-o", tmp_path / "o.csv")
        assert failed.returncode == 3
        assert failed.stderr.decode().splitlines()[-1:] == [
            f"infer-cli: error: {twice}, line 1: column '{escaped}' appears twice in the header"
        ]
        assert failed.stderr.count(b"\n") == failed.stderr.decode().count("note:") + 1


def _labelled(sample_data: Path, tmp_path: Path, stranger: str) -> Path:
    """39 setosa rows and 11 versicolor rows relabelled `stranger`, a species the iris
    model never saw."""
    lines = (sample_data / "iris.csv").read_text().splitlines()
    setosa = [line for line in lines[1:] if line.endswith(",setosa")][:39]
    others = [
        line.replace(",versicolor", "," + _quoted([stranger]))
        for line in lines[1:]
        if line.endswith(",versicolor")
    ][:11]
    return write(tmp_path / "labelled.csv", "\n".join([lines[0], *setosa, *others]) + "\n")


def test_evaluate_counts_labels_the_model_never_saw(
    trained_models: dict[str, Path], sample_data: Path, tmp_path: Path
) -> None:
    import json

    source = _labelled(sample_data, tmp_path, "hybrid")
    result = run_infer_cli("evaluate", "-m", trained_models["iris"], "-i", source, "--json")
    assert result.returncode == 0, result.stderr.decode()
    metrics = json.loads(result.stdout)["metrics"]
    matrix = metrics["confusion_matrix"]
    assert matrix["labels"] == ["setosa", "versicolor", "virginica", "hybrid"]
    assert sum(map(sum, matrix["matrix"])) == metrics["rows"] == 50
    assert sum(matrix["matrix"][3]) == metrics["per_class"]["hybrid"]["support"] == 11
    assert metrics["per_class"]["hybrid"]["recall"] == 0.0
    assert metrics["accuracy"] == 39 / 50
    assert (
        "note: 11 row(s) carry a label the model never saw ('hybrid'): each is counted as "
        "wrong, in its own row of the confusion matrix\n"
    ) in result.stderr.decode()


def test_labels_from_a_file_are_shown_escaped(
    trained_models: dict[str, Path], sample_data: Path, tmp_path: Path
) -> None:
    source = _labelled(sample_data, tmp_path, "[red]hy\x1bbrid")
    result = run_infer_cli("evaluate", "-m", trained_models["iris"], "-i", source)
    assert result.returncode == 0, result.stderr.decode()
    stderr = result.stderr.decode()
    assert "\x1b" not in stderr
    assert "'[red]hy\\x1bbrid'" in stderr
    assert "[red]hy\\x1bbrid" in stderr.split("Confusion matrix")[1]


@pytest.fixture(scope="module")
def numbered_classes_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classifier whose classes are the whole numbers 0 and 1."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from infer_cli.core import ModelCard, save_model
    from infer_cli.core.signature import Column, Signature

    x = pd.DataFrame({"a": np.arange(100.0)})
    estimator = LogisticRegression().fit(x, (x["a"] > 50).astype(int))
    signature = Signature((Column("a", "float"),))
    card = ModelCard(task="classification", target="y", classes=[0, 1], signature=signature)
    path = tmp_path_factory.mktemp("numbered") / "model"
    save_model(estimator, card, path)
    return path


@pytest.mark.parametrize(
    ("strangers", "labels"),
    [(["2", "2"], [0, 1, 2]), (["2", "cat"], ["0", "1", "2", "cat"])],
)
def test_unseen_labels_of_a_model_with_numbered_classes(
    numbered_classes_model: Path, tmp_path: Path, strangers: list[str], labels: list[object]
) -> None:
    import json

    rows = ["10,0", "90,1", *(f"95,{label}" for label in strangers)]
    source = write(tmp_path / "labelled.csv", "a,y\n" + "\n".join(rows) + "\n")
    result = run_infer_cli("evaluate", "-m", numbered_classes_model, "-i", source, "--json")
    assert result.returncode == 0, result.stderr.decode()
    matrix = json.loads(result.stdout)["metrics"]["confusion_matrix"]
    assert matrix["labels"] == labels
    assert sum(map(sum, matrix["matrix"])) == 4
    assert matrix["matrix"][1][1] == 1


def _dictionary_parquet(path: Path, rows: int, values: list[str]) -> Path:
    """A Parquet file whose `note` column is a few long strings, dictionary-encoded: its
    size says nothing of what it decodes to."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    features = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    codes = pa.array(np.arange(rows, dtype=np.int32) % len(values))
    note = pa.DictionaryArray.from_arrays(codes, pa.array(values)).cast(pa.string())
    table = pa.table({**{name: pa.array(np.full(rows, 1.5)) for name in features}, "note": note})
    pq.write_table(table, path, compression="zstd")
    return path


def test_a_parquet_dictionary_bomb_is_read_in_bounded_memory(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    """A few kilobytes decoding to 1.5 GB of text: read whole batches at a time, the run
    ran out of memory before its first row was scored."""
    source = _dictionary_parquet(tmp_path / "bomb.parquet", 1500, ["x" * 1_000_000])
    assert source.stat().st_size < 100_000
    result = run_limited(
        "predict", "-m", trained_models["iris"], "-i", source, "-o", os.devnull,
        "--keep", "none", "-q",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()


def test_a_parquet_file_cut_by_its_decoded_size_keeps_every_value(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    values = ["a" * 300_000, "b" * 300_001, "c" * 299_999]
    source = _dictionary_parquet(tmp_path / "in.parquet", 250, values)
    out = tmp_path / "out.parquet"
    result = run_limited("predict", "-m", trained_models["iris"], "-i", source, "-o", out, "-q")
    assert result.returncode == 0, result.stderr.decode()
    written = pq.read_table(out)
    assert written.num_rows == 250
    assert written.column("note").to_pylist() == [values[i % 3] for i in range(250)]
    assert str(written.schema.field("note").type) == "string"


def test_a_parquet_row_beyond_the_record_limit_is_refused(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    source = _dictionary_parquet(tmp_path / "in.parquet", 3, ["y" * (65 * 1024 * 1024)])
    result = run_limited(
        "predict", "-m", trained_models["iris"], "-i", source, "-o", os.devnull, "-q"
    )
    assert result.returncode == 3
    assert result.stderr.decode() == (
        f"infer-cli: error: {source}, row 1: 65 MiB of text once decoded, more than the 64 MiB "
        "a row may hold\n"
    )
