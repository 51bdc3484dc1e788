"""`infer-cli predict --engine dask`: partitions scored on a real Dask cluster into a directory
of parts, the same rows and predictions as the single-process engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from infer_cli.batch import BatchScoring, DaskScoring, ScoringOptions
from infer_cli.core import load_model

from conftest import run_infer_cli

distributed = pytest.importorskip("distributed")

PARTITIONS = 4


@pytest.fixture(scope="session")
def dask_scheduler() -> Iterator[str]:
    """The address of a local cluster shared by the tests: two in-process workers."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


def write_partitions(rows: pd.DataFrame, directory: Path, suffix: str = "csv") -> list[Path]:
    directory.mkdir()
    paths = []
    size = -(-len(rows) // PARTITIONS)
    for index in range(PARTITIONS):
        part = rows.iloc[index * size : (index + 1) * size]
        path = directory / f"day-{index}.{suffix}"
        if suffix == "parquet":
            part.to_parquet(path, index=False)
        else:
            part.to_csv(path, index=False)
        paths.append(path)
    return paths


def read_parts(directory: Path) -> pd.DataFrame:
    parts = sorted(directory.glob("part-*"))
    read = pd.read_parquet if parts[0].suffix == ".parquet" else pd.read_csv
    return pd.concat([read(part) for part in parts], ignore_index=True)


def single_process(model_path: Path, source: Path, output: Path, **options: Any) -> pd.DataFrame:
    job = BatchScoring(
        load_model(model_path), ScoringOptions(input=str(source), output=str(output), **options)
    )
    job.run()
    return pd.read_parquet(output) if output.suffix == ".parquet" else pd.read_csv(output)


def ok(result: Any) -> Any:
    assert result.exit_code == 0, result.output + result.stderr
    return result


def dask_predict(model: Path, tmp_path: Path, scheduler: str | None = None) -> list[Any]:
    """`predict --engine dask` from tmp_path/in to tmp_path/out, on `scheduler` if given."""
    on = ["--scheduler", scheduler] if scheduler else []
    return ["predict", "--engine", "dask", *on, "-m", model, "-i", tmp_path / "in",
            "-o", tmp_path / "out"]  # fmt: skip


def no_staging_left(directory: Path) -> bool:
    return not [item for item in directory.iterdir() if item.name.endswith(".part")]


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_one_part_per_partition_and_the_same_predictions_as_one_process(
    dask_scheduler: str,
    trained_models: dict[str, Path],
    sample_data: Path,
    tmp_path: Path,
    suffix: str,
) -> None:
    rows = pd.read_csv(sample_data / "churn_new.csv")
    write_partitions(rows, tmp_path / "in", suffix)
    out = tmp_path / "scored"
    out.mkdir()  # an empty directory is filled; only a non-empty one is refused
    options = ScoringOptions(
        input=str(tmp_path / "in" / f"*.{suffix}"), output=str(out), proba=True
    )
    job = DaskScoring(load_model(trained_models["churn"]), options, dask_scheduler)
    report = job.run()

    names = sorted(item.name for item in out.iterdir())
    assert names == ["_SUCCESS", *(f"part-{i:05d}.{suffix}" for i in range(PARTITIONS))]
    assert (report.partitions, report.partitions_done, report.workers) == (PARTITIONS, 4, 2)
    assert (report.rows_read, report.rows_scored, report.rows_rejected) == (len(rows), len(rows), 0)
    assert no_staging_left(tmp_path)
    whole = tmp_path / f"whole.{suffix}"
    rows.to_parquet(whole, index=False) if suffix == "parquet" else rows.to_csv(whole, index=False)
    expected = single_process(
        trained_models["churn"], whole, tmp_path / f"one.{suffix}", proba=True
    )
    pd.testing.assert_frame_equal(read_parts(out), expected)
    # Each part holds its own partition's rows, in order.
    first = pd.read_parquet if suffix == "parquet" else pd.read_csv
    assert list(first(out / f"part-00001.{suffix}")["customer_id"]) == list(
        rows["customer_id"].iloc[50:100]
    )


def test_skip_sets_bad_rows_aside_in_a_rejects_directory_and_counts_them(
    cli: Any,
    dask_scheduler: str,
    trained_models: dict[str, Path],
    sample_data: Path,
    tmp_path: Path,
) -> None:
    paths = write_partitions(pd.read_csv(sample_data / "churn_new.csv"), tmp_path / "in")
    lines = paths[2].read_text().splitlines()
    fields = lines[3].split(",")
    lines[3] = ",".join([fields[0], "lots", *fields[2:]])
    lines[7] = lines[7] + ",one field too many"
    paths[2].write_text("\n".join(lines) + "\n")
    summary = tmp_path / "summary.json"
    result = ok(
        cli(
            *dask_predict(trained_models["churn"], tmp_path, scheduler=dask_scheduler),
            "--keep",
            "customer_id",
            "--on-bad-rows",
            "skip",
            "--rejects",
            tmp_path / "rejects",
            "--summary-json",
            summary,
        )
    )
    figures = json.loads(summary.read_text())
    assert (figures["rows_read"], figures["rows_scored"], figures["rows_rejected"]) == (200, 198, 2)
    assert (figures["engine"], figures["partitions"], figures["workers"]) == ("dask", 4, 2)
    assert figures["status"] == "ok"
    rejects = pd.read_csv(tmp_path / "rejects" / "part-00002.csv")
    assert len(rejects) == 2
    assert rejects["reject_reason"].str.startswith(("line 4", "line 8")).all(), rejects
    # Like the single-process engine's rejects file, a part for every partition, empty or not.
    assert sorted(p.name for p in (tmp_path / "rejects").iterdir()) == [
        "_SUCCESS",
        *(f"part-{i:05d}.csv" for i in range(PARTITIONS)),
    ]
    assert len(pd.read_csv(tmp_path / "rejects" / "part-00000.csv")) == 0
    scored = read_parts(tmp_path / "out")
    assert list(scored.columns) == ["customer_id", "prediction"] and len(scored) == 198
    assert "rejected rows written to" in result.stderr


def test_a_bad_row_fails_naming_file_line_and_column_and_writes_no_directory(
    cli: Any,
    dask_scheduler: str,
    trained_models: dict[str, Path],
    sample_data: Path,
    tmp_path: Path,
) -> None:
    paths = write_partitions(pd.read_csv(sample_data / "iris_new.csv"), tmp_path / "in")
    lines = paths[1].read_text().splitlines()
    lines[2] = "5.0,oops,1.4,0.2"
    paths[1].write_text("\n".join(lines) + "\n")
    result = cli(
        *dask_predict(trained_models["iris"], tmp_path, scheduler=dask_scheduler),
    )
    assert result.exit_code == 3, result.output
    assert result.stderr == (
        f"infer-cli: error: {paths[1]}, line 3, column 'sepal_width': 'oops' is not a number\n"
    )
    assert not (tmp_path / "out").exists() and no_staging_left(tmp_path)


def test_an_existing_output_directory_with_files_is_refused_and_left_alone(
    cli: Any,
    dask_scheduler: str,
    trained_models: dict[str, Path],
    sample_data: Path,
    tmp_path: Path,
) -> None:
    write_partitions(pd.read_csv(sample_data / "iris_new.csv"), tmp_path / "in")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "part-00000.csv").write_text("yesterday\n")
    result = cli(
        *dask_predict(trained_models["iris"], tmp_path, scheduler=dask_scheduler),
    )
    assert result.exit_code == 2
    assert "the directory exists and is not empty" in result.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["part-00000.csv"]
    assert (tmp_path / "out" / "part-00000.csv").read_text() == "yesterday\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-i", "{tmp}/nothing-*.csv"], "nothing-*.csv: no CSV or Parquet files to score"),
        (["-i", "{tmp}/in", "-o", "-"], "--output: --engine dask writes a directory of parts"),
        (["-i", "{tmp}/in", "--on-bad-rows", "skip"], "--on-bad-rows skip needs --rejects DIR"),
    ],
)
def test_usage_errors(
    cli: Any,
    dask_scheduler: str,
    trained_models: dict[str, Path],
    sample_data: Path,
    tmp_path: Path,
    args: list[str],
    message: str,
) -> None:
    write_partitions(pd.read_csv(sample_data / "iris_new.csv"), tmp_path / "in")
    args = [arg.format(tmp=tmp_path) for arg in args]
    if "-o" not in args:
        args += ["-o", str(tmp_path / "out")]
    result = cli(
        "predict",
        "--engine",
        "dask",
        "--scheduler",
        dask_scheduler,
        "-m",
        trained_models["iris"],
        *args,
    )
    assert result.exit_code in (2, 3), result.output
    assert message in result.stderr
    assert not (tmp_path / "out").exists()


def test_scheduler_without_the_dask_engine_is_a_usage_error(cli: Any, tmp_path: Path) -> None:
    result = cli("predict", "--scheduler", "tcp://127.0.0.1:1", "-i", tmp_path / "x.csv")
    assert result.exit_code == 2
    assert result.stderr == "infer-cli: error: --scheduler is for --engine dask\n"


def test_without_dask_installed_the_error_says_how_to_install_it(tmp_path: Path) -> None:
    # A None entry in sys.modules makes `import distributed` fail as if it were not installed.
    blocked = (
        "import sys; sys.modules['distributed'] = None; "
        "from infer_cli.cli import main; "
        "sys.argv = ['infer-cli', 'predict', '--engine', 'dask', '-i', 'in', '-o', 'out']; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", blocked], capture_output=True, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.decode() == (
        "infer-cli: error: --engine dask needs Dask and its distributed scheduler: "
        "pip install '.[dask]' in infer-cli's checkout (or pip install dask distributed)\n"
    )


def test_without_a_scheduler_a_local_cluster_scores_and_the_summary_shows_it(
    trained_models: dict[str, Path], sample_data: Path, tmp_path: Path
) -> None:
    write_partitions(pd.read_csv(sample_data / "iris_new.csv"), tmp_path / "in")
    env = {**os.environ, "COLUMNS": "100"}
    result = run_infer_cli(
        *dask_predict(trained_models["iris"], tmp_path),
        env=env,
    )
    assert result.returncode == 0, result.stderr
    stderr = result.stderr.decode()
    for label, value in [
        ("partitions", PARTITIONS),
        ("workers", len(os.sched_getaffinity(0))),
        ("rows read", 30),
    ]:
        assert any(
            line.split()[:-1] == label.split() and line.split()[-1] == str(value)
            for line in stderr.splitlines()
        ), stderr
    assert "rows per second" in stderr
    assert len(read_parts(tmp_path / "out")) == 30 and (tmp_path / "out" / "_SUCCESS").exists()


def test_a_scheduler_and_a_worker_started_apart_score_through_loopback(
    trained_models: dict[str, Path], sample_data: Path, tmp_path: Path
) -> None:
    rows = pd.read_csv(sample_data / "churn_new.csv")
    write_partitions(rows, tmp_path / "in")
    dask = str(Path(sys.executable).with_name("dask"))
    contact = tmp_path / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": tmp_path}
    processes = [
        subprocess.Popen(
            [
                dask,
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                contact,
            ],
            **quiet,
        )
    ]
    try:
        deadline = time.monotonic() + 30
        while not contact.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(contact.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:") and not address.endswith(":8786")
        processes.append(
            subprocess.Popen(
                [
                    dask,
                    "worker",
                    address,
                    "--host",
                    "127.0.0.1",
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--no-nanny",
                ],
                **quiet,
            )
        )
        result = run_infer_cli(
            *dask_predict(trained_models["churn"], tmp_path, scheduler=address),
            "--proba",
            "--summary-json",
            tmp_path / "s.json",
        )
        assert result.returncode == 0, result.stderr
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    figures = json.loads((tmp_path / "s.json").read_text())
    assert (figures["scheduler"], figures["workers"], figures["partitions"]) == (address, 1, 4)
    whole = tmp_path / "whole.csv"
    rows.to_csv(whole, index=False)
    expected = single_process(trained_models["churn"], whole, tmp_path / "one.csv", proba=True)
    pd.testing.assert_frame_equal(read_parts(tmp_path / "out"), expected)
