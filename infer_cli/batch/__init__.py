"""A file streamed through the model: `predict` on one process or a Dask cluster, and
`evaluate` on a labelled file."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import lazy_surface

if TYPE_CHECKING:
    from .dask_engine import DaskScoring, find_partitions, require_dask
    from .evaluation import Evaluation, evaluate, evaluate_file, read_labelled
    from .log_evaluation import LogQuestion, check_log_options, evaluate_log
    from .profiling import ProfileWritten, write_training_profile
    from .run import PredictRun, predict_figures, run_predict
    from .scoring import BatchScoring, ScoringOptions, ScoringReport

__all__ = [
    "BatchScoring",
    "DaskScoring",
    "Evaluation",
    "LogQuestion",
    "PredictRun",
    "ProfileWritten",
    "ScoringOptions",
    "ScoringReport",
    "check_log_options",
    "evaluate",
    "evaluate_file",
    "evaluate_log",
    "find_partitions",
    "predict_figures",
    "read_labelled",
    "require_dask",
    "run_predict",
    "write_training_profile",
]
# Where each name of the surface lives.
_SURFACE = {
    "BatchScoring": "scoring",
    "ScoringOptions": "scoring",
    "ScoringReport": "scoring",
    "DaskScoring": "dask_engine",
    "require_dask": "dask_engine",
    "find_partitions": "dask_engine",
    "Evaluation": "evaluation",
    "evaluate": "evaluation",
    "evaluate_file": "evaluation",
    "read_labelled": "evaluation",
    "LogQuestion": "log_evaluation",
    "check_log_options": "log_evaluation",
    "evaluate_log": "log_evaluation",
    "PredictRun": "run",
    "run_predict": "run",
    "predict_figures": "run",
    "ProfileWritten": "profiling",
    "write_training_profile": "profiling",
}
__getattr__ = lazy_surface(__name__, _SURFACE)
