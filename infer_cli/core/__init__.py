"""The model core: a model loaded from any source (our directory, a bare file, an MLflow
model), its card and signature, validation and prediction. Returns data, never prints."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import lazy_surface

if TYPE_CHECKING:
    from .card import Inspection, ModelCard
    from .decision_store import decision_card, save_decision
    from .metrics import classification_metrics, regression_metrics
    from .model import Model, Predictions
    from .model_uri import RegistryFacts, is_model_uri, is_registry_uri, lookup_model_uri
    from .serialization import UntrustedTypes
    from .signature import Column, Signature
    from .store import (
        MODEL_FILES,
        check_loadable,
        check_model_destination,
        inspect_model,
        load_model,
        model_reference,
        resolve_model_path,
        resolve_trust_types,
        save_model,
    )
    from .threshold import Decision, decision_record

__all__ = [
    "MODEL_FILES",
    "Column",
    "Decision",
    "Inspection",
    "Model",
    "ModelCard",
    "Predictions",
    "RegistryFacts",
    "Signature",
    "UntrustedTypes",
    "check_loadable",
    "check_model_destination",
    "classification_metrics",
    "decision_card",
    "decision_record",
    "inspect_model",
    "is_model_uri",
    "is_registry_uri",
    "load_model",
    "lookup_model_uri",
    "model_reference",
    "regression_metrics",
    "resolve_model_path",
    "resolve_trust_types",
    "save_decision",
    "save_model",
]
# Where each name of the surface lives.
_SURFACE = {
    "Model": "model",
    "Predictions": "model",
    "ModelCard": "card",
    "Inspection": "card",
    "Signature": "signature",
    "Column": "signature",
    "load_model": "store",
    "save_model": "store",
    "save_decision": "decision_store",
    "decision_card": "decision_store",
    "Decision": "threshold",
    "decision_record": "threshold",
    "inspect_model": "store",
    "check_loadable": "store",
    "check_model_destination": "store",
    "resolve_model_path": "store",
    "model_reference": "store",
    "resolve_trust_types": "store",
    "MODEL_FILES": "store",
    "is_model_uri": "model_uri",
    "is_registry_uri": "model_uri",
    "lookup_model_uri": "model_uri",
    "RegistryFacts": "model_uri",
    "UntrustedTypes": "serialization",
    "classification_metrics": "metrics",
    "regression_metrics": "metrics",
}
__getattr__ = lazy_surface(__name__, _SURFACE)
