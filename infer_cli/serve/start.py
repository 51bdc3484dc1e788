"""`infer-cli serve` from its options to its summary, importing nothing heavy before the
socket is bound: the model core (pandas, scikit-learn) loads inside the quick start."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.quick_start import quick_start
from ..errors import UsageError
from .options import ServeOptions

if TYPE_CHECKING:
    from .process import ModelSource, ServeSummary

# One-row predictions gain nothing from BLAS threads, and workers share the cores.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""What `-m NAME=PATH` may name a model: it goes in a URL path and a metric's label as is."""


def run_server(
    models: Sequence[str],
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
    """Serve `models` (each `PATH` or `NAME=PATH`, the first the default; none: the default
    model) until stopped; `announce(model, config, seconds, loaded)` runs once ready."""
    for variable in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(variable, "1")
    named = [split_model_option(given) for given in models] or [(None, None)]
    with quick_start() as loaded:
        from ..core.store import resolve_trust_types
        from .process import ServeConfig, serve

        sources = [_source(name, reference) for name, reference in named]
        default = sources[0]
        config = ServeConfig(
            default.path, host, port, workers, reload, options,
            trust_types=resolve_trust_types(trust_types),
            model_uri=default.uri, tracking_uri=tracking_uri,
            reload_interval=reload_interval, model_name=default.name,
            more_models=tuple(sources[1:]),
        )  # fmt: skip

        def ready(*announced: Any) -> None:
            loaded()
            announce(*announced)

        return serve(config, ready)


def split_model_option(given: str) -> tuple[str | None, str | None]:
    """`-m NAME=PATH` as (NAME, PATH), `-m PATH` as (None, PATH): what comes before an `=`
    names the model only if it is a name (a path or URI holds `/` or `:` before any `=`)."""
    name, equals, reference = given.partition("=")
    if not equals or not MODEL_NAME.fullmatch(name):
        if equals and name and "/" not in name and ":" not in name:
            raise UsageError(
                f"-m {given}: '{name}' cannot name a model (letters, digits, '.', '_' and '-', "
                "starting with a letter or digit)"
            )
        return None, given
    if not reference:
        raise UsageError(f"-m {given}: no model after '{name}='")
    return name, reference


def _source(name: str | None, given: str | None) -> ModelSource:
    from ..core.model_uri import is_registry_uri
    from ..core.store import model_reference, resolve_model_path
    from .process import ModelSource

    reference = model_reference(given)
    if is_registry_uri(reference):
        return ModelSource(Path(reference), reference, name)
    return ModelSource(resolve_model_path(reference), None, name)
