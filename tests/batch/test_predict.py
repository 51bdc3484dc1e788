"""`infer-cli predict`: formats, pipes, column choices, bad rows, atomic output, summaries."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression

from infer_cli.batch import BatchScoring, ScoringOptions
from infer_cli.core import load_model

from conftest import run_infer_cli

IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def expected_labels(model_path: Path, frame: pd.DataFrame) -> list[str]:
    return list(load_model(model_path).predict(frame).values)


def ok(result: Any) -> Any:
    assert result.exit_code == 0, result.output + result.stderr
    return result


@pytest.fixture(scope="module")
def iris_rows(sample_data: Path) -> pd.DataFrame:
    return pd.read_csv(sample_data / "iris_new.csv")


@pytest.mark.parametrize("suffix", ["csv", "csv.gz", "parquet", "jsonl"])
def test_every_output_format_holds_the_rows_and_their_predictions(
    cli: Any, trained_models: dict[str, Path], sample_data: Path, tmp_path: Path, suffix: str
) -> None:
    source = sample_data / "iris_new.csv"
    out = tmp_path / f"out.{suffix}"
    ok(cli("predict", "-m", trained_models["iris"], "-i", source, "-o", out, "--proba"))
    scored = {
        "csv": lambda: pd.read_csv(out),
        "csv.gz": lambda: pd.read_csv(out, compression="gzip"),
        "parquet": lambda: pd.read_parquet(out),
        "jsonl": lambda: pd.read_json(out, lines=True),
    }[suffix]()
    rows = pd.read_csv(source)
    assert list(scored.columns) == [
        *IRIS_COLUMNS,
        "prediction",
        "proba_setosa",
        "proba_versicolor",
        "proba_virginica",
    ]
    assert scored["prediction"].tolist() == expected_labels(trained_models["iris"], rows)
    assert np.allclose(scored[IRIS_COLUMNS].astype(float), rows[IRIS_COLUMNS])
    assert np.allclose(scored.filter(like="proba_").sum(axis=1), 1.0)


@pytest.mark.parametrize("source_format", ["csv.gz", "parquet"])
def test_compressed_and_parquet_inputs_score_like_csv(
    cli: Any, trained_models: dict[str, Path], iris_rows: pd.DataFrame, tmp_path: Path,
    source_format: str,
) -> None:  # fmt: skip
    source = tmp_path / f"in.{source_format}"
    if source_format == "parquet":
        iris_rows.to_parquet(source)
    else:
        iris_rows.to_csv(source, index=False, compression="gzip")
    ok(cli("predict", "-m", trained_models["iris"], "-i", source, "-o", tmp_path / "out.csv"))
    scored = pd.read_csv(tmp_path / "out.csv")
    assert scored["prediction"].tolist() == expected_labels(trained_models["iris"], iris_rows)


def test_formats_can_be_forced_for_pipes(
    trained_models: dict[str, Path], iris_rows: pd.DataFrame
) -> None:
    compressed = gzip.compress(iris_rows.to_csv(index=False).encode())
    result = run_infer_cli(
        "predict", "-m", trained_models["iris"], "--input-format", "csv.gz",
        "--output-format", "jsonl", "--keep", "none", input=compressed,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert len(lines) == len(iris_rows)
    assert json.loads(lines[0]) == {
        "prediction": expected_labels(trained_models["iris"], iris_rows)[0]
    }


def test_stdin_to_stdout_through_a_real_pipe_keeps_stdout_for_data(
    trained_models: dict[str, Path], sample_data: Path
) -> None:
    data = (sample_data / "churn_new.csv").read_bytes()
    result = run_infer_cli("predict", "-m", trained_models["churn"], input=data)
    assert result.returncode == 0, result.stderr.decode()
    scored = pd.read_csv(pd.io.common.BytesIO(result.stdout))
    original = pd.read_csv(sample_data / "churn_new.csv")
    assert scored["customer_id"].tolist() == original["customer_id"].tolist()
    assert b"rows scored" in result.stderr and b"rows scored" not in result.stdout


def test_keep_picks_columns_and_none_writes_predictions_only(
    cli: Any, trained_models: dict[str, Path], sample_data: Path, tmp_path: Path
) -> None:
    source = sample_data / "churn_new.csv"
    ok(cli("predict", "-m", trained_models["churn"], "-i", source, "-o", tmp_path / "id.csv",
           "--keep", "customer_id", "--proba"))  # fmt: skip
    assert pd.read_csv(tmp_path / "id.csv").columns.tolist() == [
        "customer_id", "prediction", "proba_no", "proba_yes",
    ]  # fmt: skip
    ok(cli("predict", "-m", trained_models["churn"], "-i", source, "-o", tmp_path / "none.csv",
           "--keep", "none"))  # fmt: skip
    assert pd.read_csv(tmp_path / "none.csv").columns.tolist() == ["prediction"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--keep", "nope"], 2, "--keep: no column 'nope' in"),
        (["--model", "{housing}", "--proba"], 2, "does not give probabilities"),
        (["--on-bad-rows", "maybe"], 2, "'--on-bad-rows': 'maybe' is not one of 'fail', 'skip'"),
        (["--on-bad-rows", "skip"], 2, "--on-bad-rows skip needs --rejects FILE"),
        (["--output-format", "xml"], 2, "'--output-format': 'xml' is not one of 'csv'"),
        (["--delimiter", "ab"], 2, "--delimiter must be one ASCII character"),
        (["--delimiter", "§"], 2, "--delimiter must be one ASCII character"),
        (["--batch-size", "0"], 2, "'--batch-size': must be at least 1"),
        (["-i", "{tmp}/missing.csv"], 3, "{tmp}/missing.csv: no such file"),
        (["-i", "{tmp}/empty.csv"], 3, "empty.csv: the file is empty (expected a header row)"),
        (["-i", "{tmp}/scored.csv"], 2, "the input already has a column 'prediction'"),
        (["-i", "{data}/churn_new.csv"], 3, "churn_new.csv: missing column 'sepal_length'"),
    ],
)
def test_errors_are_one_line_with_their_exit_code_and_no_output(
    cli: Any, trained_models: dict[str, Path], sample_data: Path, tmp_path: Path,
    args: list[str], code: int, message: str,
) -> None:  # fmt: skip
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "scored.csv").write_text(",".join(IRIS_COLUMNS) + ",prediction\n1,2,3,4,x\n")
    fill = {"tmp": str(tmp_path), "data": str(sample_data), "housing": trained_models["housing"]}
    args = [a.format(**fill) for a in args]
    if "-i" not in args:
        args += ["-i", str(sample_data / "iris_new.csv")]
    if "--model" not in args:
        args += ["-m", str(trained_models["iris"])]
    result = cli("predict", *args, "-o", tmp_path / "out.csv")
    assert result.exit_code == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("infer-cli: error: "), result.stderr
    assert message.format(**fill) in lines[0]
    assert not (tmp_path / "out.csv").exists()


def test_quoted_fields_crlf_and_bom_come_out_as_they_went_in(
    cli: Any, trained_models: dict[str, Path], tmp_path: Path
) -> None:
    source = tmp_path / "notes.csv"
    source.write_bytes(
        b"\xef\xbb\xbfnote,sepal_length,sepal_width,petal_length,petal_width\r\n"
        b'"a, b",5.1,3.5,1.4,0.2\r\n'
        b'"say ""hi""",6.0,2.9,4.5,1.5\r\n'
        b'"two\r\nlines",7.7,3.0,6.1,2.3\r\n'
    )
    ok(cli("predict", "-m", trained_models["iris"], "-i", source, "-o", tmp_path / "out.csv"))
    scored = pd.read_csv(tmp_path / "out.csv")
    assert scored["note"].tolist() == ["a, b", 'say "hi"', "two\r\nlines"]
    assert scored["prediction"].tolist() == ["setosa", "versicolor", "virginica"]


def test_header_only_input_gives_header_only_output(
    cli: Any, trained_models: dict[str, Path], tmp_path: Path
) -> None:
    source = tmp_path / "header.csv"
    source.write_text(",".join(IRIS_COLUMNS) + "\n")
    result = ok(
        cli("predict", "-m", trained_models["iris"], "-i", source, "-o", tmp_path / "o.csv")
    )
    assert (tmp_path / "o.csv").read_text() == ",".join(IRIS_COLUMNS) + ",prediction\n"
    assert "rows read" in result.stderr


def test_extra_and_reordered_columns_score_the_same(
    cli: Any, trained_models: dict[str, Path], iris_rows: pd.DataFrame, tmp_path: Path
) -> None:
    shuffled = iris_rows[list(reversed(IRIS_COLUMNS))].assign(batch="b7")
    shuffled.to_csv(tmp_path / "in.csv", index=False)
    result = ok(cli("predict", "-m", trained_models["iris"], "-i", tmp_path / "in.csv",
                    "-o", tmp_path / "out.csv"))  # fmt: skip
    scored = pd.read_csv(tmp_path / "out.csv")
    assert scored.columns.tolist() == [*reversed(IRIS_COLUMNS), "batch", "prediction"]
    assert scored["prediction"].tolist() == expected_labels(trained_models["iris"], iris_rows)
    assert "ignoring 1 column(s) the model does not use: batch" in result.stderr


def test_missing_values_are_empty_in_csv_and_null_in_json(
    cli: Any, trained_models: dict[str, Path], tmp_path: Path
) -> None:
    source = tmp_path / "gaps.csv"
    source.write_text(
        "customer_id,tenure_months,monthly_charges,total_charges,contract,internet_service,"
        "payment_method,support_calls\n"
        "C-1,,50.0,NA,month-to-month,,mailed-check,1\n"
    )
    model = trained_models["churn"]
    ok(cli("predict", "-m", model, "-i", source, "-o", tmp_path / "out.csv", "--proba"))
    ok(cli("predict", "-m", model, "-i", source, "-o", tmp_path / "out.jsonl", "--proba"))
    line = (tmp_path / "out.csv").read_text().splitlines()[1]
    assert line.startswith("C-1,,50.0,NA,month-to-month,,mailed-check,1,")
    row = json.loads((tmp_path / "out.jsonl").read_text())
    assert row["tenure_months"] is None and row["internet_service"] is None
    assert row["monthly_charges"] == 50.0 and row["total_charges"] is None
    assert "NaN" not in (tmp_path / "out.jsonl").read_text()


@pytest.fixture(scope="module")
def large_with_one_bad_row(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """60,000 iris rows with quoted multi-line notes; one bad value far down the file."""
    rng = np.random.default_rng(0)
    values = rng.uniform(0.5, 7.0, size=(60_000, 4)).round(2).astype(str)
    bad_row = 45_678
    values[bad_row, 0] = "oops"
    lines = ["note," + ",".join(IRIS_COLUMNS)]
    bad_line = 0
    for row, fields in enumerate(values):
        note = '"two\nlines"' if row % 997 == 0 else "x"
        if row == bad_row:
            bad_line = 1 + sum(line.count("\n") + 1 for line in lines)
        lines.append(f"{note},{','.join(fields)}")
    path = tmp_path_factory.mktemp("large") / "large.csv"
    path.write_text("\n".join(lines) + "\n")
    assert path.read_text().split("\n")[bad_line - 1].startswith("x,oops,")
    return path, bad_line


def test_bad_row_in_a_large_file_fails_naming_its_line_and_leaves_out_alone(
    cli: Any, trained_models: dict[str, Path], large_with_one_bad_row: tuple[Path, int],
    tmp_path: Path,
) -> None:  # fmt: skip
    source, line = large_with_one_bad_row
    out = tmp_path / "out.csv"
    out.write_text("yesterday\n")
    result = cli("predict", "-m", trained_models["iris"], "-i", source, "-o", out,
                 "--batch-size", "5000")  # fmt: skip
    assert result.exit_code == 3
    assert result.stderr.strip() == (
        f"infer-cli: error: {source}, line {line}, column 'sepal_length': 'oops' is not a number"
    )
    assert out.read_text() == "yesterday\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_skip_mode_scores_the_rest_and_accounts_for_every_row(
    cli: Any, trained_models: dict[str, Path], large_with_one_bad_row: tuple[Path, int],
    tmp_path: Path,
) -> None:  # fmt: skip
    source, line = large_with_one_bad_row
    result = ok(cli(
        "predict", "-m", trained_models["iris"], "-i", source, "-o", tmp_path / "out.parquet",
        "--on-bad-rows", "skip", "--rejects", tmp_path / "rejects.csv",
        "--summary-json", tmp_path / "summary.json", "--batch-size", "5000",
    ))  # fmt: skip
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["rows_read"], summary["rows_scored"], summary["rows_rejected"]) == (
        60_000, 59_999, 1,
    )  # fmt: skip
    assert summary["status"] == "ok" and summary["exit_code"] == 0
    assert pq.read_metadata(tmp_path / "out.parquet").num_rows == 59_999
    rejects = pd.read_csv(tmp_path / "rejects.csv")
    assert rejects.columns.tolist() == ["note", *IRIS_COLUMNS, "reject_reason"]
    assert rejects["sepal_length"].tolist() == ["oops"]
    assert rejects["reject_reason"].tolist() == [
        f"line {line}, column 'sepal_length': 'oops' is not a number"
    ]
    assert "rows rejected" in result.stderr


def test_skip_mode_sets_aside_rows_the_estimator_itself_refuses(cli: Any, tmp_path: Path) -> None:
    features = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    estimator = LogisticRegression().fit(features, [0, 0, 1, 1])
    joblib.dump(estimator, tmp_path / "bare.joblib")
    source = tmp_path / "in.csv"
    source.write_text("a,b\n0.5,1\n,1\n2.5,0\n3,\n")
    args = ["predict", "-m", tmp_path / "bare.joblib", "-i", source, "-o", tmp_path / "o.csv"]
    failed = cli(*args)
    assert failed.exit_code == 3
    assert f"{source}, line 3: the model cannot score this input" in failed.stderr
    ok(cli(*args, "--on-bad-rows", "skip", "--rejects", tmp_path / "r.csv"))
    assert pd.read_csv(tmp_path / "o.csv")["a"].tolist() == [0.5, 2.5]
    reasons = pd.read_csv(tmp_path / "r.csv")["reject_reason"].tolist()
    assert [reason.split(":")[0] for reason in reasons] == ["line 3", "line 5"]


def test_malformed_records_go_to_the_rejects_with_their_text(
    cli: Any, trained_models: dict[str, Path], tmp_path: Path
) -> None:
    source = tmp_path / "ragged.csv"
    source.write_text(",".join(IRIS_COLUMNS) + "\n5.1,3.5,1.4,0.2\n1,2,3\n6.0,2.9,4.5,1.5\n")
    failed = cli("predict", "-m", trained_models["iris"], "-i", source, "-o", tmp_path / "o.csv")
    assert failed.exit_code == 3
    assert f"{source}, line 3: expected 4 fields, found 3" in failed.stderr
    ok(cli("predict", "-m", trained_models["iris"], "-i", source, "-o", tmp_path / "o.csv",
           "--on-bad-rows", "skip", "--rejects", tmp_path / "r.jsonl"))  # fmt: skip
    assert len(pd.read_csv(tmp_path / "o.csv")) == 2
    reject = json.loads((tmp_path / "r.jsonl").read_text())
    assert reject["reject_reason"] == "line 3: expected 4 fields, found 3: '1,2,3'"
    assert reject["sepal_length"] is None


def test_summary_json_is_written_when_the_run_fails(
    cli: Any, trained_models: dict[str, Path], large_with_one_bad_row: tuple[Path, int],
    tmp_path: Path,
) -> None:  # fmt: skip
    source, _ = large_with_one_bad_row
    result = cli("predict", "-m", trained_models["iris"], "-i", source, "-o", tmp_path / "o.csv",
                 "--summary-json", tmp_path / "s.json", "--batch-size", "5000")  # fmt: skip
    assert result.exit_code == 3
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["status"] == "failed" and summary["exit_code"] == 3
    assert "'oops' is not a number" in summary["error"]
    assert 0 < summary["rows_read"] < 60_000


def test_quiet_prints_nothing_and_batches_do_not_change_results(
    cli: Any, trained_models: dict[str, Path], sample_data: Path, tmp_path: Path
) -> None:
    outputs = []
    for size in ("1", "7", "50000"):
        out = tmp_path / f"out{size}.csv"
        source = sample_data / "reviews_new.csv"
        model = trained_models["reviews"]
        result = ok(
            cli("predict", "-m", model, "-i", source, "-o", out, "--batch-size", size, "-q")
        )
        assert result.stderr == "" and result.stdout == ""
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]


def test_tab_delimited_in_and_out(
    cli: Any, trained_models: dict[str, Path], tmp_path: Path
) -> None:
    source = tmp_path / "in.tsv"
    source.write_text("\t".join(IRIS_COLUMNS) + "\n5.1\t3.5\t1.4\t0.2\n")
    ok(cli("predict", "-m", trained_models["iris"], "-i", source, "-o", tmp_path / "o.tsv",
           "--delimiter", "\\t", "--input-format", "csv", "--output-format", "csv"))  # fmt: skip
    assert (tmp_path / "o.tsv").read_text().splitlines()[1] == "5.1\t3.5\t1.4\t0.2\tsetosa"


def test_the_library_job_reports_without_printing(
    trained_models: dict[str, Path], sample_data: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    seen: list[int] = []
    job = BatchScoring(
        load_model(trained_models["iris"]),
        ScoringOptions(input=str(sample_data / "iris_new.csv"), output=str(tmp_path / "o.csv"),
                       batch_size=4),
    )  # fmt: skip
    report = job.run(lambda report, done, total: seen.append(report.rows_read))
    assert report.rows_read == report.rows_scored == len(pd.read_csv(sample_data / "iris_new.csv"))
    assert seen == sorted(seen) and seen[-1] == report.rows_read and len(seen) > 1
    assert capsys.readouterr() == ("", "")


def _start_scoring(model: Path, source: Path, out: Path) -> subprocess.Popen[bytes]:
    executable = Path(sys.executable).with_name("infer-cli")
    process = subprocess.Popen(
        [str(executable), "predict", "-m", str(model), "-i", str(source), "-o", str(out),
         "--batch-size", "2000"],
        stderr=subprocess.PIPE,
        # A shell's background job ignores SIGINT, and Python then leaves it ignored: give
        # the run the default, as a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 180  # a loaded machine starts a process slowly
    while not list(out.parent.glob(f".{out.name}.*.part")):
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the run never started writing"
        time.sleep(0.02)
    return process


@pytest.fixture(scope="module")
def long_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough rows that a run is still writing when it is stopped."""
    path = tmp_path_factory.mktemp("long") / "long.csv"
    rng = np.random.default_rng(1)
    pd.DataFrame(rng.uniform(0.5, 7.0, size=(300_000, 4)).round(2), columns=IRIS_COLUMNS).to_csv(
        path, index=False
    )
    return path


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_a_run_stopped_midway_leaves_the_previous_output_intact(
    trained_models: dict[str, Path], long_input: Path, tmp_path: Path, stop: signal.Signals
) -> None:
    out = tmp_path / "scored.csv"
    out.write_text("yesterday\n")
    process = _start_scoring(trained_models["iris"], long_input, out)
    process.send_signal(stop)
    stderr = process.communicate(timeout=60)[1].decode()
    assert out.read_text() == "yesterday\n"
    leftovers = list(tmp_path.glob(".scored.csv.*.part"))
    if stop == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
        # Nothing can clean up after SIGKILL; the next run removes the dead run's file.
        assert len(leftovers) == 1
        rerun = run_infer_cli("predict", "-m", trained_models["iris"], "-i", long_input,
                              "-o", out, "--keep", "none", "-q")  # fmt: skip
        assert rerun.returncode == 0, rerun.stderr.decode()
        assert not list(tmp_path.glob(".scored.csv.*.part"))
        assert len(out.read_text().splitlines()) == 300_001
    else:
        assert process.returncode == 130, stderr
        assert stderr.strip() == "infer-cli: error: interrupted"
        assert leftovers == []
    assert not os.path.exists(tmp_path / "scored.csv.part")


def test_a_bare_estimator_fitted_on_arrays_reads_csv_numbers(cli: Any, tmp_path: Path) -> None:
    features = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 0.0]])
    joblib.dump(LogisticRegression().fit(features, [0, 0, 1, 1]), tmp_path / "bare.pkl")
    source = tmp_path / "in.csv"
    source.write_text("u,v\n0.2,1\n2.8,0\n")
    ok(cli("predict", "-m", tmp_path / "bare.pkl", "-i", source, "-o", tmp_path / "o.csv"))
    assert (tmp_path / "o.csv").read_text() == "u,v,prediction\n0.2,1,0\n2.8,0,1\n"


def test_csv_to_parquet_writes_model_numbers_as_numbers_and_other_columns_as_text(
    cli: Any, trained_models: dict[str, Path], tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    source.write_text("id," + ",".join(IRIS_COLUMNS) + "\n00123,5.1,3.5,,0.2\n")
    ok(cli("predict", "-m", trained_models["iris"], "-i", source, "-o", tmp_path / "o.parquet"))
    table = pq.read_table(tmp_path / "o.parquet")
    assert str(table.schema.field("id").type) == "string"
    assert str(table.schema.field("sepal_length").type) == "double"
    assert table.to_pylist()[0]["id"] == "00123"
    assert table.to_pylist()[0]["petal_length"] is None


def test_a_failure_midway_through_a_pipe_still_exits_non_zero(
    trained_models: dict[str, Path], large_with_one_bad_row: tuple[Path, int]
) -> None:
    source, line = large_with_one_bad_row
    result = run_infer_cli("predict", "-m", trained_models["iris"], "--batch-size", "5000",
                           input=source.read_bytes())  # fmt: skip
    assert result.returncode == 3
    assert f"<stdin>, line {line}, column 'sepal_length'" in result.stderr.decode()
    # How many rows reached stdout before the failure depends on thread timing; never all.
    assert result.stdout.count(b"\n") < 60_000


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("out.json", "out.json: .json could be several formats"),
        ("out.xlsx", "out.xlsx: cannot tell the format from its extension '.xlsx'"),
        ("scored", "scored: cannot tell the format from its extension; name it with"),
    ],
)
def test_an_output_without_a_known_extension_is_refused_and_nothing_written(
    cli: Any, trained_models: dict[str, Path], sample_data: Path, tmp_path: Path,
    name: str, message: str,
) -> None:  # fmt: skip
    out = tmp_path / name
    result = cli("predict", "-m", trained_models["iris"], "-i", sample_data / "iris_new.csv",
                 "-o", out)  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.startswith("infer-cli: error: ") and message in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_tsv_is_tab_separated_in_and_out(
    cli: Any, trained_models: dict[str, Path], iris_rows: pd.DataFrame, tmp_path: Path
) -> None:
    iris_rows.head(3).to_csv(tmp_path / "in.tsv", sep="\t", index=False)
    ok(cli("predict", "-m", trained_models["iris"], "-i", tmp_path / "in.tsv",
           "-o", tmp_path / "out.tsv"))  # fmt: skip
    scored = pd.read_csv(tmp_path / "out.tsv", sep="\t")
    assert list(scored.columns) == [*IRIS_COLUMNS, "prediction"]
    assert scored["prediction"].tolist() == expected_labels(trained_models["iris"], iris_rows)[:3]


def test_json_lines_in_gives_the_same_predictions_as_csv(
    cli: Any, trained_models: dict[str, Path], iris_rows: pd.DataFrame, tmp_path: Path
) -> None:
    iris_rows.to_json(tmp_path / "in.jsonl", orient="records", lines=True)
    ok(cli("predict", "-m", trained_models["iris"], "-i", tmp_path / "in.jsonl",
           "-o", tmp_path / "out.jsonl", "--keep", "none"))  # fmt: skip
    scored = pd.read_json(tmp_path / "out.jsonl", lines=True)
    assert scored["prediction"].tolist() == expected_labels(trained_models["iris"], iris_rows)


# A fresh interpreter: what a one-row run imports, and how, is the point.
ONE_ROW_PROBE = """
import gc, json, sys
from infer_cli.cli import app

app(sys.argv[1:], standalone_mode=False)
import scipy.stats

print(json.dumps({
    "dask": "infer_cli.batch.dask_engine" in sys.modules,
    "pydantic": "pydantic" in sys.modules,
    "scipy_notes": "Array API Standard Support" in (scipy.stats.rankdata.__doc__ or ""),
    "frozen": gc.get_freeze_count() > 0,
    "collecting": gc.isenabled(),
}), file=sys.stderr)
"""


def test_one_row_of_json_from_the_shell_starts_as_serve_does(
    trained_models: dict[str, Path],
) -> None:
    row = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
    result = subprocess.run(
        [sys.executable, "-c", ONE_ROW_PROBE, "predict", "-m", str(trained_models["iris"]),
         "--input-format", "jsonl", "-q"],
        input=json.dumps(row).encode(), capture_output=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode() == (
        "sepal_length,sepal_width,petal_length,petal_width,prediction\n5.1,3.5,1.4,0.2,setosa\n"
    )
    # serve's quick start: SciPy's docstrings left as written, the load's objects frozen;
    # neither Dask nor pydantic (which Typer would import to read the options) imported.
    state = json.loads(result.stderr.decode().splitlines()[-1])
    assert state == {
        "dask": False, "pydantic": False, "scipy_notes": False, "frozen": True, "collecting": True
    }  # fmt: skip


def test_bad_json_lines_name_their_line_and_can_be_set_aside(
    cli: Any, trained_models: dict[str, Path], tmp_path: Path
) -> None:
    row = '{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}\n'
    (tmp_path / "in.jsonl").write_text(row + '{"sepal_length": 5.0,\n' + row)
    failed = cli("predict", "-m", trained_models["iris"], "-i", tmp_path / "in.jsonl",
                 "-o", tmp_path / "o.csv")  # fmt: skip
    assert failed.exit_code == 3
    assert f"{tmp_path / 'in.jsonl'}, line 2: not JSON" in failed.stderr
    ok(cli("predict", "-m", trained_models["iris"], "-i", tmp_path / "in.jsonl",
           "-o", tmp_path / "o.csv", "--on-bad-rows", "skip",
           "--rejects", tmp_path / "r.csv"))  # fmt: skip
    assert len(pd.read_csv(tmp_path / "o.csv")) == 2
    assert pd.read_csv(tmp_path / "r.csv")["reject_reason"][0].startswith("line 2: not JSON")


def test_gzip_on_stdin_is_recognised(
    trained_models: dict[str, Path], iris_rows: pd.DataFrame
) -> None:
    data = gzip.compress(iris_rows.to_csv(index=False).encode())
    result = run_infer_cli("predict", "-m", trained_models["iris"], "-q", input=data)
    assert result.returncode == 0, result.stderr.decode()
    assert len(result.stdout.decode().splitlines()) == 1 + len(iris_rows)


def test_rows_without_a_header_and_the_hint_when_it_is_missing(
    trained_models: dict[str, Path],
) -> None:
    model = trained_models["iris"]
    scored = run_infer_cli("predict", "-m", model, "--no-header", "--keep", "none", "-q",
                           input=b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n")  # fmt: skip
    assert scored.returncode == 0, scored.stderr.decode()
    assert scored.stdout.decode() == "prediction\nsetosa\nvirginica\n"
    forgot = run_infer_cli("predict", "-m", model, input=b"5.1,3.5,1.4,0.2\n")
    assert forgot.returncode == 3 and forgot.stdout == b""
    assert b"the first line is read as the header: for rows without one, pass --no-header" in (
        forgot.stderr
    )
    json_as_csv = run_infer_cli("predict", "-m", model, input=b'{"sepal_length": 5.1}\n')
    assert b"is this JSON Lines? pass --input-format jsonl" in json_as_csv.stderr


def test_a_first_chunk_that_fails_writes_nothing_to_stdout(
    trained_models: dict[str, Path],
) -> None:
    result = run_infer_cli("predict", "-m", trained_models["reviews"], "--no-header",
                           input=b"great product, love it\n")  # fmt: skip
    assert result.returncode == 3
    assert result.stdout == b""
    assert b"<stdin>, line 1: expected 1 field, found 2 (quote a value that holds the " in (
        result.stderr
    )


def test_probabilities_are_written_in_one_notation_and_read_back_exactly(
    cli: Any, tmp_path: Path
) -> None:
    # Far apart classes: some probabilities are tiny, which pyarrow writes as 1.5e-7.
    features = pd.DataFrame({"a": np.linspace(-20, 20, 41)})
    estimator = LogisticRegression(C=100).fit(features, features["a"] > 0)
    joblib.dump(estimator, tmp_path / "far.joblib")
    features.to_csv(tmp_path / "in.csv", index=False)
    ok(cli("predict", "-m", tmp_path / "far.joblib", "-i", tmp_path / "in.csv",
           "-o", tmp_path / "out.csv", "--proba"))  # fmt: skip
    text = (tmp_path / "out.csv").read_text()
    assert "e-" not in text and "E-" not in text
    written = pd.read_csv(tmp_path / "out.csv")[["proba_False", "proba_True"]].to_numpy()
    assert (written == estimator.predict_proba(features)).all()
    assert written.min() < 1e-6
    ok(cli("predict", "-m", tmp_path / "far.joblib", "-i", tmp_path / "in.csv",
           "-o", tmp_path / "rounded.csv", "--proba", "--precision", "3"))  # fmt: skip
    rounded = pd.read_csv(tmp_path / "rounded.csv", dtype=str)
    decimals = rounded["proba_True"].str.partition(".")[2].str.len()
    assert decimals.max() <= 3 and rounded["proba_True"].iloc[-1] == "1"


def test_the_first_bad_row_in_the_file_is_the_one_named(
    cli: Any, trained_models: dict[str, Path], tmp_path: Path
) -> None:
    header = ",".join(IRIS_COLUMNS) + "\n"
    good = "5.1,3.5,1.4,0.2\n"
    source = tmp_path / "in.csv"
    # A bad value on line 3 and a record of the wrong width on line 5, in one chunk...
    source.write_text(header + good + "oops,3.5,1.4,0.2\n" + good + "1,2,3\n" + good)
    args = ["predict", "-m", trained_models["iris"], "-i", source, "-o", tmp_path / "o.csv"]
    failed = cli(*args)
    assert failed.exit_code == 3
    assert f"{source}, line 3, column 'sepal_length': 'oops' is not a number" in failed.stderr
    # ...and in chunks of their own, the record read ahead while the value is scored.
    failed = cli(*args, "--batch-size", "1")
    assert f"{source}, line 3, column 'sepal_length'" in failed.stderr
    ok(cli(*args, "--on-bad-rows", "skip", "--rejects", tmp_path / "r.csv"))
    reasons = pd.read_csv(tmp_path / "r.csv")["reject_reason"].tolist()
    assert [reason.split(",")[0].split(":")[0] for reason in reasons] == ["line 3", "line 5"]


def test_the_summary_counts_rows_per_second_over_scoring_and_says_where_rows_went(
    cli: Any, trained_models: dict[str, Path], sample_data: Path, tmp_path: Path
) -> None:
    result = ok(cli("predict", "-m", trained_models["iris"], "-i", sample_data / "iris_new.csv",
                    "-o", tmp_path / "o.csv", "--summary-json", tmp_path / "s.json"))  # fmt: skip
    summary = json.loads((tmp_path / "s.json").read_text())
    seconds = summary["seconds"]
    assert seconds["scoring"] <= seconds["wall"] - seconds["model_load"] + 0.01
    assert summary["rows_per_second"] == round(summary["rows_read"] / seconds["scoring"])
    rows = len(pd.read_csv(sample_data / "iris_new.csv"))
    assert f"{rows} rows written to {tmp_path / 'o.csv'}" in " ".join(result.stderr.split())
