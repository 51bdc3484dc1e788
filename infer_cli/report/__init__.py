"""What people read on stderr: progress, summaries, the model card, quality and bench
reports, the server's banner, each with rich; the engines never import it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import lazy_surface

if TYPE_CHECKING:
    from .bench import render_bench
    from .card import inspection_json, render_model_card, render_train_report
    from .console import render_notices, stderr_console
    from .drift import render_drift, render_profile_written
    from .drift_html import write_drift_report
    from .evaluation import render_evaluation
    from .predict import predict_progress, render_predict_summary
    from .serve import render_banner, render_summary

__all__ = [
    "inspection_json",
    "predict_progress",
    "render_banner",
    "render_bench",
    "render_drift",
    "render_evaluation",
    "render_model_card",
    "render_notices",
    "render_predict_summary",
    "render_profile_written",
    "render_summary",
    "render_train_report",
    "stderr_console",
    "write_drift_report",
]
# Where each name of the surface lives.
_SURFACE = {
    "stderr_console": "console",
    "render_notices": "console",
    "render_train_report": "card",
    "render_model_card": "card",
    "inspection_json": "card",
    "predict_progress": "predict",
    "render_predict_summary": "predict",
    "render_evaluation": "evaluation",
    "render_bench": "bench",
    "render_banner": "serve",
    "render_summary": "serve",
    "render_drift": "drift",
    "render_profile_written": "drift",
    "write_drift_report": "drift_html",
}
__getattr__ = lazy_surface(__name__, _SURFACE)
