"""`serve -m models:/NAME@ALIAS --reload`: the server follows the registry, swapping in the
version an alias moves to, and keeps serving the old one when the new one is broken."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow_stores import PASSWORD, USER, Store, iris_features

from infer_cli.core.model_cache import CACHE_ENV_VAR
from infer_cli.core.store import load_model

from conftest import call

_STARTED: list[subprocess.Popen[bytes]] = []
_WAIT_SECONDS = 60


@pytest.fixture(autouse=True)
def _no_server_left_behind() -> Iterator[None]:
    yield
    while _STARTED:
        process = _STARTED.pop()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


class Served:
    """A running `infer-cli serve`: its process, its port, and its log as it is written."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: list[str]) -> None:
        self.process, self.port, self.log = process, port, log
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            self.log.append(raw.decode())

    def logged(self, text: str) -> int:
        return sum(text in line for line in list(self.log))

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(30)
        self.reader.join(30)
        assert code == 0, "".join(self.log)
        return "".join(self.log)


def _serve(store: Store, uri: str, tmp_path: Path, *extra: str) -> Served:
    executable = Path(sys.executable).with_name("infer-cli")
    process = subprocess.Popen(
        [
            str(executable), "serve", "-p", "0", "--no-access-log", "-m", uri,
            "--tracking-uri", store.tracking_uri, "--reload", "--reload-interval", "0.2", *extra,
        ],
        stderr=subprocess.PIPE,
        env=store.cli_env(**{CACHE_ENV_VAR: str(tmp_path / "cache")}),
        start_new_session=True,
    )  # fmt: skip
    _STARTED.append(process)
    assert process.stderr is not None
    seen: list[str] = []
    for raw in process.stderr:
        seen.append(raw.decode())
        found = re.search(r"http://127\.0\.0\.1:(\d+)/invocations", seen[-1])
        if found:
            return Served(process, int(found.group(1)), seen)
    raise AssertionError(f"the server did not start: {''.join(seen)}")


def _served_version(port: int) -> str:
    status, headers, _ = call(port, "GET", "/version")
    assert status == 200
    return headers["x-model-version"]


def _predictions(port: int) -> list[Any]:
    rows = iris_features().to_dict(orient="records")
    body = json.dumps({"dataframe_records": rows}).encode()
    status, _, reply = call(port, "POST", "/invocations", body)
    assert status == 200, reply
    return list(json.loads(reply)["predictions"])


def _move_alias(store: Store, name: str, alias: str, version: int) -> None:
    """Move an alias through the tracking server's REST API, as MLflow's client does."""
    body = json.dumps({"name": name, "alias": alias, "version": str(version)}).encode()
    request = urllib.request.Request(
        f"{store.tracking_uri}/api/2.0/mlflow/registered-models/alias",
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
        },
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.status == 200


def _wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + _WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def _expected(store: Store, uri: str) -> list[Any]:
    model = load_model(uri, tracking_uri=store.tracking_uri)
    return list(model.predict(iris_features()).values)


def test_the_server_swaps_in_the_version_an_alias_moves_to(
    server_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "test-cache"))
    for key, value in server_store.env.items():
        monkeypatch.setenv(key, value)
    first, second = (
        _expected(server_store, "models:/iris/1"),
        _expected(server_store, "models:/iris/2"),
    )
    assert first != second
    served = _serve(server_store, "models:/iris@reload", tmp_path)
    port = served.port
    try:
        assert _served_version(port) == "models:/iris/1"
        assert _predictions(port) == first
        _move_alias(server_store, "iris", "reload", 2)
        _wait_for(lambda: _served_version(port) == "models:/iris/2", "version 2 to be served")
        assert _predictions(port) == second
        metrics = call(port, "GET", "/metrics")[2].decode()
        assert 'model_uri="models:/iris@reload",name="iris",version="2"' in metrics
        assert 'infer_cli_model_reloads_total{outcome="ok"} 1' in metrics
        status, _, metadata = call(port, "GET", "/v2/models/iris")
        assert status == 200 and json.loads(metadata)["versions"] == ["2"]
    finally:
        _move_alias(server_store, "iris", "reload", 1)
    log = served.stop()
    assert "models:/iris@reload now names models:/iris/2; loading it" in log
    assert "reloaded models:/iris@reload: models:/iris/2" in log


def test_a_broken_new_version_keeps_the_old_one_serving(
    server_store: Store, tmp_path: Path
) -> None:
    served = _serve(server_store, "models:/flaky@live", tmp_path)
    port = served.port
    try:
        before = _predictions(port)
        _move_alias(server_store, "flaky", "live", 2)
        _wait_for(
            lambda: served.logged("reload of models:/flaky@live failed") > 0,
            "the reload of the broken version to fail",
        )
        assert _served_version(port) == "models:/flaky/1"
        assert _predictions(port) == before
        metrics = call(port, "GET", "/metrics")[2].decode()
        assert 'infer_cli_model_reloads_total{outcome="failed"} 1' in metrics
        # The broken version is not tried again at each look, only when the alias moves.
        time.sleep(1)
        assert served.logged("reload of models:/flaky@live failed") == 1
    finally:
        _move_alias(server_store, "flaky", "live", 1)
    log = served.stop()
    assert "reload of models:/flaky@live failed, still serving models:/flaky/1" in log


def test_a_registry_that_goes_away_is_logged_once_and_the_model_keeps_serving(
    sqlite_store: Store, tmp_path: Path
) -> None:
    assert sqlite_store.database is not None
    database = tmp_path / "store" / "mlflow.db"
    database.parent.mkdir()
    with sqlite3.connect(sqlite_store.database) as source, sqlite3.connect(database) as copy:
        source.backup(copy)
    store = Store("sqlite", f"sqlite:///{database}", database.parent)
    served = _serve(store, "models:/iris@champion", tmp_path)
    before = _predictions(served.port)
    shutil.rmtree(database.parent)
    _wait_for(
        lambda: served.logged("cannot ask the registry about models:/iris@champion") > 0,
        "the failure to be logged",
    )
    time.sleep(1)  # several more looks at the registry, 0.2 s apart: none is logged again
    assert served.logged("cannot ask the registry about models:/iris@champion") == 1
    assert _predictions(served.port) == before
    served.stop()
