"""`infer-cli serve` from its options to its summary, importing nothing heavy before the
socket is bound: the model core (pandas, scikit-learn) loads inside the quick start."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.quick_start import quick_start
from .options import ServeOptions

if TYPE_CHECKING:
    from .process import ServeSummary

# One-row predictions gain nothing from BLAS threads, and workers share the cores.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def run_server(
    model: str | None,
    *,
    host: str,
    port: int,
    workers: int,
    reload: bool,
    options: ServeOptions,
    trust_types: list[str] | None,
    tracking_uri: str | None = None,
    reload_interval: float | None = None,
    announce: Callable[..., None],
) -> ServeSummary:
    """Serve until stopped; `announce(model, config, seconds)` runs once the server is ready."""
    for variable in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(variable, "1")
    with quick_start() as loaded:
        from ..core.model_uri import is_registry_uri
        from ..core.store import model_reference, resolve_model_path, resolve_trust_types
        from .process import ServeConfig, serve

        reference = model_reference(model)
        registered = is_registry_uri(reference)
        config = ServeConfig(
            Path(reference) if registered else resolve_model_path(reference),
            host, port, workers, reload, options,
            trust_types=resolve_trust_types(trust_types),
            model_uri=reference if registered else None,
            tracking_uri=tracking_uri, reload_interval=reload_interval,
        )  # fmt: skip

        def ready(*announced: Any) -> None:
            loaded()
            announce(*announced)

        return serve(config, ready)
