"""What a model's card records, read from `model.json`, an `MLmodel` file or the estimator
itself, and what `info` shows of a model found on disk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ModelError
from .signature import Column, Signature

if TYPE_CHECKING:
    from .serialization import TrustReview

CARD_FILE = "model.json"
EXAMPLE_ROWS = 3
MODEL_FILE = "model.joblib"
# Format 2 may hold model.skops. A joblib model is still written as format 1, which
# infer-cli versions from before skops read as they always did.
FORMAT_VERSION = 2


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
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        return cls(
            task=str(data["task"]),
            target=data.get("target"),
            classes=data.get("classes"),
            signature=Signature.from_dict(data["signature"]),
            metrics=data.get("metrics", {}),
            versions=data.get("versions", {}),
            training=data.get("training", {}),
            example=list(data.get("example", [])),
            sha256=str(data.get("sha256", "")),
            created=str(data.get("created", "")),
            format_version=int(data.get("format_version", FORMAT_VERSION)),
            serialization=str(data.get("serialization", "joblib")),
            model_file=str(data.get("model_file", MODEL_FILE)),
            trusted_types=[str(name) for name in data.get("trusted_types", [])],
            source=dict(data.get("source", {})),
            profile=data.get("profile"),
        )


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


def parse_card(card_bytes: bytes, location: Path) -> ModelCard:
    """The card of the model directory `location`, or a ModelError naming the file."""
    try:
        return ModelCard.from_dict(json.loads(card_bytes))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(f"{location / CARD_FILE}: not a valid model card ({exc})") from exc


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
