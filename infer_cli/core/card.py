"""What a model's card records, read from `model.json`, an `MLmodel` file or the estimator
itself, and what `info` shows of a model found on disk.

`model.json` travels beside the model file and its SHA-256 covers the file alone, so nothing
in it is taken on faith: every field must have the type `train` writes, its nesting is
bounded, and once the estimator is loaded its task, classes and columns must be the card's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ModelError
from .signature import COLUMN_TYPES, PINNED_DTYPES, Column, Signature

if TYPE_CHECKING:
    from .serialization import TrustReview


CARD_FILE = "model.json"
# A card written by `train` nests five levels deep (metrics, per class, precision).
MAX_DEPTH = 32
_SCALARS = (str, int, float, bool, type(None))
EXAMPLE_ROWS = 3
MODEL_FILE = "model.joblib"
# Format 2 may hold model.skops. A joblib model is still written as format 1, which
# infer-cli versions from before skops read as they always did. Format 3 records a decision
# threshold: a version that would ignore it, labelling rows at 0.5, refuses the card instead.
FORMAT_VERSION = 3
DECISION_FORMAT_VERSION = 3


class _Invalid(ValueError):
    """A field of a card that is not what `train` writes."""


@dataclass
class ModelCard:
    """What `model.json` records about a model, beside the model itself."""

    task: str
    target: str | None
    classes: list[Any] | None
    signature: Signature
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    example: list[dict[str, Any]] = field(default_factory=list)
    sha256: str = ""
    created: str = ""
    format_version: int = FORMAT_VERSION
    serialization: str = "joblib"
    model_file: str = MODEL_FILE
    # Types a skops file holds beyond those skops trusts itself, as the saver vouches.
    trusted_types: list[str] = field(default_factory=list)
    # Where the model came from when infer-cli did not train it (an MLflow run, say).
    source: dict[str, Any] = field(default_factory=dict)
    # The training rows' profile (`profile.Profile.to_dict`), which later input is judged by.
    profile: dict[str, Any] | None = None
    # A binary classifier's decision threshold, recorded by `evaluate --save` (see threshold.py).
    decision: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "task": self.task,
            "target": self.target,
            "classes": self.classes,
            "signature": self.signature.to_dict(),
            "metrics": self.metrics,
            "training": self.training,
            "example": self.example,
            "versions": self.versions,
            "sha256": self.sha256,
            "created": self.created,
            "serialization": self.serialization,
            "model_file": self.model_file,
            "trusted_types": self.trusted_types,
            "source": self.source,
            "profile": self.profile,
            **({"decision": self.decision} if self.decision else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        """The card `data` describes, each field checked to be of the type `train` writes
        (a ValueError naming the field otherwise)."""
        return _card(data)


@dataclass(frozen=True)
class Inspection:
    """What `info` shows: the card, and the file's state on disk, found without trusting it."""

    path: Path
    kind: str
    serialization: str
    card: ModelCard
    size_bytes: int
    sha256_actual: str
    matches: bool | None
    pickle_based: bool = True
    trust: TrustReview | None = None
    route: str | None = None
    """How the loaded model is scored (Model.route_note); None while it is not loaded."""


def parse_card(card_bytes: bytes, location: Path) -> ModelCard:
    """The card of the model directory `location`, every field checked, or a ModelError
    naming the file and the field."""
    where = location / CARD_FILE
    try:
        data = json.loads(card_bytes)
    except RecursionError:
        raise ModelError(f"{where}: not a valid model card (nested too deeply)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{where}: not a valid model card ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{where}: not a valid model card (not a JSON object)")
    try:
        _check_depth(data)
        return ModelCard.from_dict(data)
    except _Invalid as exc:
        raise ModelError(f"{where}: not a valid model card ({exc})") from None


def check_card(card: ModelCard, estimator: Any, location: Path) -> None:
    """Refuse a card whose task, classes or columns are not the estimator's: the SHA-256
    covers the model file, not the card, and a reordered class list would mislabel every
    probability column without a word."""
    from sklearn.base import is_classifier

    where = location / CARD_FILE
    classifier = is_classifier(estimator)
    if card.task not in ("classification", "regression"):
        raise ModelError(f"{where}: task '{card.task}' is neither classification nor regression")
    if (card.task == "classification") != classifier:
        kind = "a classifier" if classifier else "a regressor"
        raise ModelError(f"{where}: task '{card.task}' does not match the model, {kind}")
    classes = getattr(estimator, "classes_", None)
    if classifier and classes is not None:
        actual = np.asarray(classes).tolist()
        if card.classes is None:
            raise ModelError(f"{where}: classes are missing (the model's are {actual})")
        if card.classes != actual:
            raise ModelError(f"{where}: classes {card.classes} do not match the model's {actual}")
    mismatch = _columns_mismatch(card.signature, estimator)
    if mismatch:
        raise ModelError(f"{where}: columns do not match the model's: {mismatch}")


def card_of_estimator(
    estimator: Any, source: Path, signature: Signature | None = None
) -> ModelCard:
    """A card for an estimator saved without one (a bare file, an MLflow model): its task
    and classes, and the columns it was fitted on unless a signature is known."""
    from sklearn.base import is_classifier

    if not hasattr(estimator, "predict"):
        raise ModelError(f"{source}: holds a {type(estimator).__name__}, not a model")
    classifier = is_classifier(estimator)
    classes = getattr(estimator, "classes_", None) if classifier else None
    return ModelCard(
        task="classification" if classifier else "regression",
        target=None,
        classes=None if classes is None else np.asarray(classes).tolist(),
        signature=signature or _signature_of_estimator(estimator, source),
    )


def _signature_of_estimator(estimator: Any, source: Path) -> Signature:
    """The columns the estimator was fitted on, by name or by position."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        return Signature(tuple(Column(str(name), "any") for name in names))
    count = int(getattr(estimator, "n_features_in_", 0))
    if count == 0:
        raise ModelError(
            f"{source}: the model has no signature and does not say which columns it takes"
        )
    return Signature(tuple(Column(f"column_{i}", "any") for i in range(count)), positional=True)


def version_notices(card: ModelCard) -> list[str]:
    import sklearn

    trained = card.versions.get("scikit-learn")
    if trained and trained != sklearn.__version__:
        return [
            f"model trained with scikit-learn {trained}, running {sklearn.__version__}; "
            "predictions may differ"
        ]
    return []


def _columns_mismatch(signature: Signature, estimator: Any) -> str | None:
    """What is wrong with the card's columns for this estimator, if anything. Columns reach
    the estimator by name, so their order is free; but each input must be one it was fitted
    on, and each column it was fitted on must be an input or pass through."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None and not signature.positional:
        fitted = [str(name) for name in names]
        unknown = [name for name in signature.names if name not in set(fitted)]
        if unknown:
            return f"'{unknown[0]}' is not a column the model was fitted on"
        supplied = set(signature.names) | set(signature.passthrough)
        missing = [name for name in fitted if name not in supplied]
        if missing:
            return f"the model was fitted on '{missing[0]}', which the card does not list"
        return None
    width = getattr(estimator, "n_features_in_", None)
    if isinstance(width, (int, np.integer)) and int(width) != len(signature.inputs):
        return f"{len(signature.inputs)} here, {int(width)} in the model"
    return None


def _check_depth(data: Any) -> None:
    pending = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise _Invalid(f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, dict):
            pending.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)


def _card(data: dict[str, Any]) -> ModelCard:
    task = _text(data, "task", required=True)
    return ModelCard(
        task=task,
        target=_text(data, "target"),
        classes=_classes(data.get("classes")),
        signature=_signature(_mapping(data, "signature", required=True)),
        metrics=_metrics(_mapping(data, "metrics"), task),
        versions=_text_mapping(data, "versions"),
        training=_mapping(data, "training"),
        example=_example(data.get("example", [])),
        sha256=_text(data, "sha256") or "",
        created=_text(data, "created") or "",
        format_version=_format_version(data.get("format_version", FORMAT_VERSION)),
        serialization=_text(data, "serialization") or "joblib",
        model_file=_text(data, "model_file") or MODEL_FILE,
        trusted_types=_text_list(data.get("trusted_types", []), "trusted_types"),
        source=_mapping(data, "source"),
        profile=_mapping(data, "profile") if data.get("profile") is not None else None,
        decision=_decision(data, _classes(data.get("classes"))),
    )


def _decision(data: dict[str, Any], classes: list[Any] | None) -> dict[str, Any]:
    """The decision threshold `evaluate --save` recorded: a threshold in (0, 1) on the
    probability of one of a binary classifier's two classes."""
    record = _mapping(data, "decision")
    if not record:
        return record
    threshold = record.get("threshold")
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool):
        raise _Invalid(f"field 'decision': 'threshold' must be a number, not {_kind(threshold)}")
    if not 0 < threshold < 1:
        raise _Invalid(f"field 'decision': 'threshold' must be between 0 and 1, not {threshold!r}")
    positive = record.get("positive_class")
    if (
        not classes
        or len(classes) != 2
        or not any(type(label) is type(positive) and label == positive for label in classes)
    ):
        raise _Invalid("field 'decision': 'positive_class' must be one of the model's two classes")
    return record


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "null"


def _text(data: dict[str, Any], field: str, *, required: bool = False) -> Any:
    if field not in data and required:
        raise _Invalid(f"field '{field}' is missing")
    value = data.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise _Invalid(f"field '{field}' must be text, not {_kind(value)}")
    return value


def _mapping(data: dict[str, Any], field: str, *, required: bool = False) -> dict[str, Any]:
    if field not in data and required:
        raise _Invalid(f"field '{field}' is missing")
    value = data.get(field, {})
    if not isinstance(value, dict):
        raise _Invalid(f"field '{field}' must be an object, not {_kind(value)}")
    return value


def _text_mapping(data: dict[str, Any], field: str) -> dict[str, str]:
    value = _mapping(data, field)
    if not all(isinstance(item, str) for item in value.values()):
        raise _Invalid(f"field '{field}' must map names to text")
    return value


def _text_list(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _Invalid(f"field '{field}' must be a list of text, not {_kind(value)}")
    return value


def _classes(value: Any) -> list[Any] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(item, _SCALARS) and item is not None for item in value
    ):
        raise _Invalid(f"field 'classes' must be a list of labels, not {_kind(value)}")
    return value


def _format_version(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Invalid(f"field 'format_version' must be a whole number from 1, not {value!r}")
    return value


def _example(value: Any) -> list[dict[str, Any]]:
    rows = value if isinstance(value, list) else None
    if rows is None or not all(
        isinstance(row, dict) and all(isinstance(item, _SCALARS) for item in row.values())
        for row in rows
    ):
        raise _Invalid(f"field 'example' must be a list of rows of values, not {_kind(value)}")
    return rows


def _signature(data: dict[str, Any]) -> Signature:
    inputs = data.get("inputs")
    if not isinstance(inputs, list):
        raise _Invalid(f"field 'signature.inputs' must be a list, not {_kind(inputs)}")
    columns = []
    for position, spec in enumerate(inputs, start=1):
        where = f"signature input {position}"
        if not isinstance(spec, dict):
            raise _Invalid(f"{where} must be an object, not {_kind(spec)}")
        name = spec.get("name")
        if not isinstance(name, str):
            raise _Invalid(f"{where}: field 'name' must be text, not {_kind(name)}")
        kind = spec.get("type", "any")
        if kind not in COLUMN_TYPES:
            raise _Invalid(f"{where}: field 'type' must be one of {', '.join(COLUMN_TYPES)}")
        required = spec.get("required", True)
        if not isinstance(required, bool):
            raise _Invalid(f"{where}: field 'required' must be true or false")
        pinned = spec.get("numpy_dtype")
        if pinned is not None and pinned not in PINNED_DTYPES:
            pinned_types = ", ".join(PINNED_DTYPES)
            raise _Invalid(f"{where}: field 'numpy_dtype' must be one of {pinned_types}")
        columns.append(Column(name, kind, required=required, numpy_dtype=pinned))
    passthrough = _text_list(data.get("passthrough", []), "signature.passthrough")
    positional = data.get("positional", False)
    if not isinstance(positional, bool):
        raise _Invalid("field 'signature.positional' must be true or false")
    return Signature(tuple(columns), tuple(passthrough), positional)


def _metrics(metrics: dict[str, Any], task: str) -> dict[str, Any]:
    """Metrics as `info` shows them: the figures it reads must be numbers where it reads them."""
    if not metrics:
        return metrics
    try:
        _count(metrics["rows"])
        if task != "classification":
            for name in ("mae", "rmse", "r2"):
                _number(metrics[name])
            return metrics
        _number(metrics["accuracy"])
        for scores in [metrics["macro"], *_values(metrics["per_class"])]:
            for name in ("precision", "recall", "f1"):
                _number(scores[name])
        for scores in _values(metrics["per_class"]):
            _count(scores["support"])
        confusion = metrics["confusion_matrix"]
        labels, matrix = confusion["labels"], confusion["matrix"]
        if not isinstance(labels, list) or not isinstance(matrix, list):
            raise TypeError
        if len(labels) != len(matrix) or not all(isinstance(row, list) for row in matrix):
            raise TypeError
        for row in matrix:
            for value in row:
                _count(value)
    except (KeyError, TypeError):
        raise _Invalid(
            "field 'metrics' is not what train writes (rows, and accuracy, per_class, macro "
            "and confusion_matrix for a classifier; mae, rmse and r2 for a regressor)"
        ) from None
    return metrics


def _values(value: Any) -> list[Any]:
    if not isinstance(value, dict):
        raise TypeError
    return list(value.values())


def _number(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError


def _count(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError
