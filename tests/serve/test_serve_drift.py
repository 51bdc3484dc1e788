"""Drift in the server: a rolling window of the rows scored, judged against the model's
training profile, on `GET /drift` and as gauges on `GET /metrics`, on a real server."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from infer_cli.batch import write_training_profile
from infer_cli.core import load_model

from conftest import COLUMNS, Server, call
from drift_data import customers, save_shop_model, shifted


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model with a training profile beside it (profile.json)."""
    root = tmp_path_factory.mktemp("served_shop")
    customers(3000, seed=0).to_csv(root / "train.csv", index=False)
    save_shop_model(pd.read_csv(root / "train.csv"), root / "model")
    write_training_profile(str(root / "model"), str(root / "train.csv"))
    return root / "model"


def send(port: int, rows: pd.DataFrame, per_request: int = 100) -> None:
    for start in range(0, len(rows), per_request):
        part = rows.iloc[start : start + per_request]
        document = {"dataframe_split": json.loads(part.to_json(orient="split", index=False))}
        status, _, body = call(port, "POST", "/invocations", json.dumps(document).encode())
        assert status == 200, body


def drift(port: int) -> dict[str, Any]:
    status, headers, body = call(port, "GET", "/drift")
    assert status == 200 and headers["content-type"].startswith("application/json")
    return dict(json.loads(body))


def gauges(port: int) -> dict[str, float]:
    """The drift gauges on /metrics, by their name and labels."""
    _, _, body = call(port, "GET", "/metrics")
    found = re.findall(r"^(infer_cli_drift_\w+\{[^}]*\}) (\S+)$", body.decode(), re.MULTILINE)
    return {series: float(value) for series, value in found}


def test_the_window_is_judged_and_rolls_on(serve: Server, shop: Path) -> None:
    _, port = serve(load_model(shop), drift_window=500)
    send(port, shifted("none", count=600, seed=1))
    steady = drift(port)
    assert steady["model"] == "model" and steady["window"] == 500
    assert steady["profile"] == str(shop / "profile.json")
    assert steady["rows"] == 500 and steady["enough_rows"] is True
    assert steady["drifted"] == [] and steady["max_psi"] < 0.25
    assert set(steady["columns"]) == {"amount", "visits", "plan", "score"}
    metrics = gauges(port)
    assert metrics['infer_cli_drift_window_rows{model="model"}'] == 500
    assert metrics['infer_cli_drift_psi{model="model",column="amount"}'] < 0.25
    assert 'infer_cli_drift_psi{model="model",column="prediction"}' in metrics

    send(port, shifted("scale", count=500, seed=2))
    moved = drift(port)
    assert moved["drifted"] == ["amount"]
    assert moved["columns"]["amount"]["out_of_range_share"] > 0.9
    metrics = gauges(port)
    assert metrics['infer_cli_drift_psi{model="model",column="amount"}'] > 1.0
    assert metrics['infer_cli_drift_max_psi{model="model"}'] == pytest.approx(
        moved["max_psi"], rel=1e-5
    )

    send(port, shifted("none", count=500, seed=3))  # the shifted rows roll out of the window
    assert drift(port)["drifted"] == [] and drift(port)["rows"] == 500


def test_each_shift_shows_on_its_column(serve: Server, shop: Path) -> None:
    for shift, flagged in (("category", ["plan"]), ("empty", ["visits"])):
        _, port = serve(load_model(shop), drift_window=600)
        send(port, shifted(shift, count=600, seed=4))
        judged = drift(port)
        assert judged["drifted"] == flagged, (shift, judged["drifted"])
        assert gauges(port)[f'infer_cli_drift_psi{{model="model",column="{flagged[0]}"}}'] > 1


def test_too_few_rows_export_no_psi(serve: Server, shop: Path) -> None:
    _, port = serve(load_model(shop))
    send(port, shifted("scale", count=50, seed=5))
    judged = drift(port)
    assert judged["rows"] == 50 and judged["enough_rows"] is False and judged["drifted"] == []
    assert gauges(port) == {'infer_cli_drift_window_rows{model="model"}': 50.0}


def test_a_model_without_a_profile_says_so(
    serve: Server, numeric_model: Path, tmp_path: Path
) -> None:
    _, port = serve(load_model(numeric_model))
    status, _, _ = call(
        port, "POST", "/invocations", json.dumps({"inputs": [[1, 2, 3, 4]]}).encode()
    )
    assert status == 200
    judged = drift(port)
    assert judged["profile"] is None and judged["rows"] == 0
    assert "no training profile" in judged["notice"]
    assert gauges(port) == {}


def test_single_rows_on_the_fast_lane_are_counted(
    serve: Server, numeric_model: Path, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    training = pd.DataFrame(rng.normal(size=(300, 4)), columns=COLUMNS)
    training.to_csv(tmp_path / "train.csv", index=False)
    profile = tmp_path / "numeric.profile.json"
    write_training_profile(str(numeric_model), str(tmp_path / "train.csv"), str(profile))
    _, port = serve(load_model(numeric_model), profile=str(profile), drift_window=300)
    rows = rng.normal(size=(300, 4))
    rows[:, 0] *= 100
    for row in rows.tolist():
        status, _, _ = call(port, "POST", "/invocations", json.dumps({"inputs": [row]}).encode())
        assert status == 200
    judged = drift(port)
    assert judged["profile"] == str(profile) and judged["rows"] == 300
    assert "a" in judged["drifted"] and not {"b", "c", "d"} & set(judged["drifted"])


def test_serve_takes_drift_window_and_profile(shop: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "shop.json"
    (shop / "profile.json").rename(elsewhere)  # the module's model: put back below
    executable = Path(sys.executable).with_name("infer-cli")
    process = subprocess.Popen(
        [str(executable), "serve", "-p", "0", "--no-access-log", "-m", str(shop),
         "--drift-window", "400", "--profile", str(elsewhere)],
        stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        port = None
        for raw in process.stderr:
            found = re.search(r"http://127\.0\.0\.1:(\d+)/invocations", raw.decode())
            if found:
                port = int(found.group(1))
                break
        assert port is not None, "the server did not start"
        send(port, shifted("category", count=500, seed=6))
        judged = drift(port)
        assert judged["window"] == 400 and judged["rows"] == 400
        assert judged["profile"] == str(elsewhere) and judged["drifted"] == ["plan"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        elsewhere.rename(shop / "profile.json")
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def test_a_profile_added_while_serving_is_picked_up(
    serve: Server, shop: Path, tmp_path: Path
) -> None:
    import shutil

    model = tmp_path / "model"
    shutil.copytree(shop, model)
    (model / "profile.json").unlink()
    _, port = serve(load_model(model), drift_window=300)
    send(port, shifted("none", count=100, seed=7))
    assert drift(port)["profile"] is None
    shutil.copy(shop / "profile.json", model / "profile.json")
    assert drift(port)["profile"] == str(model / "profile.json")  # as a scraper would see
    send(port, shifted("scale", count=300, seed=8))
    judged = drift(port)
    assert judged["profile"] == str(model / "profile.json") and judged["drifted"] == ["amount"]
