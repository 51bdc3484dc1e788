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
from .model_files import METADATA_LIMIT, confined, read_regular
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
# An MLmodel file is a few dozen YAML nodes nested five deep; its signature is one of them.
MLMODEL_NODES = 100_000
MLMODEL_DEPTH = 64

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
    """Read `MLmodel`: the flavor, the estimator's file and format, the signature, the origin.

    Every field infer-cli reads must have the type MLflow writes; anything else is a model
    error naming the field.
    """
    mlmodel = location / MLMODEL_FILE
    document = read_mlmodel(mlmodel)
    flavors = _field(document, "flavors", dict, mlmodel)
    if flavors is None:
        raise ModelError(f"{mlmodel}: not an MLflow model file (no flavors)")
    flavor, model_file, serialization, trusted = _sklearn_flavor(flavors, mlmodel)
    pyfunc = flavors.get(PYFUNC_FLAVOR) or {}
    sklearn = flavors.get(SKLEARN_FLAVOR) or {}
    source: dict[str, str | None] = {"format": "mlflow", "flavor": flavor}
    for key in ("mlflow_version", "run_id", "artifact_path", "model_uuid", "model_id"):
        source[key] = _text(document, key, mlmodel)
    return MlflowDescription(
        directory=location,
        model_file=model_file,
        serialization=serialization,
        trusted_types=trusted,
        signature=_signature(_field(document, "signature", dict, mlmodel), mlmodel),
        predict_fn=_text(pyfunc, "predict_fn", mlmodel) or "predict",
        sklearn_version=_text(sklearn, "sklearn_version", mlmodel),
        python_version=_text(pyfunc, "python_version", mlmodel),
        created=_text(document, "utc_time_created", mlmodel) or "",
        source={key: value for key, value in source.items() if value is not None},
        example=_example(location, document.get("saved_input_example_info")),
    )


def read_mlmodel(mlmodel: Path) -> dict[str, Any]:
    """`MLmodel` as a mapping, read in bounded memory: the file capped, YAML aliases (which
    let a small file expand into gigabytes) refused, nesting and node count bounded."""
    import yaml

    try:
        text = read_regular(mlmodel, limit=METADATA_LIMIT)
    except OSError as exc:
        raise ModelError(f"cannot read {mlmodel}: {exc.strerror}") from exc
    try:
        loader = _bounded_loader()(text.decode("utf-8"))
        try:
            document = loader.get_single_data()
        finally:
            loader.dispose()
    except _Refused as exc:
        raise ModelError(f"{mlmodel}: {exc}") from None
    except RecursionError:
        raise ModelError(f"{mlmodel}: not valid YAML (nested too deeply)") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ModelError(f"{mlmodel}: not valid YAML ({first_line(exc)})") from exc
    if not isinstance(document, dict):
        raise ModelError(f"{mlmodel}: not an MLflow model file (not a mapping)")
    return document


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
    sklearn = _field(flavors, SKLEARN_FLAVOR, dict, mlmodel)
    pyfunc = _field(flavors, PYFUNC_FLAVOR, dict, mlmodel)
    if sklearn is not None and sklearn.get("pickled_model"):
        flavor, model_file = SKLEARN_FLAVOR, str(_text(sklearn, "pickled_model", mlmodel))
        serialization = _text(sklearn, "serialization_format", mlmodel) or "pickle"
        listed = _field(sklearn, "skops_trusted_types", list, mlmodel) or []
        if not all(isinstance(name, str) for name in listed):
            raise ModelError(f"{mlmodel}: 'skops_trusted_types' must be a list of type names")
        trusted = tuple(listed)
    elif pyfunc is not None and pyfunc.get("loader_module") == SKLEARN_LOADER:
        flavor, model_file = PYFUNC_FLAVOR, _text(pyfunc, "model_path", mlmodel) or ""
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


def _field(data: dict[str, Any], key: str, kind: type, mlmodel: Path) -> Any:
    value = data.get(key)
    if value is not None and not isinstance(value, kind):
        expected = "a mapping" if kind is dict else "a list"
        raise ModelError(f"{mlmodel}: '{key}' must be {expected}, not {_yaml_kind(value)}")
    return value


def _text(data: dict[str, Any], key: str, mlmodel: Path) -> str | None:
    """A scalar field as text (YAML reads an unquoted time as a datetime, a version as a
    number); a list or a mapping where MLflow writes a scalar is refused."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, (dict, list, set, bytes)):
        raise ModelError(f"{mlmodel}: '{key}' must be text, not {_yaml_kind(value)}")
    return str(value)


def _yaml_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, set)):
        return "a list"
    if isinstance(value, bytes):
        return "binary data"
    return type(value).__name__


def _signature(signature: dict[str, Any] | None, mlmodel: Path) -> Signature | None:
    if signature is None or not signature.get("inputs"):
        return None
    text = signature["inputs"]
    if not isinstance(text, str):
        raise ModelError(f"{mlmodel}: the signature's inputs must be JSON text")
    try:
        inputs = json.loads(text)
    except RecursionError:
        raise ModelError(f"{mlmodel}: the signature's inputs are nested too deeply") from None
    except ValueError as exc:
        raise ModelError(f"{mlmodel}: the signature's inputs are not valid JSON ({exc})") from exc
    if not isinstance(inputs, list) or not all(isinstance(spec, dict) for spec in inputs):
        raise ModelError(f"{mlmodel}: the signature's inputs are not a list of columns")
    for spec in inputs:
        for key, kind in (("name", str), ("type", str), ("required", bool)):
            if key in spec and not isinstance(spec[key], kind):
                expected = "text" if kind is str else "true or false"
                raise ModelError(f"{mlmodel}: the signature's input '{key}' must be {expected}")
    return signature_from_mlflow(inputs, str(mlmodel))


def _tensor_signature(inputs: list[dict[str, Any]], where: str) -> Signature:
    spec = inputs[0].get("tensor-spec")
    shape = spec.get("shape") if isinstance(spec, dict) else None
    shape = shape if isinstance(shape, list) else []
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
    """The model file, which MLmodel names: resolved, and refused unless it is a regular
    file inside the model directory (MLflow records no hash to check it against)."""
    path = description.model_path
    resolved = confined(description.directory, description.model_file, named_by=MLMODEL_FILE)
    try:
        return read_regular(resolved, shown=path)
    except FileNotFoundError as exc:
        raise ModelError(f"{path}: missing (MLmodel names it as the model file)") from exc
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
    name = info.get("artifact_path")
    if not isinstance(name, str):
        return []
    try:
        path = confined(location, name, named_by=MLMODEL_FILE)
        document = json.loads(read_regular(path, limit=METADATA_LIMIT))
    except (ModelError, OSError, ValueError, RecursionError):
        return []
    rows: list[dict[str, Any]] = []
    if info.get("pandas_orient", "split") == "split" and isinstance(document, dict):
        columns, data = document.get("columns"), document.get("data")
        if isinstance(columns, list) and isinstance(data, list):
            names = [str(column) for column in columns]
            shaped = [row for row in data[:EXAMPLE_ROWS] if isinstance(row, list)]
            rows = [dict(zip(names, row, strict=False)) for row in shaped]
    elif isinstance(document, list):
        rows = [row for row in document[:EXAMPLE_ROWS] if isinstance(row, dict)]
    scalars = (str, int, float, bool, type(None))
    if all(isinstance(value, scalars) for row in rows for value in row.values()):
        return rows
    return []


class _Refused(Exception):
    """YAML that would cost memory out of proportion to its size."""


def _bounded_loader() -> type:
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        """PyYAML's safe loader, refusing aliases and bounding nesting and node count."""

        depth = 0
        nodes = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                raise _Refused(
                    "YAML aliases are not accepted (a few lines of them can expand into "
                    "gigabytes); MLflow writes none"
                )
            self.nodes += 1
            if self.nodes > MLMODEL_NODES:
                raise _Refused(f"more than {MLMODEL_NODES} YAML nodes; not an MLmodel file")
            if self.depth >= MLMODEL_DEPTH:
                raise _Refused(f"nested too deeply (more than {MLMODEL_DEPTH} levels)")
            self.depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return BoundedLoader
