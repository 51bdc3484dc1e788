"""MLflow model directories: the `MLmodel` file, its signature, and the scikit-learn model.

MLflow itself is not needed: `MLmodel` is YAML, and the estimator is a skops file or a
pickle. The signature's columns are mapped so that validation hands the estimator what
MLflow's own schema enforcement hands it (a `long` column as int64, a `float` as float32).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from ..errors import ModelError, first_line
from .card import EXAMPLE_ROWS, Inspection, ModelCard, card_of_estimator, version_notices
from .serialization import (
    SKOPS,
    TrustReview,
    describe,
    is_pickle_based,
    load_pickled,
    load_skops,
    review_trust,
)
from .signature import Column, ColumnType, Signature

if TYPE_CHECKING:
    from .model import Model

MLMODEL_FILE = "MLmodel"
SKLEARN_FLAVOR = "sklearn"
PYFUNC_FLAVOR = "python_function"
SKLEARN_LOADER = "mlflow.sklearn"
MLFLOW_SERIALIZATIONS = ("skops", "cloudpickle", "pickle")

# MLflow's column type: the column type it is validated as here, and the numpy dtype
# MLflow casts it to before the model sees it, where that differs from the validated one.
_COLUMN_TYPES: dict[str, tuple[ColumnType, str | None]] = {
    "double": ("float", None),
    "float": ("float", "float32"),
    "long": ("integer", "int64"),
    "integer": ("integer", "int32"),
    "string": ("string", None),
    "boolean": ("boolean", None),
    "binary": ("any", None),
    "datetime": ("any", None),
}


@dataclass(frozen=True)
class MlflowDescription:
    """What an `MLmodel` file says about a scikit-learn model, read without loading it."""

    directory: Path
    model_file: str
    serialization: str
    trusted_types: tuple[str, ...]
    signature: Signature | None
    predict_fn: str
    sklearn_version: str | None
    python_version: str | None
    created: str
    source: dict[str, Any] = field(default_factory=dict)
    example: list[dict[str, Any]] = field(default_factory=list)

    @property
    def model_path(self) -> Path:
        return self.directory / self.model_file


def is_mlflow_directory(location: Path) -> bool:
    return (location / MLMODEL_FILE).is_file()


def describe_mlflow_model(location: Path) -> MlflowDescription:
    """Read `MLmodel`: the flavor, the estimator's file and format, the signature, the origin."""
    import yaml

    mlmodel = location / MLMODEL_FILE
    try:
        document = yaml.safe_load(mlmodel.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelError(f"cannot read {mlmodel}: {exc.strerror}") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ModelError(f"{mlmodel}: not valid YAML ({first_line(exc)})") from exc
    if not isinstance(document, dict) or not isinstance(document.get("flavors"), dict):
        raise ModelError(f"{mlmodel}: not an MLflow model file (no flavors)")
    flavors: dict[str, Any] = document["flavors"]
    flavor, model_file, serialization, trusted = _sklearn_flavor(flavors, mlmodel)
    pyfunc = flavors.get(PYFUNC_FLAVOR) or {}
    sklearn = flavors.get(SKLEARN_FLAVOR) or {}
    source = {
        "format": "mlflow",
        "flavor": flavor,
        "mlflow_version": document.get("mlflow_version"),
        "run_id": document.get("run_id"),
        "artifact_path": document.get("artifact_path"),
        "model_uuid": document.get("model_uuid"),
        "model_id": document.get("model_id"),
    }
    return MlflowDescription(
        directory=location,
        model_file=model_file,
        serialization=serialization,
        trusted_types=trusted,
        signature=_signature(document.get("signature"), mlmodel),
        predict_fn=str(pyfunc.get("predict_fn") or "predict"),
        sklearn_version=sklearn.get("sklearn_version"),
        python_version=pyfunc.get("python_version"),
        created=str(document.get("utc_time_created") or ""),
        source={key: value for key, value in source.items() if value is not None},
        example=_example(location, document.get("saved_input_example_info")),
    )


def load_mlflow_model(location: Path, *, trust_types: Iterable[str] = ()) -> Model:
    """Load the scikit-learn model of an MLflow model directory, as the core's `Model`."""
    from .model import Model

    description = describe_mlflow_model(location)
    payload = _read_payload(description)
    if description.serialization == SKOPS:
        estimator = load_skops(
            payload,
            description.model_path,
            listed=description.trusted_types,
            trust=trust_types,
        )
    else:
        estimator = load_pickled(payload, description.model_path, description.serialization)
    facts = card_of_estimator(estimator, description.model_path, description.signature)
    card = _card(description, payload)
    card.task, card.classes, card.signature = facts.task, facts.classes, facts.signature
    notices = version_notices(card)
    if description.predict_fn != "predict":
        notices.append(
            f"MLflow serves this model's {description.predict_fn}; infer-cli predicts with "
            "predict (add --proba for class probabilities)"
        )
    return Model(estimator, card, location, notices)


def inspect_mlflow_model(location: Path, *, trust_types: Iterable[str] = ()) -> Inspection:
    """Describe an MLflow model directory for `info` without loading its estimator."""
    description = describe_mlflow_model(location)
    payload = _read_payload(description)
    trust: TrustReview | None = None
    if description.serialization == SKOPS:
        trust = review_trust(
            payload,
            description.model_path,
            listed=description.trusted_types,
            trust=trust_types,
        )
    card = _card(description, payload)
    return Inspection(
        location,
        f"MLflow model directory ({description.source['flavor']} flavor)",
        describe(description.serialization),
        card,
        len(payload),
        card.sha256,
        None,
        pickle_based=is_pickle_based(description.serialization),
        trust=trust,
    )


def signature_from_mlflow(inputs: list[dict[str, Any]], where: str = "MLmodel") -> Signature:
    """Our signature for MLflow's input specs: named columns, unnamed columns, or one tensor."""
    if any(spec.get("type") == "tensor" for spec in inputs):
        return _tensor_signature(inputs, where)
    if inputs and all("name" not in spec for spec in inputs):
        columns = tuple(Column(f"column_{i}", "any") for i in range(len(inputs)))
        return Signature(columns, positional=True)
    named = []
    for spec in inputs:
        name, kind = str(spec.get("name", "")), str(spec.get("type", ""))
        if kind not in _COLUMN_TYPES:
            raise ModelError(
                f"{where}: input '{name}' is of MLflow type '{kind}', which infer-cli cannot "
                f"read from a table (it reads {', '.join(_COLUMN_TYPES)})"
            )
        dtype, numpy_dtype = _COLUMN_TYPES[kind]
        required = bool(spec.get("required", True))
        named.append(Column(name, dtype, required=required, numpy_dtype=numpy_dtype))
    return Signature(tuple(named))


def _sklearn_flavor(
    flavors: dict[str, Any], mlmodel: Path
) -> tuple[str, str, str, tuple[str, ...]]:
    """(flavor, model file, serialization, trusted types), the way mlflow.sklearn finds them."""
    sklearn = flavors.get(SKLEARN_FLAVOR)
    pyfunc = flavors.get(PYFUNC_FLAVOR)
    if isinstance(sklearn, dict) and sklearn.get("pickled_model"):
        flavor, model_file = SKLEARN_FLAVOR, str(sklearn["pickled_model"])
        serialization = str(sklearn.get("serialization_format") or "pickle")
        trusted = tuple(str(name) for name in sklearn.get("skops_trusted_types") or ())
    elif isinstance(pyfunc, dict) and pyfunc.get("loader_module") == SKLEARN_LOADER:
        flavor, model_file = PYFUNC_FLAVOR, str(pyfunc.get("model_path") or "")
        # Without a sklearn flavor MLflow assumes a pickle; a .skops file can only be skops.
        serialization = SKOPS if model_file.endswith(".skops") else "pickle"
        trusted = ()
    else:
        raise ModelError(
            f"{mlmodel}: an MLflow model of flavor {', '.join(map(str, flavors)) or 'none'}; "
            "infer-cli loads scikit-learn models (the 'sklearn' flavor) only"
        )
    if serialization not in MLFLOW_SERIALIZATIONS:
        raise ModelError(
            f"{mlmodel}: unknown serialization_format '{serialization}' "
            f"(MLflow writes {', '.join(MLFLOW_SERIALIZATIONS)})"
        )
    relative = PurePosixPath(model_file)
    if not model_file or relative.is_absolute() or ".." in relative.parts:
        raise ModelError(f"{mlmodel}: the model file '{model_file}' is not inside the model")
    return flavor, model_file, serialization, trusted


def _signature(signature: Any, mlmodel: Path) -> Signature | None:
    if not isinstance(signature, dict) or not signature.get("inputs"):
        return None
    try:
        inputs = json.loads(signature["inputs"])
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{mlmodel}: the signature's inputs are not valid JSON ({exc})") from exc
    if not isinstance(inputs, list) or not all(isinstance(spec, dict) for spec in inputs):
        raise ModelError(f"{mlmodel}: the signature's inputs are not a list of columns")
    return signature_from_mlflow(inputs, str(mlmodel))


def _tensor_signature(inputs: list[dict[str, Any]], where: str) -> Signature:
    spec = inputs[0].get("tensor-spec") or {}
    shape = list(spec.get("shape") or [])
    if len(inputs) == 1 and "name" not in inputs[0] and len(shape) in (1, 2) and shape[0] == -1:
        width = shape[1] if len(shape) == 2 else 1
        if isinstance(width, int) and width > 0:
            columns = tuple(Column(f"column_{i}", "any") for i in range(width))
            return Signature(columns, positional=True)
    raise ModelError(
        f"{where}: the signature takes tensors of shape {shape or '?'}; infer-cli reads "
        "tables, so it takes one unnamed tensor of shape (-1, columns) only"
    )


def _read_payload(description: MlflowDescription) -> bytes:
    path = description.model_path
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ModelError(f"{path}: missing (MLmodel names it as the model file)") from exc
    except IsADirectoryError as exc:
        raise ModelError(f"{path}: a directory, not a model file") from exc
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror}") from exc


def _card(description: MlflowDescription, payload: bytes) -> ModelCard:
    versions = {}
    if description.python_version:
        versions["python"] = str(description.python_version)
    if description.sklearn_version:
        versions["scikit-learn"] = str(description.sklearn_version)
    if "mlflow_version" in description.source:
        versions["mlflow"] = str(description.source["mlflow_version"])
    signature = description.signature or Signature(())
    return ModelCard(
        task="unknown until loaded",
        target=None,
        classes=None,
        signature=signature,
        versions=versions,
        example=description.example,
        sha256=hashlib.sha256(payload).hexdigest(),
        created=description.created,
        serialization=description.serialization,
        model_file=description.model_file,
        trusted_types=list(description.trusted_types),
        source=description.source,
    )


def _example(location: Path, info: Any) -> list[dict[str, Any]]:
    """The model's input example, when MLflow saved one as a table; only shown, never trusted."""
    if not isinstance(info, dict) or info.get("type") != "dataframe":
        return []
    name = str(info.get("artifact_path") or "")
    if not name or PurePosixPath(name).is_absolute() or ".." in PurePosixPath(name).parts:
        return []
    try:
        document = json.loads((location / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if info.get("pandas_orient", "split") == "split" and isinstance(document, dict):
        columns, data = document.get("columns"), document.get("data")
        if isinstance(columns, list) and isinstance(data, list):
            rows = [row for row in data[:EXAMPLE_ROWS] if isinstance(row, list)]
            return [dict(zip(columns, row, strict=False)) for row in rows]
    if isinstance(document, list):
        return [row for row in document[:EXAMPLE_ROWS] if isinstance(row, dict)]
    return []
