"""The command line: exit codes, error lines, help, and real subprocess runs."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pytest
from typer.main import get_command
from typer.testing import CliRunner

from infer_cli.cli import app

from conftest import run_infer_cli

COMMANDS = [c.name or c.callback.__name__ for c in app.registered_commands]
# What a metavar may be: a word naming the value (FILE, COLS, N,N), or the choices.
METAVAR = re.compile(r"[A-Z][A-Z,]*|\[[a-z0-9.-]+(\|[a-z0-9.-]+)+\]")


def _help(*command: str) -> str:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_every_help_page_fits_80_columns_and_names_its_values(command: str) -> None:
    page = _help(*filter(None, [command]))
    assert all(len(line) <= 80 for line in page.splitlines()), page
    # No Python type names as metavars, nothing cut.
    assert not re.search(r"<(str|int|float|bool|list|path)|\w\.\.\.\n|…", page), page
    assert "\n  Examples:\n" in page
    examples = page.split("\n  Examples:\n", 1)[1]
    assert examples.count("infer-cli ") >= 2
    group = get_command(app)
    params = group.commands[command].params if command else group.params
    for param in params:
        if param.hidden or param.name == "help":
            continue
        name = max(param.opts, key=len)
        if param.is_flag:
            assert param.metavar in (None, ""), param.opts
            assert re.search(rf"^  (-\w, )?{name}(/| |$)", page, re.MULTILINE), name
            continue
        assert METAVAR.fullmatch(param.metavar or ""), (command, param.opts, param.metavar)
        assert f"{name} {param.metavar}" in page


@pytest.mark.parametrize(
    ("command", "option", "choices"),
    [
        ("predict", "--engine", "[single|dask]"),
        ("predict", "--on-bad-rows", "[fail|skip]"),
        ("predict", "--input-format", "[csv|csv.gz|tsv|parquet|jsonl]"),
        ("predict", "--output-format", "[csv|csv.gz|tsv|parquet|jsonl|mlflow-json]"),
        ("train", "--algorithm", "[auto|logistic|forest|gbm|linear|ridge]"),
        ("train", "--task", "[auto|classification|regression]"),
        ("train", "--format", "[joblib|skops]"),
    ],
)
def test_choices_are_listed_and_checked(cli: Any, command: str, option: str, choices: str) -> None:
    assert f"{option} {choices}" in _help(command)
    result = cli(command, option, "nope")
    assert result.exit_code == 2
    wanted = ", ".join(f"'{choice}'" for choice in choices.strip("[]").split("|"))
    assert result.stderr == (
        f"infer-cli: error: invalid value for '{option}': 'nope' is not one of {wanted}\n"
    )


def test_shell_completion_is_offered() -> None:
    page = _help()
    assert "--install-completion" in page and "--show-completion" in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["evaluate", "--thresold", "0.3"],
            "evaluate has no option --thresold (did you mean --threshold or --choose-threshold?)",
        ),
        (
            ["serve", "--choose-threshold", "f1"],
            "serve has no option --choose-threshold (evaluate takes it)",
        ),
        (["predict", "-t", "y"], "predict has no option -t (evaluate and train take it)"),
        (["predict", "--engine"], "option '--engine' requires an argument"),
        (
            ["predict", "--batch-size", "many"],
            "invalid value for '--batch-size': expected a whole number",
        ),
        (
            ["serve", "--workers", "0"],
            "invalid value for '--workers' / '-w': must be at least 1 (got 0)",
        ),
        (["predict", "--threshold", "½"], "invalid value for '--threshold': expected a number"),
        (
            ["predict", "--engine", "spark"],
            "invalid value for '--engine': 'spark' is not one of 'single', 'dask'",
        ),
        (["train", "-t", "y"], "missing option '--input' / '-i'"),
        (["predcit"], "no such command 'predcit' (did you mean 'predict'?)"),
        (["info", "extra"], "got unexpected extra argument(s) (extra)"),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2(args: list[str], message: str) -> None:
    result = run_infer_cli(*args)
    assert result.returncode == 2
    assert result.stderr.decode() == f"infer-cli: error: {message}\n"
    assert result.stdout == b""


def test_train_model_still_names_the_algorithm_with_a_notice(
    cli: Any, sample_data: Path, tmp_path: Path
) -> None:
    result = cli(
        "train", "-i", sample_data / "iris.csv", "-t", "species", "-o", tmp_path / "m",
        "--model", "forest",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "--model is now --algorithm" in result.stderr
    assert json.loads((tmp_path / "m" / "model.json").read_text())["training"]["model"] == "forest"


def test_train_then_predict_with_the_default_model_directory(
    cli: Any, sample_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INFER_CLI_MODEL", raising=False)
    result = cli("train", "-i", sample_data / "churn.csv", "--target", "churned")
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.stderr
    assert "Confusion matrix" in result.stderr
    assert json.loads((tmp_path / "model" / "model.json").read_text())["target"] == "churned"
    # Each phase timed apart, the import of scikit-learn too; in-process, no start-up row.
    phases = ["read time", "import time", "prepare time", "fit time", "measure time", "save"]
    assert all(phase in result.stderr for phase in phases), result.stderr
    assert "start-up time" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("model saved in model/ (model.joblib, sha256 "), last
    assert last.endswith("): infer-cli predict -m model"), last

    result = cli("predict", "-i", sample_data / "churn_new.csv", "-o", "out.csv")
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(tmp_path / "out.csv")
    new = pd.read_csv(sample_data / "churn_new.csv")
    assert len(scored) == len(new)
    assert list(scored.columns) == [*new.columns, "prediction"]
    assert scored["customer_id"].tolist() == new["customer_id"].tolist()
    assert set(scored["prediction"]) <= {"yes", "no"}


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["-i", "{data}/nope.csv", "--target", "y"], 3, "{data}/nope.csv: no such file"),
        (["-i", "{data}/iris.csv", "--target", "colour"], 2, "no target column 'colour'"),
        (
            ["-i", "{data}/iris.csv", "--target", "species", "--algorithm", "magic"],
            2,
            "'magic' is not one of",
        ),
        (["-i", "{tmp}/empty.csv", "--target", "y"], 3, "empty.csv: the file is empty"),
        (["-i", "{tmp}/header.csv", "--target", "y"], 3, "header.csv: has a header but no rows"),
        (["-i", "{tmp}/ragged.csv", "--target", "y"], 3, "ragged.csv: malformed CSV"),
        (["-i", "{tmp}/single.csv", "--target", "y"], 3, "target 'y' has a single class"),
    ],
)
def test_train_errors_are_one_line_and_an_exit_code(
    cli: Any, sample_data: Path, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("x,y\n")
    (tmp_path / "ragged.csv").write_text("x,y\n1,2\n3,4,5\n")
    (tmp_path / "single.csv").write_text("x,y\n" + "".join(f"{i},a\n" for i in range(10)))
    fill = {"data": str(sample_data), "tmp": str(tmp_path)}
    result = cli("train", *(a.format(**fill) for a in args), "-o", tmp_path / "m")
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("infer-cli: error: ")
    assert message.format(**fill) in lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "m").exists()


def test_predict_with_a_missing_model_directory_is_a_model_error(
    cli: Any, sample_data: Path, tmp_path: Path
) -> None:
    result = cli("predict", "-m", tmp_path / "none", "-i", sample_data / "iris_new.csv")
    assert result.exit_code == 4
    assert f"no model at '{tmp_path / 'none'}'" in result.stderr


def test_debug_shows_the_traceback(cli: Any, tmp_path: Path) -> None:
    result = cli("predict", "-m", tmp_path / "none", "-i", "x.csv", "--debug")
    assert result.exit_code == 4
    assert "Traceback" in result.stderr


def test_predict_leaves_no_output_when_the_input_does_not_match(
    cli: Any, trained_models: dict[str, Path], sample_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.csv"
    out.write_text("previous results\n")
    result = cli(
        "predict", "-m", trained_models["churn"], "-i", sample_data / "iris.csv", "-o", out
    )
    assert result.exit_code == 3
    assert "missing column 'tenure_months'" in result.stderr
    assert out.read_text() == "previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_installed_command_trains_and_predicts_through_a_pipe(
    sample_data: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "INFER_CLI_MODEL": str(tmp_path / "reviews_model")}
    trained = run_infer_cli(
        "train", "-i", sample_data / "reviews.csv", "--target", "sentiment",
        "-o", tmp_path / "reviews_model", env=env,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr.decode()
    scored = run_infer_cli(
        "predict", "--proba", input=(sample_data / "reviews_new.csv").read_bytes(), env=env
    )
    assert scored.returncode == 0, scored.stderr.decode()
    # The console script counts its wall time from the process's start, and shows the
    # start-up (interpreter, first imports) apart.
    for report in (trained.stderr, scored.stderr):
        assert b"start-up time" in report and b"wall time" in report, report.decode()
    lines = scored.stdout.decode().splitlines()
    assert lines[0] == "review_id,review,prediction,proba_negative,proba_positive"
    assert len(lines) == 1 + len(pd.read_csv(sample_data / "reviews_new.csv"))
    assert b"rows scored" in scored.stderr


def test_python_dash_m_runs_the_same_cli() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "infer_cli", "--version"], capture_output=True, timeout=60
    )
    assert result.returncode == 0
    assert result.stdout.decode().startswith("infer-cli ")


@pytest.mark.parametrize("given", [None, "28"])
def test_the_command_shortens_openblas_idle_spin_unless_the_environment_sets_it(
    given: str | None,
) -> None:
    import subprocess
    import sys

    shown = (
        "import atexit, os, sys\n"
        "atexit.register(lambda: print(os.environ.get('OPENBLAS_THREAD_TIMEOUT')))\n"
        "sys.argv = ['infer-cli', '--version']\n"
        "from infer_cli.cli import main\n"
        "main()\n"
    )
    environment = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if given is not None:
        environment["OPENBLAS_THREAD_TIMEOUT"] = given
    result = subprocess.run(
        [sys.executable, "-c", shown], capture_output=True, timeout=60, env=environment
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().splitlines()[-1] == (given or "4")


@pytest.mark.parametrize(
    "text",
    ["7", " 7 ", "+7", "-2", "1_000", "7.0", "7.5", "1e3", "inf", "nan", "0x10", "", "1__0",
     "١٢", "7,5", "true", "off", "csv", "CSV"],
)  # fmt: skip
def test_option_values_are_read_as_typer_reads_them_without_pydantic(text: str) -> None:
    from pydantic import TypeAdapter, ValidationError

    from infer_cli.cli import _reader

    for annotation in (int, float, bool, str, int | None, Literal["csv", "tsv"]):
        read = _reader(annotation)
        assert read is not None, annotation
        try:
            expected = TypeAdapter(annotation).validate_python(text)
        except ValidationError:
            with pytest.raises(ValueError):
                read(text)
            continue
        assert str(read(text)) == str(expected), (annotation, text)
