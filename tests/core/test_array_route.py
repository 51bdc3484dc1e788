"""The fast route (core/array_route.py, core/kernels.py): for each family of model `train`
makes, and for the same pipeline as a bare joblib file and as an MLflow directory, the labels
and probabilities it gives are scikit-learn's on a DataFrame of the same rows, bit for bit,
including unseen categories, missing values, empty text and numbers in category columns."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest

from infer_cli.core import Model, load_model, save_model
from infer_cli.errors import DataError, ModelError
from infer_cli.training import TrainOptions, train

from conftest import SAMPLE_DATA, TARGETS

FAMILIES = [
    ("iris", "auto"),
    ("churn", "auto"),
    ("churn", "forest"),
    ("churn", "gbm"),
    ("housing", "auto"),
    ("housing", "linear"),
    ("housing", "forest"),
    ("housing", "gbm"),
    ("reviews", "auto"),
]
SOURCES = ("directory", "bare", "mlflow")


@pytest.fixture(scope="module")
def mlflow_sklearn() -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
        import mlflow.sklearn

        yield mlflow.sklearn


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, mlflow_sklearn: Any) -> Any:
    """Each family trained once, saved as our directory, a bare joblib file and MLflow's."""
    from mlflow.models import infer_signature

    root = tmp_path_factory.mktemp("families")
    cache: dict[tuple[str, str], dict[str, Path]] = {}

    def paths(data: str, kind: str) -> dict[str, Path]:
        if (data, kind) not in cache:
            frame = pd.read_csv(SAMPLE_DATA / f"{data}.csv")
            result = train(frame, TrainOptions(target=TARGETS[data], algorithm=kind))
            where = root / f"{data}-{kind}"
            save_model(result.estimator, result.card, where / "directory")
            joblib.dump(result.estimator, where / "bare.joblib")
            features = frame.drop(columns=[TARGETS[data]])
            mlflow_sklearn.save_model(
                result.estimator, where / "mlflow", serialization_format="cloudpickle",
                signature=infer_signature(features), pip_requirements=[],
            )  # fmt: skip
            cache[(data, kind)] = {
                "directory": where / "directory",
                "bare": where / "bare.joblib",
                "mlflow": where / "mlflow",
            }
        return cache[(data, kind)]

    return paths


def awkward_rows(model: Model, kinds: dict[str, str], data: str) -> dict[str, list[Any]]:
    """Rows of the sample set's new file, then rows with what a client may send: categories
    never seen, missing values, empty text, numbers where a category is expected. `kinds` are
    the column types `train` found (a bare file's own signature knows none)."""
    new = pd.read_csv(SAMPLE_DATA / f"{data}_new.csv").head(4)
    columns = {
        name: [None if pd.isna(value) else value for value in values]
        for name, values in new.to_dict(orient="list").items()
    }
    # MLflow's whole-number columns take no gaps (as MLflow refuses them).
    whole = {c.name for c in model.signature.inputs if c.numpy_dtype in ("int64", "int32")}
    for row in range(4):
        for name, values in columns.items():
            value = values[row]
            if kinds.get(name) == "string":
                value = ("never seen before", None, 3, 2.0)[row]
            elif kinds.get(name) == "text":
                value = ("", None, "zzzz qqqq unseen words", value)[row]
            elif name in kinds and name not in whole and row in (1, 3):
                value = None
            values.append(value)
    return columns


def kinds_of(saved: Any, data: str, kind: str) -> dict[str, str]:
    model = load_model(saved(data, kind)["directory"])
    return {column.name: column.dtype for column in model.signature.inputs}


def assert_same_as_sklearn(model: Model, columns: dict[str, list[Any]]) -> None:
    """Served (`prepare` + `predict_many`) and batch (`predict`) answers are scikit-learn's on
    the DataFrame `validate` makes of the rows; rows it refuses are refused alike."""
    frame = model.signature.validate(pd.DataFrame(columns)).frame
    proba = model.can_predict_proba
    try:
        expected_values = model.estimator.predict(frame)
        expected_proba = model.estimator.predict_proba(frame) if proba else None
    except Exception as refused:
        # The same refusal: bad input, or the model failing (None where a bare pipeline's
        # vectorizer expects text).
        kind = DataError if isinstance(refused, (ValueError, TypeError)) else ModelError
        with pytest.raises(kind):
            model.predict_many([model.prepare(columns=columns)], proba=proba)
        with pytest.raises(kind):
            model.predict(pd.DataFrame(columns), proba=proba)
        return
    served = model.predict_many([model.prepare(columns=columns)], proba=proba)
    batch = model.predict(pd.DataFrame(columns), proba=proba)
    for got in (served, batch):
        assert got.values.dtype == expected_values.dtype
        assert got.values.tolist() == expected_values.tolist()
        if proba:
            assert got.probabilities is not None
            assert got.probabilities.dtype == expected_proba.dtype
            assert np.array_equal(got.probabilities, expected_proba)


def assert_rows_same_as_sklearn(model: Model, columns: dict[str, list[Any]]) -> None:
    """All the rows in one call, then each row alone, as a server mostly gets them."""
    assert_same_as_sklearn(model, columns)
    for row in range(len(next(iter(columns.values())))):
        assert_same_as_sklearn(
            model, {name: values[row : row + 1] for name, values in columns.items()}
        )


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(("data", "kind"), FAMILIES)
def test_fast_route_gives_sklearns_answers_on_a_dataframe(
    saved: Any, data: str, kind: str, source: str
) -> None:
    model = load_model(saved(data, kind)[source])
    assert model.route is not None, model.route_note
    assert model.route_note.startswith("arrays")
    assert_rows_same_as_sklearn(model, awkward_rows(model, kinds_of(saved, data, kind), data))


@pytest.mark.parametrize(("data", "kind"), [("churn", "auto"), ("churn", "forest")])
def test_a_bare_file_and_an_mlflow_directory_take_our_directorys_route(
    saved: Any, data: str, kind: str
) -> None:
    notes = {source: load_model(saved(data, kind)[source]).route_note for source in SOURCES}
    assert len(set(notes.values())) == 1, notes
    assert "direct" in notes["directory"]


def test_requests_batched_together_are_scored_as_one_frame(saved: Any) -> None:
    """Requests of plain values, and one that needed pandas, scored in one call."""
    model = load_model(saved("churn", "auto")["directory"])
    columns = awkward_rows(model, kinds_of(saved, "churn", "auto"), "churn")
    halves = [{name: values[i : i + 4] for name, values in columns.items()} for i in (0, 4)]
    together = model.predict_many([model.prepare(columns=half) for half in halves], proba=True)
    frame = model.signature.validate(pd.DataFrame(columns)).frame
    assert together.values.tolist() == model.estimator.predict(frame).tolist()
    assert np.array_equal(together.probabilities, model.estimator.predict_proba(frame))


def test_an_infinite_number_is_refused_as_the_usual_route_refuses_it(saved: Any) -> None:
    model = load_model(saved("churn", "auto")["directory"])
    rows = awkward_rows(model, kinds_of(saved, "churn", "auto"), "churn")
    columns = {name: values[:1] for name, values in rows.items()}
    columns["monthly_charges"] = [float("inf")]
    frame = model.signature.validate(pd.DataFrame(columns)).frame
    with pytest.raises(ValueError):
        model.estimator.predict(frame)
    with pytest.raises(DataError, match="cannot score this input"):
        model.predict_many([model.prepare(columns=columns)])


def test_a_step_it_does_not_know_is_called_with_its_checks(tmp_path: Path) -> None:
    """An OrdinalEncoder and a MinMaxScaler are not direct steps: they are called through
    scikit-learn on arrays, and still give its answers."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler, OrdinalEncoder

    frame = pd.read_csv(SAMPLE_DATA / "churn.csv").dropna()
    features = frame[["tenure_months", "monthly_charges", "contract", "payment_method"]]
    pipeline = Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        ("numbers", MinMaxScaler(), ["tenure_months", "monthly_charges"]),
                        (
                            "codes",
                            OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                            ["contract", "payment_method"],
                        ),
                    ]
                ),
            ),
            ("model", LogisticRegression(max_iter=500)),
        ]
    ).fit(features, frame["churned"])
    joblib.dump(pipeline, tmp_path / "own.joblib")
    model = load_model(tmp_path / "own.joblib")
    assert model.route is not None, model.route_note
    assert "checked call: MinMaxScaler, OrdinalEncoder" in model.route_note
    kinds = {"contract": "string", "payment_method": "string", "tenure_months": "integer"}
    columns = awkward_rows(model, kinds, "churn")
    assert_rows_same_as_sklearn(model, {name: columns[name] for name in features.columns})


@pytest.mark.parametrize(
    "options",
    [
        {"norm": "l1", "use_idf": False},
        {"binary": True, "sublinear_tf": True, "smooth_idf": False},
        {"norm": None, "ngram_range": (1, 2), "min_df": 2},
        {"analyzer": "char_wb", "ngram_range": (2, 3), "max_features": 300},
    ],
    ids=["l1-no-idf", "binary-sublinear", "no-norm", "characters"],
)
def test_a_users_own_tfidf_pipeline_takes_the_direct_vectorizer(
    tmp_path: Path, options: dict[str, Any]
) -> None:
    """TfidfVectorizer is direct whatever its options: its own counting, then the weights
    and the norm as TfidfTransformer gives them, beside a numeric branch or alone."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    frame = pd.read_csv(SAMPLE_DATA / "reviews.csv")
    for branches in (
        [("words", TfidfVectorizer(**options), "review")],
        [("words", TfidfVectorizer(**options), "review"), ("id", StandardScaler(), ["review_id"])],
    ):
        features = frame[["review", "review_id"]]
        pipeline = Pipeline(
            [("prepare", ColumnTransformer(branches)), ("model", LogisticRegression())]
        ).fit(features, frame["sentiment"])
        joblib.dump(pipeline, tmp_path / "own.joblib")
        model = load_model(tmp_path / "own.joblib")
        assert model.route is not None, model.route_note
        assert "direct: " in model.route_note and "TfidfVectorizer" in model.route_note
        assert "checked call" not in model.route_note
        columns = awkward_rows(model, {"review": "text"}, "reviews")
        columns["review"].append(42)  # a number where text is expected
        columns["review_id"] = [float(row) for row in range(len(columns["review"]))]
        assert_rows_same_as_sklearn(model, columns)


@pytest.mark.parametrize("source", ["directory", "bare"])
def test_a_scaler_and_a_linear_model_fitted_on_a_frame_take_the_direct_route(
    tmp_path: Path, source: str
) -> None:
    """No ColumnTransformer: the matrix product sees the columns as the DataFrame lays them
    out (column by column); laid out row by row, its last bits differed and such a model,
    saved with a typed signature, was left to the DataFrame route."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from infer_cli.core.card import ModelCard
    from infer_cli.core.signature import Column, Signature

    names = ["a", "b", "c", "d"]
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(2000, 4)), columns=names)
    labels = np.where(frame["a"] + 0.5 * frame["b"] - frame["c"] > 0, "yes", "no")
    pipeline = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())])
    pipeline.fit(frame, labels)
    if source == "directory":
        signature = Signature(tuple(Column(name, "float") for name in names))
        card = ModelCard(task="classification", target="label", classes=["no", "yes"],
                         signature=signature)  # fmt: skip
        save_model(pipeline, card, tmp_path / "model")
        model = load_model(tmp_path / "model")
    else:
        joblib.dump(pipeline, tmp_path / "model.joblib")
        model = load_model(tmp_path / "model.joblib")
    assert model.route_note == "arrays (direct: StandardScaler; LogisticRegression: direct)"
    rows = pd.DataFrame(rng.normal(size=(300, 4)) * 3, columns=names)
    for count in (1, 7, 300):
        part = rows.head(count)
        assert_same_as_sklearn(model, {name: part[name].tolist() for name in names})


def test_info_says_which_route_a_model_takes(saved: Any, tmp_path: Path) -> None:
    import json

    from conftest import run_infer_cli

    directory = saved("churn", "gbm")["directory"]
    shown = run_infer_cli("info", "-m", directory, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["route"] is None  # a directory is described unloaded
    loaded = run_infer_cli("info", "-m", directory, "--json", "--route")
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout)["route"] == (
        "arrays (direct: OneHotEncoder, SimpleImputer; HistGradientBoostingClassifier: direct)"
    )
    bare = run_infer_cli("info", "-m", saved("churn", "gbm")["bare"], "--json", "--route")
    assert json.loads(bare.stdout)["route"] == json.loads(loaded.stdout)["route"]
    # A model whose steps cannot take arrays says why it takes the DataFrame.
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    frame = pd.read_csv(SAMPLE_DATA / "iris.csv")
    features = frame.drop(columns=["species"])
    scaler = StandardScaler().set_output(transform="pandas")
    pipeline = Pipeline([("scale", scaler), ("model", LogisticRegression(max_iter=500))])
    joblib.dump(pipeline.fit(features, frame["species"]), tmp_path / "frames.joblib")
    shown = run_infer_cli("info", "-m", tmp_path / "frames.joblib", "--route")
    assert shown.returncode == 0, shown.stderr
    assert "usual (DataFrame: a step set to give DataFrames)" in shown.stderr.decode()
