"""Destructive paths: a model saved over a directory that is not a model, and output paths
that name an input (or one another) under another spelling. Each must be refused with exit
code 2 before anything is read or written, leaving every file as it was."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import run_infer_cli

FEATURES = "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n"


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` (hidden ones too) and its bytes."""
    return {
        str(path.relative_to(directory)): path.read_bytes() if path.is_file() else b"<dir>"
        for path in sorted(directory.rglob("*"))
    }


def train_into(sample_data: Path, output: Path) -> tuple[int, str]:
    trained = run_infer_cli(
        "train", "-i", sample_data / "iris.csv", "--target", "species", "-o", output, "-q"
    )
    return trained.returncode, trained.stderr.decode()


def _data_and_notes(directory: Path) -> None:
    (directory / "iris.csv").write_text(FEATURES)
    (directory / "notes.txt").write_text("mine\n")


def _a_model_and_a_stray_file(directory: Path) -> None:
    (directory / "model.json").write_text("{}\n")
    (directory / "model.joblib").write_bytes(b"not really")
    (directory / "README.md").write_text("what this model is\n")


def _a_model_and_a_subdirectory(directory: Path) -> None:
    (directory / "model.json").write_text("{}\n")
    (directory / "runs").mkdir()
    (directory / "runs" / "log.txt").write_text("epoch 1\n")


def _a_model_file_without_its_card(directory: Path) -> None:
    (directory / "model.joblib").write_bytes(b"someone else's")


@pytest.mark.parametrize(
    "fill",
    [_data_and_notes, _a_model_and_a_stray_file, _a_model_and_a_subdirectory,
     _a_model_file_without_its_card],
)  # fmt: skip
def test_train_does_not_replace_a_directory_that_holds_more_than_a_model(
    sample_data: Path, tmp_path: Path, fill: Callable[[Path], None]
) -> None:
    target = tmp_path / "out"
    target.mkdir()
    fill(target)
    before = snapshot(tmp_path)
    code, stderr = train_into(sample_data, target)
    assert code == 2, stderr
    assert stderr.startswith(f"infer-cli: error: cannot save the model to '{target}': ")
    assert "saving would delete them; choose another directory" in stderr
    assert stderr.count("\n") == 1
    assert snapshot(tmp_path) == before


def test_train_refuses_the_directory_its_own_data_is_in(sample_data: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "iris.csv").write_bytes((sample_data / "iris.csv").read_bytes())
    trained = run_infer_cli("train", "-i", data / "iris.csv", "--target", "species", "-o", data)
    assert trained.returncode == 2
    assert b"(iris.csv)" in trained.stderr
    assert (data / "iris.csv").read_bytes() == (sample_data / "iris.csv").read_bytes()


def test_train_does_not_replace_a_symbolic_link_or_a_file(
    sample_data: Path, tmp_path: Path
) -> None:
    real = tmp_path / "models" / "v3"
    assert train_into(sample_data, real)[0] == 0
    link = tmp_path / "current"
    link.symlink_to(real)
    plain = tmp_path / "plain"
    plain.write_text("a file\n")
    before = snapshot(tmp_path)
    code, stderr = train_into(sample_data, link)
    assert code == 2
    assert "it is a symbolic link; name the directory it points to" in stderr
    code, stderr = train_into(sample_data, plain)
    assert code == 2
    assert "a file of that name exists" in stderr
    assert snapshot(tmp_path) == before


def test_train_replaces_a_model_or_an_empty_directory(sample_data: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    assert train_into(sample_data, model) == (0, "")
    first = (model / "model.json").read_text()
    assert train_into(sample_data, model) == (0, "")
    assert (model / "model.json").read_text() != first  # a new creation time
    assert sorted(p.name for p in model.iterdir()) == ["model.joblib", "model.json"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert train_into(sample_data, empty) == (0, "")
    assert (empty / "model.json").is_file()


@pytest.fixture
def workspace(tmp_path: Path, trained_models: dict[str, Path]) -> Path:
    """A directory with an input file, a previous output, the iris model and links to them."""
    (tmp_path / "in.csv").write_text(FEATURES)
    (tmp_path / "out.csv").write_text("previous results\n")
    (tmp_path / "link.csv").symlink_to(tmp_path / "in.csv")
    os.link(tmp_path / "in.csv", tmp_path / "hard.csv")
    (tmp_path / "model").symlink_to(trained_models["iris"], target_is_directory=True)
    return tmp_path


# Each names the input or the output a second time, spelled another way.
ALIASES = [
    (["-i", "in.csv", "-o", "in.csv"], "--output in.csv is the same file as --input in.csv"),
    (["-i", "in.csv", "-o", "./in.csv"], "--output ./in.csv is the same file as --input in.csv"),
    (["-i", "{tmp}/in.csv", "-o", "in.csv"], "--output in.csv is the same file as --input {tmp}"),
    (["-i", "link.csv", "-o", "in.csv"], "--output in.csv is the same file as --input link.csv"),
    (["-i", "in.csv", "-o", "link.csv"], "--output link.csv is the same file as --input in.csv"),
    (["-i", "hard.csv", "-o", "in.csv"], "--output in.csv is the same file as --input hard.csv"),
    (["-i", "in.csv", "-o", "o.csv", "--on-bad-rows", "skip", "--rejects", "./in.csv"],
     "--rejects ./in.csv is the same file as --input in.csv"),
    (["-i", "in.csv", "-o", "out.csv", "--on-bad-rows", "skip", "--rejects", "{tmp}/out.csv"],
     "--rejects {tmp}/out.csv is the same file as --output out.csv"),
    (["-i", "in.csv", "-o", "o.csv", "--summary-json", "hard.csv"],
     "--summary-json hard.csv is the same file as --input in.csv"),
    (["-i", "in.csv", "-o", "out.csv", "--summary-json", "./out.csv"],
     "--summary-json ./out.csv is the same file as --output out.csv"),
    (["-i", "in.csv", "-o", "model/model.json"],
     "--output model/model.json would write into --model model"),
    (["-i", "in.csv", "-o", "o.csv", "--summary-json", "model/model.joblib"],
     "--summary-json model/model.joblib would write into --model model"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), ALIASES)
def test_output_paths_that_alias_are_refused_before_anything_is_read(
    workspace: Path, trained_models: dict[str, Path], args: list[str], message: str
) -> None:
    model = trained_models["iris"]
    before = snapshot(workspace) | snapshot(model)
    args = [arg.replace("{tmp}", str(workspace)) for arg in args]
    result = run_infer_cli("predict", "-m", "model", *args, cwd=workspace)
    assert result.returncode == 2, result.stderr.decode()
    stderr = result.stderr.decode()
    assert stderr.startswith("infer-cli: error: " + message.replace("{tmp}", str(workspace)))
    assert stderr.count("\n") == 1
    assert snapshot(workspace) | snapshot(model) == before


def test_aliases_are_refused_before_the_model_is_loaded(workspace: Path) -> None:
    """A model that does not exist is exit code 4 once loading starts: 2 says nothing was read."""
    result = run_infer_cli("predict", "-m", "nowhere", "-i", "in.csv", "-o", "./in.csv",
                           cwd=workspace)  # fmt: skip
    assert result.returncode == 2
    assert b"is the same file as --input" in result.stderr


def test_distinct_outputs_and_a_device_named_twice_are_allowed(workspace: Path) -> None:
    result = run_infer_cli(
        "predict", "-m", "model", "-i", "link.csv", "-o", "scored.csv", "--on-bad-rows", "skip",
        "--rejects", os.devnull, "--summary-json", os.devnull, "-q", cwd=workspace,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    assert (workspace / "scored.csv").read_text().splitlines()[0].endswith(",prediction")
    assert (workspace / "in.csv").read_text() == FEATURES


def test_dask_summary_naming_a_partition_is_refused(workspace: Path) -> None:
    pytest.importorskip("distributed")
    parts = workspace / "parts"
    parts.mkdir()
    (parts / "a.csv").write_text(FEATURES)
    (parts / "b.csv").write_text(FEATURES)
    result = run_infer_cli(
        "predict", "--engine", "dask", "-m", "model", "-i", "parts", "-o", "scored",
        "--summary-json", "parts/../parts/b.csv", cwd=workspace,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr.decode()
    assert b"--summary-json parts/../parts/b.csv is the same file as --input" in result.stderr
    assert (parts / "b.csv").read_text() == FEATURES
    assert not (workspace / "scored").exists()


def test_dask_rejects_naming_the_output_directory_is_refused(workspace: Path) -> None:
    pytest.importorskip("distributed")
    parts = workspace / "parts"
    parts.mkdir()
    (parts / "a.csv").write_text(FEATURES)
    (workspace / "scored").mkdir()
    result = run_infer_cli(
        "predict", "--engine", "dask", "-m", "model", "-i", "parts", "-o", "scored",
        "--on-bad-rows", "skip", "--rejects", f"{workspace}/scored/", cwd=workspace,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr.decode()
    assert b"--rejects " in result.stderr
    assert b"is the same file as --output scored" in result.stderr
