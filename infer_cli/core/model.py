"""The model core: a loaded model and its card, validating input and predicting. Every
command goes through it; nothing else in the package validates input. Saving and loading
model directories is `store`'s; what a model's card records is `card`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, ModelError, UsageError, first_line
from .array_route import Columns, Route, Unroutable, columns_of_frame, join_columns
from .card import ModelCard
from .coded import Coded
from .signature import Signature
from .threshold import Decision, resolve_decision


@dataclass(frozen=True)
class Predictions:
    """Predicted labels or values, class probabilities when asked, and notices for the user."""

    values: np.ndarray
    probabilities: np.ndarray | None = None
    classes: list[Any] | None = None
    notices: list[str] = field(default_factory=list)
    own_values: np.ndarray | None = None
    """The estimator's own labels, where a decision threshold gave `values` others."""

    @property
    def model_values(self) -> np.ndarray:
        """The estimator's own labels: what its training profile recorded, for drift."""
        return self.values if self.own_values is None else self.own_values


@dataclass
class Model:
    """A loaded, verified model and its card."""

    estimator: Any
    card: ModelCard
    path: Path
    notices: list[str] = field(default_factory=list)
    route: Route | None = field(default=None, init=False, repr=False, compare=False)
    """The fast route, when it gave the usual route's answers on sample rows at load."""
    route_note: str = field(default="", init=False, compare=False)
    """Which route the model takes, and why, for `info`."""

    def __post_init__(self) -> None:
        self.route, self.route_note = self._plan_route()

    @property
    def signature(self) -> Signature:
        return self.card.signature

    @property
    def is_classifier(self) -> bool:
        return self.card.task == "classification"

    @cached_property
    def can_predict_proba(self) -> bool:
        # Asked for every request; scikit-learn's `available_if` makes the question cost
        # microseconds, and a loaded model's estimator does not change.
        return self.is_classifier and hasattr(self.estimator, "predict_proba")

    def decision(
        self, threshold: Any = None, positive_class: Any = None, **how: Any
    ) -> Decision | None:
        """The decision threshold in force: `threshold` if given, else the one saved in the
        card, else None (the estimator's own labels). See `threshold.resolve_decision`."""
        return resolve_decision(self.card, self.can_predict_proba, threshold, positive_class, **how)

    def predict(
        self,
        frame: pd.DataFrame,
        *,
        proba: bool = False,
        first_row: int = 0,
        decision: Decision | None = None,
    ) -> Predictions:
        """Validate `frame` against the signature and predict, with probabilities if asked,
        labelling rows by `decision` if given."""
        if decision is not None:
            predictions = self.predict(frame, proba=True, first_row=first_row)
            assert predictions.probabilities is not None
            return Predictions(
                decision.labels(predictions.probabilities),
                predictions.probabilities if proba else None,
                predictions.classes,
                predictions.notices,
                predictions.values,
            )
        if proba and not self.can_predict_proba:
            raise UsageError(f"the model at {self.path} does not give class probabilities")
        validated = self.signature.validate(frame, first_row=first_row)
        features: Any = validated.frame
        if len(features) == 0:
            width = len(self.card.classes or []) if proba else 0
            return Predictions(
                values=np.array([], dtype=object),
                probabilities=np.empty((0, width)) if proba else None,
                classes=self.card.classes,
                notices=validated.notices,
            )
        if self.signature.positional:
            features = features.to_numpy()
        values, probabilities = self._estimate(features, proba)
        return Predictions(
            values=np.asarray(values),
            probabilities=probabilities,
            classes=self.card.classes,
            notices=validated.notices,
        )

    def predict_arrays(
        self,
        columns: Columns,
        rows: int,
        *,
        proba: bool = False,
        decision: Decision | None = None,
        coded: Mapping[str, Coded] | None = None,
    ) -> Predictions | None:
        """What `predict` gives for the DataFrame of `columns` (rows read from a file: see
        `Signature.cast_arrays`), without making that DataFrame where the casting needs none;
        None otherwise (a value to refuse among them, or no rows): then `predict` the frame.
        `coded`: columns of objects also given as codes into their distinct values."""
        cast_coded = dict(coded) if coded else None
        cast = self.signature.cast_arrays(columns, rows, cast_coded) if rows else None
        if cast is None:
            return None
        # A decision threshold labels rows by their probabilities.
        wanted = proba or decision is not None
        if wanted and not self.can_predict_proba:
            raise UsageError(f"the model at {self.path} does not give class probabilities")
        values, probabilities = self._estimate(cast, wanted, cast_coded)
        if decision is None:
            return Predictions(np.asarray(values), probabilities, self.card.classes)
        return Predictions(
            decision.labels(probabilities),
            probabilities if proba else None,
            self.card.classes,
            own_values=np.asarray(values),
        )

    def prepare(
        self, columns: dict[str, list[Any]] | None = None, frame: pd.DataFrame | None = None
    ) -> Prepared:
        """Validate one request's rows, given as named columns or as a frame, for `predict_many`.

        Columns of plain values skip pandas: each becomes the array `validate` would give.
        """
        if columns is not None:
            rows = len(next(iter(columns.values()), []))
            arrays = self.signature.arrays(columns, rows)
            if arrays is not None:
                return Prepared(arrays, rows)
            frame = pd.DataFrame(columns)
        assert frame is not None
        validated = self.signature.validate(frame)
        features: Any = validated.frame
        if self.signature.positional:
            features = features.to_numpy()
        return Prepared(features, len(features), validated.notices)

    def prepare_together(
        self, requests: Sequence[Mapping[str, list[Any]]]
    ) -> list[Prepared] | None:
        """Several requests' rows, each given as named columns of plain values, made into
        arrays in one pass per column: what `prepare` gives each of them. A typed column is
        cast value by value; an untyped one as its kinds of value (numbers, strings, gaps)
        say, so there every request must hold the same kinds. None when they do not, or a
        request needs pandas: then each is prepared alone."""
        if len(requests) < 2 or self.signature.positional:
            return None
        counts = [len(next(iter(request.values()), [])) for request in requests]
        merged: dict[str, list[Any]] = {}
        for column in self.signature.inputs:
            parts = [request.get(column.name) for request in requests]
            kinds = None
            for part, rows in zip(parts, counts, strict=True):
                if part is None or len(part) != rows:
                    return None
                if column.dtype != "any":
                    continue
                if kinds is None:
                    kinds = set(map(type, part))
                elif set(map(type, part)) != kinds:
                    return None
            merged[column.name] = [value for part in parts if part for value in part]
        arrays = self.signature.arrays(merged, sum(counts))
        if arrays is None:
            return None
        whole = Prepared(arrays, sum(counts))
        prepared, start = [], 0
        for rows in counts:
            rows_arrays = {name: array[start : start + rows] for name, array in arrays.items()}
            prepared.append(Prepared(rows_arrays, rows, whole=whole, start=start))
            start += rows
        return prepared

    def predict_many(self, prepared: list[Prepared], *, proba: bool = False) -> Predictions:
        """Predict the rows of several prepared requests in one call to the estimator."""
        if proba and not self.can_predict_proba:
            raise UsageError(f"the model at {self.path} does not give class probabilities")
        parts = [part.features for part in rejoined(prepared) if part.rows]
        if not parts:
            width = len(self.card.classes or []) if proba else 0
            return Predictions(np.array([], dtype=object), np.empty((0, width)) if proba else None)
        features: Any = None
        if all(isinstance(part, dict) for part in parts):
            features = join_columns(parts)
        elif all(isinstance(part, np.ndarray) for part in parts):
            features = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if features is None:
            frames = [self._as_frame(part) for part in parts]
            features = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        values, probabilities = self._estimate(features, proba)
        return Predictions(np.asarray(values), probabilities, self.card.classes)

    def _as_frame(self, features: Any) -> Any:
        if isinstance(features, dict):
            return pd.DataFrame(features)
        if isinstance(features, pd.DataFrame) or self.signature.positional:
            return features
        return pd.DataFrame(features, columns=self.signature.names)

    def _estimate(
        self, features: Any, proba: bool, coded: Mapping[str, Coded] | None = None
    ) -> tuple[Any, Any]:
        """The estimator's predictions (and probabilities) for validated features: columns of
        arrays (some also as `coded`) or a validated frame, taken by the fast route when the
        model has one and the rows are for it, else by the estimator on a DataFrame."""
        route = self.route
        columns: Columns | None = None
        if route is not None and isinstance(features, dict):
            columns = features
        elif route is not None and isinstance(features, pd.DataFrame):
            columns = columns_of_frame(features, self.signature.names)
        if route is not None and columns is not None:
            try:
                return route.predict(columns, proba, coded if columns is features else None)
            except Exception:
                pass  # Declined, or a refusal: the usual route gives its answer or its error
        return self._estimate_frame(self._as_frame(features), proba)

    def _estimate_frame(self, features: Any, proba: bool) -> tuple[Any, Any]:
        try:
            values = self.estimator.predict(features)
            probabilities = self.estimator.predict_proba(features) if proba else None
        except (ValueError, TypeError) as exc:
            raise DataError(f"the model cannot score this input: {first_line(exc)}") from exc
        except Exception as exc:
            raise ModelError(f"the model failed while predicting: {first_line(exc)}") from exc
        return values, probabilities

    def _plan_route(self) -> tuple[Route | None, str]:
        if self.signature.positional:
            return None, "usual (a model fitted on unnamed columns takes them as given)"
        try:
            route = Route.of(self.estimator, self.signature.names)
            difference = route.check(
                self.estimator, self.signature, self.can_predict_proba, self.card.example
            )
        except Unroutable as reason:
            return None, f"usual (DataFrame: {reason})"
        except Exception as exc:
            return None, f"usual (DataFrame: the fast route failed: {first_line(exc)})"
        if difference:
            return None, f"usual (DataFrame: on sample rows {difference})"
        return route, route.describe()


@dataclass(frozen=True)
class Prepared:
    """One request's validated rows: one array per column, a validated frame, or (a model
    fitted on unnamed columns) a matrix."""

    features: Any
    rows: int
    notices: list[str] = field(default_factory=list)
    whole: Prepared | None = None
    """Requests prepared together are slices of one: the rows they were cut from."""
    start: int = 0
    """Where in `whole` these rows begin."""


def rejoined(prepared: list[Prepared]) -> list[Prepared]:
    """`prepared`, or the one it was cut from when it is all of its slices in order: the
    rows of requests prepared together need not be concatenated again."""
    whole = prepared[0].whole if prepared else None
    if whole is None:
        return prepared
    start = 0
    for part in prepared:
        if part.whole is not whole or part.start != start:
            return prepared
        start += part.rows
    return [whole] if start == whole.rows else prepared
