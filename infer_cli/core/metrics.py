"""Quality metrics for predictions, computed with scikit-learn, as JSON-able dicts."""

from __future__ import annotations

from typing import Any

import numpy as np


def classification_metrics(
    y_true: Any, y_pred: Any, labels: list[Any] | None = None
) -> dict[str, Any]:
    """Accuracy, per-class and macro precision/recall/F1, and the confusion matrix."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        precision_recall_fscore_support,
    )

    if labels is None:
        labels = sorted(set(np.asarray(y_true).tolist()) | set(np.asarray(y_pred).tolist()))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    macro = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average="macro", zero_division=0
    )
    per_class = {
        str(label): {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro": {"precision": float(macro[0]), "recall": float(macro[1]), "f1": float(macro[2])},
        "per_class": per_class,
        "confusion_matrix": {"labels": [_plain(x) for x in labels], "matrix": matrix.tolist()},
        "rows": len(y_true),
    }


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, Any]:
    """Mean absolute error, root mean squared error and R²."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return {
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "rmse": float(np.sqrt(mean_squared_error(y_true, y_pred))),
        "r2": float(r2_score(y_true, y_pred)),
        "rows": len(y_true),
    }


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
