"""The model core's fast lane: a float matrix in signature order scored without pandas.

pandas and scikit-learn's per-call checks of a DataFrame cost 1 to 4 ms, far more than
scoring one row does; `Model` uses a route only after it agreed with the frame route once.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np


class ArrayRoute:
    """How a float matrix in signature order reaches the estimator without pandas.

    Possible when the estimator was fitted on exactly the signature's columns, in order,
    and either no step selects columns by name, or only a leading ColumnTransformer does,
    with column lists and dense output: its fitted transformers are then given their
    columns of the matrix directly.
    """

    def __init__(self, final: Any, columns: list[tuple[Any, list[int]]] | None, middle: list[Any]):
        self.final = final
        self.columns = columns
        self.middle = middle
        self.verified = False

    @classmethod
    def of(cls, estimator: Any, names: list[str]) -> ArrayRoute | None:
        fitted = getattr(estimator, "feature_names_in_", None)
        if fitted is None or [str(name) for name in fitted] != names:
            return None
        if not _selects_columns_by_name(estimator):
            return cls(estimator, None, [])
        from sklearn.compose import ColumnTransformer

        steps = [step for _, step in getattr(estimator, "steps", [])]
        first, middle = (steps[0], steps[1:-1]) if len(steps) > 1 else (None, [])
        if not isinstance(first, ColumnTransformer) or first.sparse_output_:
            return None
        if any(_selects_columns_by_name(step) for step in middle):
            return None
        position = {name: index for index, name in enumerate(names)}
        columns = []
        for _, transformer, selected in first.transformers_:
            if isinstance(transformer, str) and transformer == "drop":
                continue
            if not isinstance(selected, list) or not all(
                isinstance(c, int) or c in position for c in selected
            ):
                return None
            indexes = [c if isinstance(c, int) else position[c] for c in selected]
            if indexes:
                columns.append((None if transformer == "passthrough" else transformer, indexes))
        return cls(steps[-1], columns, [step for step in middle if step != "passthrough"])

    def predict(self, matrix: np.ndarray, proba: bool) -> tuple[Any, Any]:
        import sklearn

        # The values are known finite, and the estimator was fitted on these very columns
        # (under their names, hence the warning silenced).
        with (
            sklearn.config_context(assume_finite=True, skip_parameter_validation=True),
            warnings.catch_warnings(),
        ):
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            features: Any = matrix
            if self.columns is not None:
                blocks = [
                    matrix[:, indexes] if step is None else step.transform(matrix[:, indexes])
                    for step, indexes in self.columns
                ]
                if not all(isinstance(block, np.ndarray) for block in blocks):
                    raise TypeError("a transformer gave a sparse block")
                features = np.hstack(blocks)
                for step in self.middle:
                    features = step.transform(features)
            values = self.final.predict(features)
            probabilities = self.final.predict_proba(features) if proba else None
        return values, probabilities


def routes_agree(fast: tuple[Any, Any], usual: tuple[Any, Any]) -> bool:
    if not np.array_equal(np.asarray(fast[0]), np.asarray(usual[0])):
        return False
    return usual[1] is None or bool(np.allclose(fast[1], usual[1], rtol=1e-9, atol=1e-12))


def _selects_columns_by_name(estimator: Any) -> bool:
    from sklearn.compose import ColumnTransformer

    if isinstance(estimator, ColumnTransformer):
        return True
    parts = [step for _, step in getattr(estimator, "steps", [])]
    parts += [part for _, part in getattr(estimator, "transformer_list", [])]
    return any(_selects_columns_by_name(part) for part in parts)
