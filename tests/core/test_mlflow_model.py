"""MLflow model directories, built by MLflow itself, scored here and by MLflow on the same input."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from infer_cli.core import UntrustedTypes, load_model
from infer_cli.core.mlflow_model import signature_from_mlflow
from infer_cli.errors import ModelError, SchemaError
from infer_cli.training import TrainOptions, train

FORMATS = ("skops", "cloudpickle", "pickle")
# What a pipeline of infer-cli's own training holds beyond the types skops trusts itself.
PIPELINE_TYPES = ["numpy.dtype"]


class Doubler(TransformerMixin, BaseEstimator):
    """A transformer of the kind a team writes itself: skops does not know it."""

    def fit(self, x: Any, y: Any = None) -> Doubler:
        return self

    def transform(self, x: Any) -> Any:
        return np.asarray(x, dtype=np.float64) * 2


@pytest.fixture(scope="session")
def mlflow() -> Iterator[Any]:
    """MLflow, imported once; it refuses to load any model unless this is set."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
        import mlflow
        import mlflow.pyfunc
        import mlflow.sklearn

        yield mlflow


@pytest.fixture(scope="session")
def churn_models(
    mlflow: Any, sample_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The same churn pipeline saved by MLflow in each format, plus one serving probabilities."""
    from mlflow.models import infer_signature

    frame = pd.read_csv(sample_data / "churn.csv")
    pipeline = train(frame, TrainOptions(target="churned")).estimator
    features = frame.drop(columns=["churned"])
    signature = infer_signature(features, pipeline.predict(features))
    root = tmp_path_factory.mktemp("mlflow")
    paths = {}
    for serialization in FORMATS:
        paths[serialization] = root / serialization
        mlflow.sklearn.save_model(
            pipeline,
            paths[serialization],
            serialization_format=serialization,
            skops_trusted_types=PIPELINE_TYPES if serialization == "skops" else None,
            signature=signature,
            input_example=features.head(3) if serialization == "skops" else None,
            pip_requirements=[],
        )
    houses = pd.read_csv(sample_data / "housing.csv")
    regressor = train(houses, TrainOptions(target="price")).estimator
    paths["housing"] = root / "housing"
    mlflow.sklearn.save_model(
        regressor, paths["housing"], serialization_format="pickle",
        signature=infer_signature(houses.drop(columns=["price"])), pip_requirements=[],
    )  # fmt: skip
    paths["proba"] = root / "proba"
    mlflow.sklearn.save_model(
        pipeline,
        paths["proba"],
        skops_trusted_types=PIPELINE_TYPES,
        signature=infer_signature(features, pipeline.predict_proba(features)),
        pyfunc_predict_fn="predict_proba",
        pip_requirements=[],
    )
    return paths


@pytest.fixture
def mlflow_copy(churn_models: dict[str, Path], tmp_path: Path) -> Callable[[str], Path]:
    def copy(name: str) -> Path:
        destination = tmp_path / f"mlflow_{name}"
        shutil.copytree(churn_models[name], destination)
        return destination

    return copy


def scored(result: Any) -> pd.DataFrame:
    assert result.exit_code == 0, result.output
    return pd.read_csv(StringIO(result.stdout))


@pytest.mark.parametrize("serialization", FORMATS)
def test_predict_gives_what_mlflow_gives(
    serialization: str,
    mlflow: Any,
    churn_models: dict[str, Path],
    sample_data: Path,
    cli: Any,
) -> None:
    rows = sample_data / "churn_new.csv"
    expected = mlflow.pyfunc.load_model(str(churn_models[serialization])).predict(pd.read_csv(rows))
    ours = scored(cli("predict", "-m", churn_models[serialization], "-i", rows, "-q"))
    assert ours["prediction"].tolist() == list(expected)
    assert set(expected) == {"yes", "no"}


def test_probabilities_are_what_mlflow_serves(
    mlflow: Any, churn_models: dict[str, Path], sample_data: Path, cli: Any
) -> None:
    rows = sample_data / "churn_new.csv"
    expected = mlflow.pyfunc.load_model(str(churn_models["proba"])).predict(pd.read_csv(rows))
    result = cli("predict", "-m", churn_models["proba"], "-i", rows, "--proba")
    ours = scored(result)
    np.testing.assert_allclose(ours[["proba_no", "proba_yes"]].to_numpy(), expected, rtol=1e-12)
    assert "MLflow serves this model's predict_proba" in result.stderr


@pytest.mark.parametrize(
    ("name", "rows", "options"),
    [
        ("skops", "churn_new.csv", ()),
        ("proba", "churn_new.csv", ("--proba",)),
        ("housing", "housing_new.csv", ()),
    ],
)
def test_mlflow_json_output_is_what_mlflow_models_predict_writes(
    name: str,
    rows: str,
    options: tuple[str, ...],
    mlflow: Any,
    churn_models: dict[str, Path],
    sample_data: Path,
    cli: Any,
    tmp_path: Path,
) -> None:
    from mlflow.pyfunc.scoring_server import predictions_to_json

    served = mlflow.pyfunc.load_model(str(churn_models[name]))
    expected = StringIO()
    predictions_to_json(served.predict(pd.read_csv(sample_data / rows)), expected)
    output = tmp_path / "predictions.json"
    result = cli(
        "predict", "-m", churn_models[name], "-i", sample_data / rows, "-o", output,
        "--output-format", "mlflow-json", *options,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert output.read_text() == expected.getvalue()


@pytest.fixture(scope="session")
def typed_model(mlflow: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A model trained on every column type MLflow infers from a frame, and that frame."""
    from mlflow.models import infer_signature

    rng = np.random.default_rng(0)
    count = 200
    frame = pd.DataFrame(
        {
            "width": rng.normal(size=count).astype(np.float32),
            "rooms": rng.integers(0, 9, size=count).astype(np.int32),
            "age": rng.integers(0, 90, size=count).astype(np.int64),
            "price": rng.normal(size=count),
            "garden": rng.integers(0, 2, size=count).astype(bool),
            "town": rng.choice(["north", "south", "east"], size=count),
        }
    )
    labels = (frame["width"] + frame["rooms"] / 4 + frame["garden"] > 1.2).to_numpy()
    encode = ColumnTransformer(
        [("town", OneHotEncoder(handle_unknown="ignore"), ["town"])],
        remainder="passthrough",
        sparse_threshold=0,
    )
    pipeline = Pipeline([("prepare", encode), ("model", LogisticRegression(max_iter=1000))])
    pipeline.fit(frame, labels)
    directory = tmp_path_factory.mktemp("typed") / "model"
    mlflow.sklearn.save_model(
        pipeline, directory, serialization_format="cloudpickle",
        signature=infer_signature(frame, labels), pyfunc_predict_fn="predict_proba",
        pip_requirements=[],
    )  # fmt: skip
    return directory, frame


def test_signature_casts_columns_to_the_dtypes_mlflow_gives_the_model(
    mlflow: Any, typed_model: tuple[Path, pd.DataFrame]
) -> None:
    """float is float32, integer int32, long int64, boolean bool: the model sees what it
    sees under MLflow, so a float32 column gives the very same probabilities (read as
    float64 from a CSV and not cast, they differ in the 8th digit)."""
    from mlflow.models.utils import _enforce_schema

    directory, frame = typed_model
    served = mlflow.pyfunc.load_model(str(directory))
    model = load_model(directory)
    # The same values, as a CSV reader hands them over: 64-bit numbers and text.
    as_read = pd.read_csv(StringIO(frame.to_csv(index=False)))
    validated = model.signature.validate(as_read).frame
    enforced = _enforce_schema(frame, served.metadata.get_input_schema())
    assert validated.dtypes.astype(str).to_dict() == {
        "width": "float32",
        "rooms": "int32",
        "age": "int64",
        "price": "float64",
        "garden": "bool",
        "town": str(enforced["town"].dtype),
    }
    for name in ("width", "rooms", "age", "price", "garden", "town"):
        assert validated[name].dtype == enforced[name].dtype, name
        assert (validated[name].to_numpy() == enforced[name].to_numpy()).all(), name
    ours = model.predict(as_read, proba=True)
    assert ours.probabilities is not None
    assert (ours.probabilities == served.predict(frame)).all()


def test_bench_makes_up_rows_for_every_mlflow_column_type(
    typed_model: tuple[Path, pd.DataFrame], cli: Any
) -> None:
    directory, _ = typed_model
    result = cli("bench", "-m", directory, "--max-batch", "10", "--seconds", "0.05", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["batches"][0]["rows_per_second"] > 0


def test_mlflow_signature_maps_onto_ours() -> None:
    signature = signature_from_mlflow(
        [
            {"type": "double", "name": "a", "required": True},
            {"type": "long", "name": "b", "required": False},
            {"type": "string", "name": "c"},
            {"type": "boolean", "name": "d"},
            {"type": "float", "name": "e"},
        ]
    )
    assert [(c.name, c.dtype, c.required, c.numpy_dtype) for c in signature.inputs] == [
        ("a", "float", True, None),
        ("b", "integer", False, "int64"),
        ("c", "string", True, None),
        ("d", "boolean", True, None),
        ("e", "float", True, "float32"),
    ]
    tensor = signature_from_mlflow(
        [{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 4]}}]
    )
    assert tensor.positional and len(tensor.inputs) == 4
    with pytest.raises(ModelError, match="input 'tags' is of MLflow type 'array'"):
        signature_from_mlflow([{"type": "array", "name": "tags", "items": {"type": "string"}}])


def test_gap_in_a_long_column_names_row_and_column(churn_models: dict[str, Path]) -> None:
    model = load_model(churn_models["skops"])
    rows = pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "tenure_months": [3, None],
            "monthly_charges": [80.0, 20.0],
            "contract": ["one-year", "two-year"],
            "internet_service": ["fiber", "none"],
            "support_calls": [1, 0],
        }
    )
    with pytest.raises(SchemaError, match=r"row 2, column 'tenure_months': missing value"):
        model.predict(rows)


@pytest.mark.parametrize("serialization", FORMATS)
def test_info_says_where_the_model_came_from_and_if_it_is_a_pickle(
    serialization: str, churn_models: dict[str, Path], cli: Any
) -> None:
    result = cli("info", "-m", churn_models[serialization], "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["kind"] == "MLflow model directory (sklearn flavor)"
    assert shown["source"]["format"] == "mlflow"
    assert shown["source"]["mlflow_version"]
    assert shown["model_format"] == serialization
    assert ("runs code when loaded" in shown["serialization"]) is (serialization != "skops")
    assert shown["pickle_based"] is (serialization != "skops")
    assert shown["versions"]["scikit-learn"]
    assert [c["name"] for c in shown["signature"]["inputs"]][:2] == [
        "customer_id",
        "tenure_months",
    ]
    if serialization == "skops":
        assert shown["trust"]["vouched_by_metadata"] == PIPELINE_TYPES
        assert len(shown["example"]) == 3


def test_info_card_for_people_names_the_origin(churn_models: dict[str, Path], cli: Any) -> None:
    result = cli("info", "-m", churn_models["pickle"])
    assert result.exit_code == 0, result.output
    for fact in ("MLflow", "pickle-based", "runs code when loaded", "int64"):
        assert fact in result.stderr


@pytest.mark.parametrize(
    ("serialization", "message"),
    [
        ("skops", "model.skops: not a readable skops file"),
        ("pickle", "model.pkl: cannot load the model"),
    ],
)
def test_corrupted_model_file_is_one_clear_error(
    serialization: str, message: str, mlflow_copy: Callable[[str], Path], cli: Any
) -> None:
    directory = mlflow_copy(serialization)
    model_file = next(directory.glob("model.*"))
    model_file.write_bytes(model_file.read_bytes()[:200])
    result = cli("predict", "-m", directory, "-i", "-", input="tenure_months\n3\n")
    assert result.exit_code == 4
    assert result.stderr.startswith("infer-cli: error: ")
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_model_file_and_other_flavors_are_clear_errors(
    mlflow_copy: Callable[[str], Path],
) -> None:
    directory = mlflow_copy("cloudpickle")
    (directory / "model.pkl").unlink()
    with pytest.raises(ModelError, match=r"model\.pkl: missing \(MLmodel names it"):
        load_model(directory)
    mlmodel = directory / "MLmodel"
    mlmodel.write_text("flavors:\n  xgboost:\n    data: model.xgb\n")
    with pytest.raises(ModelError, match="flavor xgboost; infer-cli loads scikit-learn"):
        load_model(directory)


def test_types_vouched_for_by_mlflow_metadata_are_needed(
    mlflow_copy: Callable[[str], Path],
) -> None:
    """Without the MLmodel's skops_trusted_types, the pipeline's numpy.dtype is refused."""
    directory = mlflow_copy("skops")
    mlmodel = directory / "MLmodel"
    mlmodel.write_text(mlmodel.read_text().replace("    - numpy.dtype\n", ""))
    with pytest.raises(UntrustedTypes) as caught:
        load_model(directory)
    assert caught.value.types == ["numpy.dtype"]
    assert "pass --trust-types numpy.dtype" in str(caught.value)
    assert load_model(directory, trust_types=["numpy.dtype"]).is_classifier


def test_custom_class_in_skops_file_is_refused_until_named(
    mlflow: Any, tmp_path: Path, cli: Any
) -> None:
    """MLflow's metadata lists the custom class, but only the user can vouch for it."""
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]})
    pipeline = Pipeline([("double", Doubler()), ("model", LogisticRegression())])
    pipeline.fit(frame, [0, 0, 0, 1, 1, 1])
    custom = f"{Doubler.__module__}.Doubler"
    directory = tmp_path / "custom"
    from mlflow.models import infer_signature

    mlflow.sklearn.save_model(
        pipeline, directory, serialization_format="skops", skops_trusted_types=[custom],
        signature=infer_signature(frame), pip_requirements=[],
    )  # fmt: skip
    rows = "x\n0.5\n4.5\n"
    refused = cli("predict", "-m", directory, "-i", "-", input=rows)
    assert refused.exit_code == 4
    assert f"refusing to load types that are not trusted: {custom}" in refused.stderr
    assert "which cannot vouch for classes off infer-cli's allow-list" in refused.stderr
    info = cli("info", "-m", directory, "--json")
    assert info.exit_code == 4
    assert json.loads(info.stdout)["trust"]["refused"] == [custom]
    admitted = cli("predict", "-m", directory, "-i", "-", "--trust-types", custom, input=rows)
    assert scored(admitted)["prediction"].tolist() == [0, 1]
    assert cli("info", "-m", directory, "--trust-types", custom).exit_code == 0


def test_pyfunc_only_model_backed_by_sklearn_loads(
    mlflow_copy: Callable[[str], Path], sample_data: Path
) -> None:
    """An MLmodel with only the python_function flavor, as older tools wrote it."""
    directory = mlflow_copy("pickle")
    import yaml

    document = yaml.safe_load((directory / "MLmodel").read_text())
    del document["flavors"]["sklearn"]
    (directory / "MLmodel").write_text(yaml.safe_dump(document))
    model = load_model(directory)
    rows = pd.read_csv(sample_data / "churn_new.csv")
    assert set(model.predict(rows).values) == {"yes", "no"}


def test_model_without_signature_takes_the_columns_it_was_fitted_on(
    mlflow: Any, tmp_path: Path
) -> None:
    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    directory = tmp_path / "unsigned"
    mlflow.sklearn.save_model(
        LogisticRegression().fit(frame, [0, 0, 1, 1]), directory,
        serialization_format="pickle", pip_requirements=[],
    )  # fmt: skip
    model = load_model(directory)
    assert model.signature.names == ["a", "b"]
    assert model.predict(pd.DataFrame({"b": [0.0], "a": [3.0]})).values.tolist() == [1]


def test_mlflow_is_not_imported_to_load_a_model(churn_models: dict[str, Path]) -> None:
    """A fresh interpreter loads and scores an MLflow model without importing mlflow."""
    import subprocess
    import sys

    script = (
        "import sys, pandas as pd\n"
        "from infer_cli.core.store import load_model\n"
        f"model = load_model({str(churn_models['skops'])!r})\n"
        "print(model.predict(pd.DataFrame([{'tenure_months': 2, 'monthly_charges': 90.0,"
        " 'contract': 'month-to-month', 'internet_service': 'fiber',"
        " 'support_calls': 4, 'customer_id': 'x'}])).values[0])\n"
        "print('mlflow' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    label, imported = done.stdout.split()
    assert label in ("yes", "no")
    assert imported == "False"
