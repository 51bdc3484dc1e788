"""Shared fixtures: models trained once per session on the sample data, and CLI runners."""

from __future__ import annotations

import http.client
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import typer
import typer.main
import typer.testing
from typer.testing import CliRunner

from infer_cli.cli import app
from infer_cli.core import Column, Model, ModelCard, Signature, save_model
from infer_cli.serve import ServeOptions
from infer_cli.serve.routes import App
from infer_cli.serve.server import PredictionServer
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


@pytest.fixture(scope="session")
def _app_built_once() -> Iterator[None]:
    """Typer builds the click command from the app anew at every call of its test runner,
    which costs a test about 0.3 s: build it once."""
    built = typer.main.get_command(app)

    def command_of(typer_app: typer.Typer) -> Any:
        return built if typer_app is app else typer.main.get_command(typer_app)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(typer.testing, "_get_command", command_of)
        yield


@pytest.fixture
def cli(_app_built_once: None) -> Callable[..., object]:
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
        timeout=300,  # a Dask cluster starting on a busy 2-core machine takes its time
    )


COLUMNS = ["a", "b", "c", "d"]
Server = Callable[..., tuple[App, int]]


@pytest.fixture(scope="session")
def numeric_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scaler + logistic regression on four float columns: the server's fast lane."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(300, 4)), columns=COLUMNS)
    y = np.where(x["a"] + x["b"] - x["c"] > 0, "yes", "no")
    pipeline = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())]).fit(x, y)
    card = ModelCard(
        task="classification",
        target="label",
        classes=["no", "yes"],
        signature=Signature(tuple(Column(name, "float") for name in COLUMNS)),
    )
    path = tmp_path_factory.mktemp("numeric") / "numeric"
    save_model(pipeline, card, path)
    return path


@pytest.fixture
def serve() -> Iterator[Server]:
    """Start an in-process server on a free port; stopped after the test."""
    servers = []

    def start(model: Model | None, **options: Any) -> tuple[App, int]:
        app = App(ServeOptions(access_log=False, **options))
        app.model = model
        server = make_server(app, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return app, server.server_address[1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def call(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    content_type: str | None = "application/json",
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    headers = {"Content-Type": content_type} if content_type and body is not None else {}
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


class SlowEstimator:
    """An estimator that takes its time, for timeouts, batching and draining."""

    def __init__(self, inner: Any, seconds: float, fail: bool = False) -> None:
        self.inner = inner
        self.seconds = seconds
        self.fail = fail
        self.feature_names_in_ = getattr(inner, "feature_names_in_", None)
        self.predicting = threading.Event()

    def predict(self, features: Any) -> Any:
        self.predicting.set()
        time.sleep(self.seconds)
        if self.fail:
            raise RuntimeError("the model broke")
        return self.inner.predict(features)

    def predict_proba(self, features: Any) -> Any:
        return self.inner.predict_proba(features)


def make_server(app: App, host: str = "127.0.0.1", port: int = 0) -> PredictionServer:
    """A bound, listening server for `app` on a free port; run it with `serve_forever()`."""
    return PredictionServer((host, port), app)


# Real MLflow stores (SQLite, files, a tracking server), made once per session.
from mlflow_stores import (  # noqa: E402, F401
    file_store,
    mlflow_module,
    mlflow_predictions,
    mlflow_server,
    pytest_collection_finish,
    pytest_sessionfinish,
    server_store,
    sqlite_store,
    store,
)
