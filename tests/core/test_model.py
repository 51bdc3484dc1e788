"""The model core: save/load round trip, integrity check, bare estimators, prediction."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from infer_cli.core.card import MODEL_FILE
from infer_cli.core.store import (
    CARD_FILE,
    inspect_model,
    load_model,
    resolve_model_path,
    save_model,
)
from infer_cli.errors import DataError, ModelError, UsageError
from infer_cli.training import TrainOptions, train


def test_round_trip_keeps_card_and_predictions(
    trained_models: dict[str, Path], sample_data: Path
) -> None:
    model = load_model(trained_models["iris"])
    card = json.loads((trained_models["iris"] / CARD_FILE).read_text())
    assert card["task"] == "classification"
    assert card["target"] == "species"
    assert card["classes"] == ["setosa", "versicolor", "virginica"]
    assert [c["name"] for c in card["signature"]["inputs"]] == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    ]
    assert card["versions"]["scikit-learn"]
    assert len(card["sha256"]) == 64
    assert card["metrics"]["accuracy"] > 0.9
    rows = pd.read_csv(sample_data / "iris_new.csv")
    predictions = model.predict(rows, proba=True)
    assert len(predictions.values) == len(rows)
    assert set(predictions.values) <= {"setosa", "versicolor", "virginica"}
    assert predictions.probabilities is not None
    assert np.allclose(predictions.probabilities.sum(axis=1), 1.0)


def test_tampered_model_file_is_refused(model_copy: Callable[[str], Path]) -> None:
    directory = model_copy("iris")
    with open(directory / MODEL_FILE, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelError, match="SHA-256 mismatch"):
        load_model(directory)
    inspection = inspect_model(directory)
    assert inspection.matches is False
    assert inspection.sha256_actual != inspection.card.sha256


def test_missing_model_names_the_path_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"no model at '.*nowhere' \(train one"):
        load_model(tmp_path / "nowhere")


def test_directory_without_card_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not a model directory"):
        load_model(tmp_path)


def test_default_model_path_comes_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INFER_CLI_MODEL", raising=False)
    assert resolve_model_path(None) == Path("model")
    monkeypatch.setenv("INFER_CLI_MODEL", "/srv/models/churn")
    assert resolve_model_path(None) == Path("/srv/models/churn")
    assert resolve_model_path("explicit") == Path("explicit")


def test_sklearn_version_difference_is_one_notice(model_copy: Callable[[str], Path]) -> None:
    directory = model_copy("iris")
    card = json.loads((directory / CARD_FILE).read_text())
    card["versions"]["scikit-learn"] = "0.0.1"
    (directory / CARD_FILE).write_text(json.dumps(card))
    model = load_model(directory)
    assert len(model.notices) == 1
    assert "trained with scikit-learn 0.0.1" in model.notices[0]


def test_bare_joblib_file_takes_columns_from_feature_names(tmp_path: Path) -> None:
    x = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    estimator = LogisticRegression().fit(x, [0, 0, 1, 1])
    joblib.dump(estimator, tmp_path / "bare.joblib")
    model = load_model(tmp_path / "bare.joblib")
    assert model.signature.names == ["a", "b"]
    assert model.is_classifier
    predictions = model.predict(pd.DataFrame({"b": [0.0], "a": [3.0], "extra": ["x"]}))
    assert predictions.values.tolist() == [1]


def test_bare_pickle_fitted_on_arrays_takes_columns_by_position(tmp_path: Path) -> None:
    estimator = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])
    joblib.dump(estimator, tmp_path / "bare.pkl")
    model = load_model(tmp_path / "bare.pkl")
    assert model.predict(pd.DataFrame({"anything": [0.0, 3.0]})).values.tolist() == [0, 1]


def test_file_that_is_not_a_pickle_is_a_clear_model_error(tmp_path: Path) -> None:
    (tmp_path / "junk.joblib").write_text("not a pickle")
    with pytest.raises(ModelError, match=r"junk\.joblib: cannot load the model"):
        load_model(tmp_path / "junk.joblib")


def test_unseen_category_does_not_crash_prediction(trained_models: dict[str, Path]) -> None:
    model = load_model(trained_models["churn"])
    row = pd.DataFrame(
        [
            {
                "tenure_months": 3,
                "monthly_charges": 80.0,
                "total_charges": None,
                "contract": "ten-year",
                "internet_service": "satellite",
                "payment_method": "barter",
                "support_calls": 4,
            }
        ]
    )
    assert model.predict(row).values.tolist()[0] in ("yes", "no")


def test_regression_model_refuses_probabilities(trained_models: dict[str, Path]) -> None:
    model = load_model(trained_models["housing"])
    with pytest.raises(UsageError, match="does not give class probabilities"):
        model.predict(pd.DataFrame({"sqft": [1000]}), proba=True)


def test_bad_value_is_a_data_error_naming_the_row(trained_models: dict[str, Path]) -> None:
    model = load_model(trained_models["iris"])
    rows = pd.DataFrame(
        {
            "sepal_length": [5.1, 5.0],
            "sepal_width": [3.5, "wide"],
            "petal_length": [1.4, 1.4],
            "petal_width": [0.2, 0.2],
        }
    )
    with pytest.raises(DataError, match=r"row 2, column 'sepal_width': 'wide' is not a number"):
        model.predict(rows)


def test_saving_over_a_model_is_atomic_for_concurrent_readers(
    tmp_path: Path, sample_data: Path
) -> None:
    """Readers loading while the model is replaced again and again see whole models only."""
    frame = pd.read_csv(sample_data / "iris.csv")
    first = train(frame, TrainOptions(target="species"))
    second = train(frame, TrainOptions(target="species", algorithm="forest"))
    target = tmp_path / "model"
    save_model(first.estimator, first.card, target)
    errors: list[BaseException] = []
    loads = 0
    stop = threading.Event()

    def read() -> None:
        nonlocal loads
        while not stop.is_set():
            try:
                load_model(target)
                loads += 1
            except ModelError as exc:
                # The directory can be absent for an instant between two renames; a half
                # model (a hash mismatch, a missing file inside) would be a failure.
                if "no model at" not in str(exc):
                    errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(15):
        result = second if i % 2 else first
        save_model(result.estimator, result.card, target)
    stop.set()
    reader.join()
    assert errors == []
    assert loads > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.parametrize("name", ["iris", "churn", "reviews", "housing"])
def test_prepared_requests_scored_together_match_predict(
    trained_models: dict[str, Path], sample_data: Path, name: str
) -> None:
    from infer_cli.core import load_model

    model = load_model(trained_models[name])
    rows = pd.read_csv(sample_data / f"{name}_new.csv").head(6)
    proba = model.can_predict_proba
    expected = model.predict(rows, proba=proba)

    def as_columns(part: pd.DataFrame) -> dict[str, list[object]]:
        return {
            column: [None if pd.isna(value) else value for value in values]
            for column, values in part.to_dict(orient="list").items()
        }

    by_columns = [
        model.prepare(columns=as_columns(rows.head(3))),
        model.prepare(columns=as_columns(rows.iloc[3:])),
    ]
    mixed = [model.prepare(columns=as_columns(rows.head(3))), model.prepare(frame=rows.iloc[3:])]
    for prepared in (by_columns, mixed):
        together = model.predict_many(prepared, proba=proba)
        assert together.values.tolist() == expected.values.tolist()
        if expected.probabilities is not None:
            assert np.array_equal(together.probabilities, expected.probabilities)
    # Every model `train` makes takes the fast route, checked when it was loaded.
    assert model.route is not None, model.route_note


def test_only_plain_values_become_arrays_without_pandas() -> None:
    from infer_cli.core import Column, Signature

    signature = Signature((Column("a", "float"), Column("n", "integer")))
    arrays = signature.arrays({"a": [1.5, None], "n": [2, 3]}, 2)
    assert arrays is not None
    assert arrays["a"].dtype == np.float64 and np.isnan(arrays["a"][1])
    assert arrays["n"].tolist() == [2.0, 3.0]
    # Text, booleans, fractions in an integer column and missing columns go through
    # `validate`, which casts them or reports the row and column.
    assert signature.arrays({"a": ["1.5"], "n": [2]}, 1) is None
    assert signature.arrays({"a": [True], "n": [2]}, 1) is None
    assert signature.arrays({"a": [1.5], "n": [2.5]}, 1) is None
    assert signature.arrays({"a": [1.5]}, 1) is None
    # A number in a category column is cast by `validate` (3 is '3', 3.0 is '3').
    assert Signature((Column("s", "string"),)).arrays({"s": [1]}, 1) is None
    strings = Signature((Column("s", "string"), Column("t", "text")))
    arrays = strings.arrays({"s": ["x", None], "t": [None, "some words"]}, 2)
    assert arrays is not None
    assert arrays["s"][0] == "x" and np.isnan(arrays["s"][1])
    assert arrays["t"].tolist() == ["", "some words"]


@pytest.mark.parametrize("typed", [True, False], ids=["typed", "untyped"])
def test_requests_prepared_together_are_what_each_gives_alone(typed: bool) -> None:
    """One pass per column for several requests gives each request the arrays `prepare` gives
    it alone; requests whose values differ in kind in a column are left to `prepare`."""
    from infer_cli.core import Column, Signature
    from infer_cli.core.model import Model

    kinds = ("integer", "float", "string", "text") if typed else ("any",) * 4
    names = ("n", "x", "s", "t")
    columns = zip(names, kinds, strict=True)
    signature = Signature(tuple(Column(name, kind) for name, kind in columns))
    model = Model.__new__(Model)
    model.card = type("Card", (), {"signature": signature})()  # type: ignore[assignment]
    requests = [
        {"n": [1, 2], "x": [0.5, None], "s": ["a", None], "t": ["some words", "more"]},
        {"n": [3], "x": [None], "s": ["b"], "t": ["a few"], "extra": ["kept out"]},
        {"n": [2**40], "x": [7.25], "s": [None], "t": ["x"]},
    ]
    together = model.prepare_together(requests)
    alone = [model.prepare(columns=request) for request in requests]
    if not typed:  # kinds differ between requests in untyped columns: each alone
        assert together is None
        requests = [{**request, "s": ["z"] * len(request["n"])} for request in requests]
        requests = [{**request, "x": [1.5] * len(request["n"])} for request in requests]
        together = model.prepare_together(requests)
        alone = [model.prepare(columns=request) for request in requests]
    assert together is not None

    def shown(values: np.ndarray) -> list[object]:
        return [None if pd.isna(value) else value for value in values.tolist()]

    for joint, single in zip(together, alone, strict=True):
        assert joint.rows == single.rows
        assert joint.features.keys() == single.features.keys()
        for name in names:
            assert joint.features[name].dtype == single.features[name].dtype
            assert shown(joint.features[name]) == shown(single.features[name])
    # All of them in order are the rows they were cut from, not joined again; any other
    # choice of them (a request refused, a batch split) is joined as requests alone are.
    from infer_cli.core.model import rejoined

    (whole,) = rejoined(together)
    assert whole.rows == sum(part.rows for part in together)
    for name in names:
        joined = np.concatenate([part.features[name] for part in together])
        assert shown(whole.features[name]) == shown(joined)
    for chosen in ([together[0], together[2]], together[1:], together[::-1], alone):
        assert rejoined(chosen) is chosen
    # A value needing pandas, or (untyped) of another kind: each request is prepared alone.
    assert model.prepare_together([requests[0], {**requests[1], "n": ["3"]}]) is None
    assert model.prepare_together([requests[0], {**requests[1], "n": [3.5]}]) is None
    assert model.prepare_together([requests[0]]) is None


def test_an_array_route_that_disagrees_with_the_frame_route_is_dropped(tmp_path: Path) -> None:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    from infer_cli.core import Column, Model, ModelCard, Signature

    def arrays_differ(x: object) -> object:
        return x * -1 if isinstance(x, np.ndarray) else x

    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    pipeline = Pipeline(
        [("odd", FunctionTransformer(arrays_differ)), ("model", LogisticRegression())]
    ).fit(frame, [0, 0, 1, 1])
    signature = Signature((Column("a", "float"), Column("b", "float")))
    card = ModelCard(task="classification", target="y", classes=[0, 1], signature=signature)
    model = Model(pipeline, card, tmp_path)
    prepared = model.prepare(columns={"a": [0.0, 3.0], "b": [1.0, 0.0]})
    assert (
        model.predict_many([prepared]).values.tolist()
        == pipeline.predict(frame.iloc[[0, 3]]).tolist()
    )
    assert model.route is None
    assert "differ" in model.route_note
