"""`GET /metrics`: what the server counted and what it serves, as Prometheus text."""

from __future__ import annotations

from .drift import DriftMonitors
from .served import ServedModels
from .stats import ServeStats


def prometheus(stats: ServeStats, models: ServedModels, drifts: DriftMonitors) -> str:
    """The counts, the models served and each model's drift window."""
    default = next(iter(models.values()), None)
    text = stats.prometheus(
        default.card.sha256 if default else "",
        str(default.path) if default else "",
        bool(models),
        registry=default.card.source.get("registry") if default else None,
    )
    for name, served in list(models.items()):
        text += drifts.of(name).prometheus(served, name)
    return text
