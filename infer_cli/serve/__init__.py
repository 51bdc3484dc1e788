"""The prediction server: processes and workers, an event loop of HTTP/1.1 connections,
routes over the model core, the MLflow and Open Inference (V2) codecs, micro-batching.

`run_server` is the `serve` command, its start-up wrapped in `core.quick_start.quick_start`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import lazy_surface

if TYPE_CHECKING:
    from .options import ServeOptions
    from .process import ServeConfig, ServeSummary, serve
    from .start import run_server

__all__ = [
    "ServeConfig",
    "ServeOptions",
    "ServeSummary",
    "run_server",
    "serve",
]
# Where each name of the surface lives.
_SURFACE = {
    "ServeConfig": "process",
    "ServeSummary": "process",
    "serve": "process",
    "ServeOptions": "options",
    "run_server": "start",
}
__getattr__ = lazy_surface(__name__, _SURFACE)
