"""Real MLflow stores, made by MLflow itself once per session, for the model URI tests: a
SQLite store, a file store, and an `mlflow server` (basic auth, artifact proxy, SQLite
backend) on a free loopback port.

Each holds the same registry: `iris` version 1 (a strongly regularized logistic
regression, Staging, @champion), version 2 (logistic regression, Production, @challenger),
version 3 (deleted); a logged
model that was never registered; a run with an MLflow 2 style model in its artifacts;
`remote`, whose only version lives in S3; `pending`, for a registration still under way;
and, on the server, `flaky` (version 2's model file is broken) for hot reloads.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

SAMPLE_DATA = Path(__file__).resolve().parent.parent / "sample_data"
USER = "admin"
PASSWORD = "infer-cli-Test-Passw0rd"
S3_SOURCE = "s3://infer-cli-test-bucket/models/remote"
_STARTUP_SECONDS = 180


@dataclass
class Store:
    """A populated store: its tracking URI and the ids MLflow gave what was logged."""

    kind: str
    tracking_uri: str
    root: Path
    runs: dict[str, str] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    database: Path | None = None
    artifacts: Path | None = None

    def cli_env(self, **extra: str) -> dict[str, str]:
        """The environment of an infer-cli subprocess reading this store."""
        environment = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        return {**environment, **self.env, **extra}


def iris_features() -> pd.DataFrame:
    return pd.read_csv(SAMPLE_DATA / "iris.csv").drop(columns=["species"])


@pytest.fixture(scope="session")
def mlflow_module() -> Iterator[Any]:
    """MLflow, imported once, allowed its file store and its pickles."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
        patch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        if _SERVER.wanted:
            _SERVER.launch()  # starts while the stores are populated
        import mlflow
        import mlflow.pyfunc
        import mlflow.sklearn

        yield mlflow


@pytest.fixture(scope="session")
def sqlite_store(mlflow_module: Any, tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("sqlite_store")
    database = root / "mlflow.db"
    store = Store("sqlite", f"sqlite:///{database}", root, database=database)
    # The artifact root of a SQLite store is ./mlruns where the client runs, as MLflow's
    # default store is used: a directory beside the database.
    with _working_directory(root), as_client_of(store):
        _populate(mlflow_module, store)
    return store


@pytest.fixture(scope="session")
def file_store(mlflow_module: Any, tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("file_store") / "mlruns"
    store = Store("files", root.as_uri(), root)
    with as_client_of(store):
        _populate(mlflow_module, store)
    return store


class _ServerProcess:
    """`mlflow server` with basic auth and artifact proxying, in a directory of its own.

    It takes many seconds to start, so it is launched as soon as the tests are collected
    (when one of them needs it) and waited for only when first used.
    """

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.wanted = False
        self.root = Path()
        self.url = ""

    def launch(self) -> None:
        if self.process is not None:
            return
        self.root = Path(tempfile.mkdtemp(prefix="infer-cli-mlflow-server-"))
        (self.root / "auth.ini").write_text(
            "[mlflow]\ndefault_permission = READ\n"
            f"database_uri = sqlite:///{self.root / 'auth.db'}\nadmin_username = {USER}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            # Each request's password check is a deliberately slow hash; remember good ones.
            "auth_cache_ttl_seconds = 600\n"
        )
        port = _free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
            "MLFLOW_AUTH_CONFIG_PATH": str(self.root / "auth.ini"),
            "MLFLOW_AUTH_ADMIN_PASSWORD": PASSWORD,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "infer-cli-tests",
            # Its background job runner (a queue and its consumers) is not used here.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        command = [
            sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
            "--artifacts-destination", str(self.root / "artifacts"), "--serve-artifacts",
            "--workers", "1", "--app-name", "basic-auth",
        ]  # fmt: skip
        with open(self.root / "server.log", "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _WATCHDOG, str(os.getpid()), *command],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.root,
                start_new_session=True,
            )  # fmt: skip
        self.url = f"http://127.0.0.1:{port}"

    def ready(self) -> tuple[str, Path]:
        self.launch()
        assert self.process is not None
        _wait_until_up(self.url, self.process, self.root / "server.log")
        return self.url, self.root

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
            self.process = None
            shutil.rmtree(self.root, ignore_errors=True)


# Runs the server as its child and, should the tests' process die without stopping it (a
# SIGKILL, a CI time limit), stops the server's whole process group instead of leaving it.
_WATCHDOG = """
import os, signal, subprocess, sys, time
tests, command = int(sys.argv[1]), sys.argv[2:]
server = subprocess.Popen(command)
while server.poll() is None:
    if os.getppid() != tests:
        os.killpg(0, signal.SIGKILL)
    time.sleep(0.5)
sys.exit(server.returncode)
"""
_SERVER = _ServerProcess()


def pytest_collection_finish(session: pytest.Session) -> None:
    wanted = any("server_store" in getattr(item, "fixturenames", ()) for item in session.items)
    # A worker of pytest-xdist collects every test but runs only some files: a worker that
    # imports MLflow for its stores starts the server then (see `mlflow_module`).
    _SERVER.wanted = wanted
    if wanted and "PYTEST_XDIST_WORKER" not in os.environ:
        _SERVER.launch()


def pytest_sessionfinish(session: pytest.Session) -> None:
    _SERVER.stop()


@pytest.fixture(scope="session")
def mlflow_server() -> Iterator[tuple[str, Path]]:
    """The tracking server's URL and its directory."""
    try:
        yield _SERVER.ready()
    finally:
        _SERVER.stop()


@pytest.fixture(scope="session")
def server_store(mlflow_module: Any, mlflow_server: tuple[str, Path]) -> Iterator[Store]:
    url, root = mlflow_server
    credentials = {"MLFLOW_TRACKING_USERNAME": USER, "MLFLOW_TRACKING_PASSWORD": PASSWORD}
    store = Store(
        "server", url, root, env=credentials, database=root / "mlflow.db",
        artifacts=root / "artifacts",
    )  # fmt: skip
    with as_client_of(store):
        _populate(mlflow_module, store)
        _add_flaky_model(mlflow_module, store)
    yield store


@pytest.fixture(params=["sqlite", "file", "server"])
def store(request: pytest.FixtureRequest) -> Store:
    """Each kind of store in turn."""
    return request.getfixturevalue(f"{request.param}_store")  # type: ignore[no-any-return]


@pytest.fixture
def mlflow_predictions(mlflow_module: Any) -> Any:
    """What MLflow itself predicts for a model URI resolved in a store."""

    def predict(store: Store, uri: str, frame: pd.DataFrame) -> list[Any]:
        with as_client_of(store):
            return list(mlflow_module.pyfunc.load_model(uri).predict(frame))

    return predict


class as_client_of:
    """MLflow's client pointed at a store (credentials included) for the block."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.patch = pytest.MonkeyPatch()

    def __enter__(self) -> None:
        import mlflow

        for key, value in self.store.env.items():
            self.patch.setenv(key, value)
        self.previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(self.store.tracking_uri)

    def __exit__(self, *exc: object) -> None:
        import mlflow

        mlflow.set_tracking_uri(self.previous)
        self.patch.undo()


def _populate(mlflow: Any, store: Store) -> None:
    from sklearn.linear_model import LogisticRegression, RidgeClassifier
    from sklearn.naive_bayes import GaussianNB

    client = mlflow.MlflowClient()
    frame = pd.read_csv(SAMPLE_DATA / "iris.csv")
    features, labels = frame.drop(columns=["species"]), frame["species"]
    estimators = [
        LogisticRegression(C=0.001, max_iter=1000),
        LogisticRegression(max_iter=1000),
        GaussianNB(),
    ]
    for number, estimator in enumerate(estimators, start=1):
        info = _log(mlflow, estimator.fit(features, labels), features, "iris")
        store.runs[f"v{number}"], store.models[f"v{number}"] = info.run_id, info.model_id
    client.delete_model_version("iris", 3)
    client.set_registered_model_alias("iris", "champion", 1)
    client.set_registered_model_alias("iris", "challenger", 2)
    client.set_registered_model_alias("iris", "reload", 1)
    client.transition_model_version_stage("iris", 1, "Staging")
    client.transition_model_version_stage("iris", 2, "Production")
    info = _log(mlflow, RidgeClassifier().fit(features, labels), features, None)
    store.runs["unregistered"], store.models["unregistered"] = info.run_id, info.model_id
    with mlflow.start_run() as run, tempfile.TemporaryDirectory() as scratch:
        legacy = LogisticRegression(C=0.05, max_iter=1000).fit(features, labels)
        mlflow.sklearn.save_model(
            legacy, Path(scratch) / "legacy", input_example=features.head(3),
            pip_requirements=[],
        )  # fmt: skip
        mlflow.log_artifacts(str(Path(scratch) / "legacy"), "legacy")
        store.runs["legacy"] = run.info.run_id
    client.create_registered_model("remote")
    client.create_model_version("remote", S3_SOURCE)
    _log(mlflow, estimators[1], features, "pending")


def _add_flaky_model(mlflow: Any, store: Store) -> None:
    """`flaky`: version 1 serves, version 2's model file is garbage on the server's disk."""
    from sklearn.linear_model import LogisticRegression

    frame = pd.read_csv(SAMPLE_DATA / "iris.csv")
    features, labels = frame.drop(columns=["species"]), frame["species"]
    _log(mlflow, LogisticRegression(max_iter=1000).fit(features, labels), features, "flaky")
    broken = _log(
        mlflow, LogisticRegression(max_iter=1000).fit(features, labels), features, "flaky"
    )
    assert store.artifacts is not None
    for model_file in store.artifacts.glob(f"*/models/{broken.model_id}/artifacts/model.skops"):
        model_file.write_bytes(b"not a model" * (model_file.stat().st_size // 11 + 1))
    mlflow.MlflowClient().set_registered_model_alias("flaky", "live", 1)


def _log(mlflow: Any, estimator: Any, features: pd.DataFrame, registered: str | None) -> Any:
    with mlflow.start_run():
        return mlflow.sklearn.log_model(
            estimator, name="model", registered_model_name=registered,
            input_example=features.head(3), pip_requirements=[],
        )  # fmt: skip


class _working_directory:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        self.previous = os.getcwd()
        os.chdir(self.path)

    def __exit__(self, *exc: object) -> None:
        os.chdir(self.previous)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"mlflow server exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    _stop(process)
    raise AssertionError(f"mlflow server did not start:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server and the workers it started: its own process group, whole."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            return
        # Its workers wait for idle keep-alive clients before they exit: a short grace.
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            process.poll()
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
