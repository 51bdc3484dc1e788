"""The models a server serves, by name: the default (the first), a lookup by name that a
name no model has turns into a 404 naming those served, the listing of `GET /models`, and
how each model is named and versioned in V2 paths and metadata."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import tensors
from .errors import ModelNotFound, NotReady

if TYPE_CHECKING:
    from ..core.model import Model

NAMES_IN_A_MESSAGE = 20
"""Most names an error lists: a server may serve hundreds of models."""


class ServedModels(dict[str, "Model"]):
    """The models served, by name, in the order given: the first is the default. Empty
    until they are loaded. A reload swaps a model in under its name, keeping the order."""

    def default(self) -> tuple[str, Model]:
        for name, model in self.items():
            return name, model
        raise NotReady("the model is still loading; try again shortly")

    def named(self, name: str) -> tuple[str, Model]:
        """The model served as `name`; a name no model has is a 404 listing those served."""
        model = self.get(name)
        if model is not None:
            return name, model
        if not self:
            raise NotReady("the model is still loading; try again shortly")
        raise ModelNotFound(f"no model named '{name}' (this server has {self._names()})")

    def listing(self) -> dict[str, Any]:
        """Every model, the default first: its V2 metadata, readiness and whether default."""
        if not self:
            raise NotReady("the models are still loading; try again shortly")
        return {
            "models": [
                {**model_metadata(model, name), "ready": True, "default": index == 0}
                for index, (name, model) in enumerate(list(self.items()))
            ]
        }

    def _names(self) -> str:
        names = [f"'{name}'" for name in list(self)[:NAMES_IN_A_MESSAGE]]
        more = len(self) - NAMES_IN_A_MESSAGE
        return ", ".join(names) + (f" and {more} more (GET /models lists them)" if more > 0 else "")


def model_name(model: Model) -> str:
    """The name a model is served under unless given one: its registered name (or logged
    model id) when it came from an MLflow registry, else its directory or file name."""
    registry = model.card.source.get("registry")
    if registry and (registry.get("name") or registry.get("model_id")):
        return str(registry.get("name") or registry.get("model_id"))
    return model.path.stem if model.path.is_file() else model.path.name or "model"


def model_version(model: Model) -> str:
    """Its registered version, else the start of its SHA-256."""
    registry = model.card.source.get("registry")
    if registry and registry.get("version") is not None:
        return str(registry["version"])
    return model.card.sha256[:12]


def model_metadata(model: Model, name: str | None = None) -> dict[str, Any]:
    """V2 model metadata of `model`, served as `name` (else its own): the input columns as
    tensors, and the outputs."""
    return tensors.model_metadata(
        name or model_name(model),
        model_version(model),
        [(column.name, column.dtype) for column in model.signature.inputs],
        model.card.classes if model.is_classifier else None,
        model.can_predict_proba,
    )
