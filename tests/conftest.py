"""Shared fixtures: models trained once per session on the sample data, and CLI runners."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from infer_cli.cli import app
from infer_cli.model import save_model
from infer_cli.training import TrainOptions, train

SAMPLE_DATA = Path(__file__).resolve().parent.parent / "sample_data"
TARGETS = {"iris": "species", "churn": "churned", "reviews": "sentiment", "housing": "price"}


@pytest.fixture(scope="session")
def sample_data() -> Path:
    return SAMPLE_DATA


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One saved model per sample set, trained once for the whole session."""
    root = tmp_path_factory.mktemp("models")
    paths = {}
    for name, target in TARGETS.items():
        result = train(pd.read_csv(SAMPLE_DATA / f"{name}.csv"), TrainOptions(target=target))
        paths[name] = root / name
        save_model(result.estimator, result.card, paths[name])
    return paths


@pytest.fixture
def model_copy(trained_models: dict[str, Path], tmp_path: Path) -> Callable[[str], Path]:
    """A private copy of a trained model, for tests that change or break it."""

    def copy(name: str) -> Path:
        destination = tmp_path / f"model_{name}"
        shutil.copytree(trained_models[name], destination)
        return destination

    return copy


@pytest.fixture
def cli() -> Callable[..., object]:
    """Run infer-cli in-process through typer's test runner."""
    runner = CliRunner()

    def invoke(*args: str, input: str | bytes | None = None) -> object:
        return runner.invoke(app, [str(arg) for arg in args], input=input)

    return invoke


def run_infer_cli(
    *args: str | Path, input: bytes | None = None, cwd: Path | None = None, env: dict | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run the installed `infer-cli` command as a real subprocess."""
    executable = Path(sys.executable).with_name("infer-cli")
    return subprocess.run(
        [str(executable), *(str(arg) for arg in args)],
        input=input,
        capture_output=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )
