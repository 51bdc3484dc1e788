"""Several models behind one server, over real sockets: routed by name and by default, an
unknown name answered 404 with the names served, each model batched on its own (a slow or
broken one holds up no other), reloaded on its own, listed with its signature and version."""

from __future__ import annotations

import io
import json
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from rich.console import Console

from infer_cli.core import Model, load_model
from infer_cli.errors import UsageError
from infer_cli.report import render_banner
from infer_cli.serve.process import Asked, LoadedModel, ModelSource, ServeConfig, reload_model
from infer_cli.serve.reload import _watch
from infer_cli.serve.routes import App
from infer_cli.serve.served import model_version
from infer_cli.serve.start import split_model_option

from conftest import COLUMNS, Server, call

ROW = [[0.5, -1.0, 2.0, 0.0]]
IRIS_ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def post(port: int, path: str, document: Any) -> tuple[int, Any]:
    status, _, body = call(port, "POST", path, json.dumps(document).encode())
    return status, json.loads(body)


def two_models(
    serve: Server, numeric_model: Path, iris: Path, **options: Any
) -> tuple[App, int, Model, Model]:
    numeric, flowers = load_model(numeric_model), load_model(iris)
    app, port = serve(None, **options)
    app.models = {"numeric": numeric, "flowers": flowers}
    return app, port, numeric, flowers


def test_two_models_are_routed_by_name_and_the_first_by_default(
    serve: Server, numeric_model: Path, trained_models: dict[str, Path]
) -> None:
    _, port, numeric, flowers = two_models(serve, numeric_model, trained_models["iris"])
    expected_numeric = numeric.predict(pd.DataFrame(ROW, columns=COLUMNS)).values.tolist()
    expected_iris = flowers.predict(pd.DataFrame([IRIS_ROW])).values.tolist()
    assert expected_numeric != expected_iris
    assert post(port, "/invocations", {"inputs": ROW}) == (200, {"predictions": expected_numeric})
    assert post(port, "/models/numeric/invocations", {"inputs": ROW}) == (
        200,
        {"predictions": expected_numeric},
    )
    assert post(port, "/models/flowers/invocations", {"dataframe_records": [IRIS_ROW]}) == (
        200,
        {"predictions": expected_iris},
    )
    tensors = [{"name": name, "shape": [1], "datatype": "FP64", "data": [value]}
               for name, value in IRIS_ROW.items()]  # fmt: skip
    status, document = post(port, "/v2/models/flowers/infer", {"inputs": tensors})
    assert status == 200 and document["model_name"] == "flowers"
    assert document["outputs"][0]["data"] == expected_iris
    # The iris model's columns are not the default model's: the default refuses them.
    status, document = post(port, "/invocations", {"dataframe_records": [IRIS_ROW]})
    assert status == 400 and "missing column 'a'" in document["message"]
    status, _, body = call(port, "GET", "/v2/models/flowers/ready")
    assert (status, json.loads(body)) == (200, {"name": "flowers", "ready": True})
    version = model_version(flowers)
    assert call(port, "GET", f"/v2/models/flowers/versions/{version}/ready")[0] == 200


def test_an_unknown_name_is_a_404_listing_the_names_in_each_protocols_shape(
    serve: Server, numeric_model: Path, trained_models: dict[str, Path]
) -> None:
    _, port, _, _ = two_models(serve, numeric_model, trained_models["iris"])
    listed = "no model named 'churn' (this server has 'numeric', 'flowers')"
    status, document = post(port, "/models/churn/invocations", {"inputs": ROW})
    assert (status, document) == (404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": listed})
    for method, path in (("POST", "/v2/models/churn/infer"), ("GET", "/v2/models/churn/ready")):
        status, _, body = call(port, method, path, b"{}" if method == "POST" else None)
        assert (status, json.loads(body)) == (404, {"error": listed})
    status, _, body = call(port, "GET", "/models/churn")
    assert status == 404 and json.loads(body)["message"] == listed


def test_models_and_v2_models_list_every_model_with_its_signature_and_version(
    serve: Server, numeric_model: Path, trained_models: dict[str, Path]
) -> None:
    _, port, numeric, flowers = two_models(serve, numeric_model, trained_models["iris"])
    for path in ("/models", "/v2/models"):
        status, _, body = call(port, "GET", path)
        listed = json.loads(body)["models"]
        assert status == 200
        assert [(m["name"], m["default"], m["ready"]) for m in listed] == [
            ("numeric", True, True),
            ("flowers", False, True),
        ]
        assert [m["versions"] for m in listed] == [
            [model_version(numeric)],
            [model_version(flowers)],
        ]
        assert [i["name"] for i in listed[0]["inputs"]] == COLUMNS
        assert [i["name"] for i in listed[1]["inputs"]] == list(IRIS_ROW)
    status, _, body = call(port, "GET", "/models/flowers")
    assert status == 200 and json.loads(body)["name"] == "flowers"


class HeldEstimator:
    """Holds every prediction until released, so a test knows one is inside `predict`."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.feature_names_in_ = getattr(inner, "feature_names_in_", None)
        self.predicting = threading.Event()
        self.release = threading.Event()

    def predict(self, features: Any) -> Any:
        self.predicting.set()
        assert self.release.wait(20), "never released"
        return self.inner.predict(features)

    def predict_proba(self, features: Any) -> Any:
        return self.inner.predict_proba(features)


class BrokenEstimator(HeldEstimator):
    def predict(self, features: Any) -> Any:
        raise RuntimeError("the model broke")


def test_a_slow_model_holds_up_no_other_and_a_broken_one_fails_alone(
    serve: Server, numeric_model: Path, trained_models: dict[str, Path]
) -> None:
    loaded = load_model(numeric_model)
    held = HeldEstimator(loaded.estimator)
    broken = Model(BrokenEstimator(loaded.estimator), loaded.card, loaded.path)
    app, port = serve(None)
    flowers = load_model(trained_models["iris"])
    app.models = {
        "slow": Model(held, loaded.card, loaded.path),
        "flowers": flowers,
        "broken": broken,
    }
    answers: list[tuple[int, Any]] = []
    client = threading.Thread(
        target=lambda: answers.append(post(port, "/invocations", {"inputs": ROW}))
    )
    client.start()
    try:
        assert held.predicting.wait(20), "the slow model was never called"
        # The slow model is still inside predict, its request unanswered: the other models
        # answer all the same.
        status, document = post(port, "/models/flowers/invocations", {"inputs": [IRIS_ROW]})
        assert status == 200 and len(document["predictions"]) == 1
        status, document = post(port, "/models/broken/invocations", {"inputs": ROW})
        assert status == 500 and "the model broke" in document["message"]
        status, _, _ = call(port, "GET", "/v2/models/flowers/ready")
        assert status == 200
        assert answers == [] and not held.release.is_set()
    finally:
        held.release.set()
        client.join(20)
    expected = loaded.predict(pd.DataFrame(ROW, columns=COLUMNS)).values.tolist()
    assert answers == [(200, {"predictions": expected})]


def test_a_broken_new_version_of_one_model_leaves_every_model_serving(
    serve: Server,
    model_copy: Callable[[str], Path],
    numeric_model: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    iris, churn = model_copy("iris"), model_copy("churn")
    app, port = serve(None)
    app.models = {"iris": load_model(iris), "churn": load_model(churn)}
    before = {name: model.card.sha256 for name, model in app.models.items()}
    (churn / "model.joblib").write_bytes(b"not a model any more")
    shutil.copy(numeric_model / "model.json", iris / "model.json")  # a card of another model
    config = ServeConfig(iris, more_models=(ModelSource(churn, name="churn"),))
    asked = Asked(reload=True)  # as SIGHUP sets it
    watcher = threading.Thread(target=_watch, args=(app, config, asked), daemon=True)
    watcher.start()
    deadline = time.monotonic() + 20
    while app.stats.reloads["failed"] < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    asked.stop = True
    watcher.join(10)
    assert (app.stats.reloads["failed"], app.stats.reloads["ok"]) == (2, 0)
    assert {name: model.card.sha256 for name, model in app.models.items()} == before
    log = capfd.readouterr().err
    assert f"reload of {iris} failed, still serving sha256 {before['iris'][:12]}" in log
    assert f"reload of {churn} failed" in log
    status, document = post(port, "/models/iris/invocations", {"dataframe_records": [IRIS_ROW]})
    assert status == 200
    churn_row = pd.read_csv(Path(__file__).parents[2] / "sample_data" / "churn_new.csv").head(1)
    records = json.loads(churn_row.to_json(orient="records"))
    status, document = post(port, "/models/churn/invocations", {"dataframe_records": records})
    assert status == 200 and len(document["predictions"]) == 1


def test_reload_by_name_swaps_that_model_alone(
    serve: Server, model_copy: Callable[[str], Path], trained_models: dict[str, Path]
) -> None:
    iris = model_copy("iris")
    app = App()
    app.models = {"iris": load_model(iris), "churn": load_model(trained_models["churn"])}
    churn_before = app.models["churn"]
    replacement = load_model(trained_models["iris"])
    replacement.card.training = {"retrained": True}
    from infer_cli.core import save_model

    save_model(replacement.estimator, replacement.card, iris)
    assert reload_model(app, iris, name="iris")
    assert app.models["iris"].card.training == {"retrained": True}
    assert app.models["churn"] is churn_before and list(app.models) == ["iris", "churn"]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("churn=models:/churn@champion", ("churn", "models:/churn@champion")),
        ("iris=./iris_model", ("iris", "./iris_model")),
        ("./iris_model", (None, "./iris_model")),
        ("models:/churn@champion", (None, "models:/churn@champion")),
        ("./a=b/model", (None, "./a=b/model")),
        ("runs:/abc/model=1", (None, "runs:/abc/model=1")),
    ],
)
def test_a_model_option_is_a_path_or_a_name_and_a_path(
    given: str, expected: tuple[str | None, str]
) -> None:
    assert split_model_option(given) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("my model=./x", "'my model' cannot name a model"),
        ("iris=", "no model after 'iris='"),
    ],
)
def test_a_model_option_that_cannot_name_a_model_is_refused(given: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        split_model_option(given)


def test_a_name_given_twice_is_a_usage_error_before_anything_loads(
    cli: Callable[..., Any], numeric_model: Path, tmp_path: Path
) -> None:
    result = cli("serve", "-p", "0", "-m", f"a={numeric_model}", "-m", f"a={tmp_path / 'none'}")
    assert result.exit_code == 2
    assert result.output.strip().endswith(
        "two models are served as 'a': name them apart with -m NAME=PATH"
    )
    result = cli("serve", "-p", "0", "-m", str(numeric_model), "-m", f"numeric={tmp_path}")
    assert result.exit_code == 2 and "served as 'numeric'" in result.output


def test_the_banner_names_each_model_its_source_load_time_and_memory(
    numeric_model: Path, trained_models: dict[str, Path]
) -> None:
    numeric, flowers = load_model(numeric_model), load_model(trained_models["iris"])
    loaded = [
        LoadedModel("numeric", ModelSource(numeric_model), numeric, 0.5, 80 * 1024 * 1024),
        LoadedModel("flowers", ModelSource(trained_models["iris"], name="flowers"), flowers,
                    0.04, 3 * 1024 * 1024),
    ]  # fmt: skip
    output = io.StringIO()
    config = ServeConfig(numeric_model, port=5000, more_models=(loaded[1].source,))
    render_banner(Console(file=output, width=400), numeric, config, 1.0, loaded)
    lines = [" ".join(line.split()) for line in output.getvalue().splitlines()]
    assert "Serving 2 models" in lines
    assert (
        f"numeric (default) /invocations, /models/numeric/invocations from {numeric_model}; "
        "classification (no, yes), 4 input columns, sha256 "
        f"{numeric.card.sha256[:12]}; in 0.50 s, +80.0 MiB resident (libraries it imported "
        "included)"
    ) in lines
    assert (
        f"flowers /models/flowers/invocations from {trained_models['iris']}; classification "
        f"(setosa, versicolor, virginica), 4 input columns, sha256 {flowers.card.sha256[:12]}; "
        "in 0.04 s, +3.0 MiB resident"
    ) in lines
    single = io.StringIO()
    config = ServeConfig(numeric_model)
    render_banner(Console(file=single, width=400), numeric, config, 1.0, loaded[:1])
    lines = [" ".join(line.split()) for line in single.getvalue().splitlines()]
    assert f"Serving {numeric.path}" in lines
    assert "loaded in 0.50 s, +80.0 MiB resident (libraries it imported included)" in lines
