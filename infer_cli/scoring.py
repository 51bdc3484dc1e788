"""Scoring tables with the model core: the input rows with the predictions beside them."""

from __future__ import annotations

import pandas as pd

from .model import Model, Predictions

PREDICTION_COLUMN = "prediction"


def score_frame(
    model: Model, frame: pd.DataFrame, *, proba: bool = False
) -> tuple[pd.DataFrame, Predictions]:
    """`frame` with a `prediction` column (and `proba_<class>` columns if asked) appended."""
    predictions = model.predict(frame, proba=proba)
    scored = frame.copy()
    scored[PREDICTION_COLUMN] = predictions.values
    if predictions.probabilities is not None:
        for index, label in enumerate(predictions.classes or []):
            scored[f"proba_{label}"] = predictions.probabilities[:, index]
    return scored, predictions
