"""The model core's fast route: validated columns, as numpy arrays, fed to the fitted steps.

A one-row DataFrame and scikit-learn's per-call checks of it in every ColumnTransformer
branch cost milliseconds, while imputing, encoding, scaling and a dot product for one row
cost microseconds. `Route.of` takes a fitted estimator apart (a Pipeline, its leading
ColumnTransformer and the branches' own Pipelines, the steps after it, the final estimator)
into `kernels` steps that take arrays; `Route.check` runs it beside the usual route on sample
rows made from the model itself (its card's examples, its categories and vocabulary, unseen
categories, missing values, empty text, a number in a category column) and a model takes
the route only if every label, probability and value is the same, bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .coded import ROWS_PER_DISTINCT, Coded, code_objects, distinct_rows
from .kernels import Declined, Final, Step, final_of, step_of
from .route_samples import flatten, sample_payloads

if TYPE_CHECKING:
    import pandas as pd

    from .signature import Signature

Columns = dict[str, np.ndarray]
"""Validated rows: one 1-D array per input column, as `Signature.validate` casts it."""


class Unroutable(Exception):
    """The estimator cannot take the fast route; the message says why."""


@dataclass(frozen=True)
class Branch:
    """One ColumnTransformer branch: its input columns (a name alone: a 1-D column) and steps."""

    columns: list[str] | str
    steps: list[Step]

    def run(
        self,
        columns: Columns,
        coded: Mapping[str, Coded] | None = None,
        rows_per_distinct: int = ROWS_PER_DISTINCT,
    ) -> Any:
        if isinstance(self.columns, str):
            block: Any = columns[self.columns]
        else:
            if coded and all(step.direct for step in self.steps):
                # The direct steps give each row from that row alone: the distinct rows
                # are transformed, and each row takes its own.
                picked = [coded[name] for name in self.columns if name in coded]
                found = None
                if picked and len(picked) == len(self.columns):
                    found = distinct_rows(picked, len(picked[0].codes), rows_per_distinct)
                if found is not None:
                    distinct = self._transform(found[0])
                    if isinstance(distinct, np.ndarray):
                        return np.take(distinct, found[1], axis=0)
                    return distinct[found[1]]
            block = as_frame_matrix([columns[name] for name in self.columns])
        return self._transform(block)

    def _transform(self, block: Any) -> Any:
        for step in self.steps:
            block = step.transform(block)
        return block


class Route:
    """How validated columns reach the final estimator without pandas."""

    def __init__(
        self,
        names: list[str],
        branches: list[Branch] | None,
        sparse_output: bool,
        middle: list[Step],
        final: Final,
    ):
        self.names = names
        self.branches = branches
        self.sparse_output = sparse_output
        self.middle = middle
        self.final = final

    @classmethod
    def of(cls, estimator: Any, names: list[str]) -> Route:
        """The route for `estimator`, fitted on the columns `names` in that order."""
        import sklearn
        from sklearn.base import BaseEstimator
        from sklearn.compose import ColumnTransformer

        if not isinstance(estimator, BaseEstimator):
            raise Unroutable("not a scikit-learn estimator")
        fitted = getattr(estimator, "feature_names_in_", None)
        if fitted is None:
            raise Unroutable("not fitted on named columns")
        fitted_names = [str(name) for name in fitted]
        if sklearn.get_config().get("transform_output", "default") != "default":
            raise Unroutable("transformers set to give DataFrames")
        steps = flatten(estimator)
        if any(_gives_frames(step) for step in steps):
            raise Unroutable("a step set to give DataFrames")
        front, final = steps[:-1], steps[-1]
        branches = None
        sparse_output = False
        if front and isinstance(front[0], ColumnTransformer):
            # It picks its columns by name from whatever the frame holds (an MLflow
            # signature may list more columns than the model was fitted on).
            transformer = front.pop(0)
            sparse_output = bool(transformer.sparse_output_)
            branches = _branches(transformer, fitted_names, set(names))
        elif fitted_names != names:
            raise Unroutable("not fitted on the signature's columns, in order")
        if any(_selects_columns_by_name(step) for step in [*front, final]):
            raise Unroutable("a step after the first selects columns by name")
        middle = [step_of(step) for step in front]
        return cls(
            fitted_names if branches is None else names,
            branches,
            sparse_output,
            middle,
            final_of(final),
        )

    def features(
        self,
        columns: Columns,
        coded: Mapping[str, Coded] | None = None,
        rows_per_distinct: int = ROWS_PER_DISTINCT,
    ) -> Any:
        """What the final estimator takes, as the usual route's steps would give it. `coded`:
        some of the columns as codes into their distinct values (the same rows)."""
        if self.branches is None:
            features: Any = as_frame_matrix([columns[name] for name in self.names])
        else:
            blocks = [branch.run(columns, coded, rows_per_distinct) for branch in self.branches]
            features = _stack(blocks, self.sparse_output, len(next(iter(columns.values()))))
        for step in self.middle:
            features = step.transform(features)
        return features

    def predict(
        self,
        columns: Columns,
        proba: bool,
        coded: Mapping[str, Coded] | None = None,
        rows_per_distinct: int = ROWS_PER_DISTINCT,
    ) -> tuple[Any, Any]:
        """Labels or values, and probabilities if asked; Declined for rows to score the usual
        way (an infinite number: scikit-learn refuses it where the route would not look)."""
        for values in columns.values():
            if values.dtype.kind == "f" and np.isinf(values).any():
                raise Declined("an infinite number")
        features = self.features(columns, coded, rows_per_distinct)
        return self.final.predict(features, proba)

    def describe(self) -> str:
        """Which steps are called directly and which through scikit-learn, for `info`."""
        steps = [step for branch in self.branches or [] for step in branch.steps]
        steps += self.middle
        direct = sorted({step.name for step in steps if step.direct})
        called = sorted({step.name for step in steps if not step.direct})
        parts = []
        if direct:
            parts.append(f"direct: {', '.join(direct)}")
        if called:
            parts.append(f"checked call: {', '.join(called)}")
        final = "direct" if self.final.direct else "checked call"
        parts.append(f"{self.final.name}: {final}")
        return "arrays (" + "; ".join(parts) + ")"

    def check(
        self,
        estimator: Any,
        signature: Signature,
        proba: bool,
        examples: Sequence[Mapping[str, Any]] = (),
    ) -> str | None:
        """Run the route beside the usual route on sample rows; the first difference, or None.

        The usual route is the estimator on the DataFrame `Signature.validate` makes of the
        rows; the route takes the arrays `Signature.arrays` makes of them where it can, else
        the validated frame's columns, as `Model` does.
        """
        from threadpoolctl import threadpool_limits

        # A few sample rows: a pool of threads costs more than they do (a row's answer does
        # not depend on how many threads share the rows).
        with threadpool_limits(1):
            return self._check(estimator, signature, proba, examples)

    def _check(
        self,
        estimator: Any,
        signature: Signature,
        proba: bool,
        examples: Sequence[Mapping[str, Any]],
    ) -> str | None:
        import pandas as pd

        compared = 0
        for payload in sample_payloads(estimator, signature, examples):
            try:
                frame = signature.validate(pd.DataFrame(payload)).frame
            except Exception:
                continue  # refused before any model sees it, on either route
            try:
                usual: tuple[Any, Any] | None
                expected, usual = _usual(estimator, frame, proba)
            except Exception:
                expected, usual = None, None
            rows = len(frame)
            columns = signature.arrays(payload, rows)
            from_frame = columns_of_frame(frame, self.names)
            if columns is None:
                columns = from_frame
            elif from_frame is None or not _same_columns(columns, from_frame):
                return "the arrays of the rows differ from the validated frame's"
            if columns is None:
                return "the validated frame has columns the route cannot take as arrays"
            try:
                fast: tuple[Any, Any] | None = self.predict(columns, proba)
            except Declined:
                continue
            except Exception:
                fast = None
            if usual is None or fast is None:
                if usual is None and fast is None:
                    continue
                return "one route refused rows the other scored"
            difference = _difference(fast, usual)
            if difference:
                return difference
            compared += 1
            if expected is not None and not _same_features(self.features(columns), expected):
                return "the features given to the final estimator differ"
            difference = self._check_coded(columns, proba, usual, expected)
            if difference:
                return difference
        return None if compared else "no sample row could be scored"

    def _check_coded(
        self, columns: Columns, proba: bool, usual: tuple[Any, Any], expected: Any
    ) -> str | None:
        """The same rows with their columns of objects as codes into their distinct values
        (as a file's category columns come), every distinct row transformed once."""
        coded = {}
        for name, values in columns.items():
            if values.dtype == object and (found := code_objects(values)) is not None:
                coded[name] = found
        if not coded:
            return None
        try:
            fast = self.predict(columns, proba, coded, rows_per_distinct=1)
        except Exception:
            return "the route refused rows as codes of distinct values that it scored"
        difference = _difference(fast, usual)
        if difference:
            return f"as codes of distinct values, {difference}"
        given = self.features(columns, coded, rows_per_distinct=1)
        if expected is not None and not _same_features(given, expected):
            return "as codes of distinct values, the features given to the final estimator differ"
        return None


def columns_of_frame(frame: pd.DataFrame, names: Sequence[str]) -> Columns | None:
    """The validated frame's columns as the arrays scikit-learn would take from it: numpy
    columns as they are, pandas strings as objects with NaN; None for any other kind."""
    import pandas as pd

    columns: Columns = {}
    for name in names:
        series = frame[name]
        dtype = series.dtype
        if isinstance(dtype, np.dtype) and dtype.kind in "fiubO":
            columns[name] = series.to_numpy()
        elif isinstance(dtype, pd.StringDtype) and _is_nan(dtype.na_value):
            columns[name] = series.to_numpy(dtype=object, na_value=np.nan)
        else:
            return None
    return columns


def join_columns(parts: Sequence[Columns]) -> Columns | None:
    """The rows of several requests as one set of columns; None when a column's dtype differs
    between them (pandas would find a common type for it: left to pandas)."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    if any(part[name].dtype != first[name].dtype for part in parts for name in first):
        return None
    return {name: np.concatenate([part[name] for part in parts]) for name in first}


def _usual(estimator: Any, frame: Any, proba: bool) -> tuple[Any, tuple[Any, Any]]:
    """The features a pipeline's final step is given (None for a lone estimator), and its
    answers: `Pipeline.predict` and `predict_proba` transform the frame through the same
    steps and call the final one, so the frame is transformed once for both and for the
    features (each transform of a small frame costs milliseconds, paid at every load)."""
    features = None
    final = estimator
    if len(getattr(estimator, "steps", ())) > 1:
        features = estimator[:-1].transform(frame)
        final = estimator[-1]
    given = frame if features is None else features
    values = final.predict(given)
    return features, (values, final.predict_proba(given) if proba else None)


def _difference(fast: tuple[Any, Any], usual: tuple[Any, Any]) -> str | None:
    fast_values, usual_values = np.asarray(fast[0]), np.asarray(usual[0])
    if fast_values.dtype != usual_values.dtype or not np.array_equal(fast_values, usual_values):
        return "the predictions differ"
    if usual[1] is not None:
        if fast[1] is None or fast[1].dtype != usual[1].dtype:
            return "the probabilities differ"
        if not np.array_equal(fast[1], usual[1]):
            return "the probabilities differ in their last bits"
    return None


def _same_columns(given: Columns, expected: Columns) -> bool:
    for name, values in expected.items():
        other = given[name]
        if other.dtype != values.dtype or other.shape != values.shape:
            return False
        if values.dtype.kind == "f":
            if not np.array_equal(other, values, equal_nan=True):
                return False
        elif [_key(v) for v in other.tolist()] != [_key(v) for v in values.tolist()]:
            return False
    return True


def _key(value: Any) -> Any:
    return ("nan",) if _is_nan(value) else (type(value), value)


def _same_features(given: Any, expected: Any) -> bool:
    from scipy import sparse

    if sparse.issparse(given) or sparse.issparse(expected):
        if not (sparse.issparse(given) and sparse.issparse(expected)):
            return False
        if given.shape != expected.shape or given.dtype != expected.dtype:
            return False
        return (given != expected).nnz == 0
    given, expected = np.asarray(given), np.asarray(expected)
    if given.dtype != expected.dtype or given.shape != expected.shape:
        return False
    return bool(np.array_equal(given, expected, equal_nan=given.dtype.kind == "f"))


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value


def as_frame_matrix(columns: Sequence[np.ndarray]) -> np.ndarray:
    """Columns as one matrix laid out as scikit-learn gets a DataFrame's values: column by
    column (Fortran order). A matrix product's last bits depend on the layout, so a model
    whose first step multiplies (a Pipeline of a scaler and a linear model, no
    ColumnTransformer) gives the usual route's answers only on this layout."""
    return np.vstack(columns).T


def _stack(blocks: list[Any], sparse_output: bool, rows: int) -> Any:
    """ColumnTransformer._hstack, for arrays and SciPy matrices."""
    from scipy import sparse

    if not blocks:
        return np.zeros((rows, 0))
    if sparse_output:
        from sklearn.utils import check_array

        if len(blocks) == 1 and sparse.issparse(blocks[0]) and blocks[0].format == "csr":
            # Stacking one CSR block copies it, the same entries in the same order.
            return blocks[0]

        converted = [
            check_array(block, accept_sparse=True, ensure_all_finite=False) for block in blocks
        ]
        return sparse.hstack(converted).tocsr()
    return np.hstack([b.toarray() if sparse.issparse(b) else b for b in blocks])


def _branches(transformer: Any, fitted_names: list[str], present: set[str]) -> list[Branch]:
    from sklearn.base import BaseEstimator

    branches = []
    for _, branch, selected in transformer.transformers_:
        if isinstance(branch, str) and branch == "drop":
            continue
        columns = _selected(selected, fitted_names)
        if any(
            name not in present for name in ([columns] if isinstance(columns, str) else columns)
        ):
            raise Unroutable("a ColumnTransformer column not in the signature")
        if columns == []:
            continue  # scikit-learn skips an empty selection
        if isinstance(branch, str):
            if branch != "passthrough":
                raise Unroutable(f"a ColumnTransformer branch of {branch!r}")
            branches.append(Branch(columns, []))
            continue
        if not isinstance(branch, BaseEstimator) or _selects_columns_by_name(branch):
            raise Unroutable(f"a ColumnTransformer branch of {type(branch).__name__}")
        parts = flatten(branch)
        dense = not transformer.sparse_output_
        steps = [
            step_of(part, dense_output=dense and index == len(parts) - 1)
            for index, part in enumerate(parts)
        ]
        branches.append(Branch(columns, steps))
    return branches


def _selected(selected: Any, names: list[str]) -> list[str] | str:
    if isinstance(selected, str):
        if selected not in names:
            raise Unroutable(f"a ColumnTransformer column {selected!r} not in the signature")
        return selected
    if isinstance(selected, (int, np.integer)) and not isinstance(selected, bool):
        return names[int(selected)]
    if isinstance(selected, (list, np.ndarray)):
        listed = list(selected.tolist() if isinstance(selected, np.ndarray) else selected)
        if all(isinstance(c, str) and c in names for c in listed):
            return [str(c) for c in listed]
        if all(isinstance(c, int) and not isinstance(c, bool) for c in listed):
            return [names[c] for c in listed]
    raise Unroutable("a ColumnTransformer selects columns other than by name or position")


def _gives_frames(estimator: Any) -> bool:
    config = getattr(estimator, "_sklearn_output_config", {})
    if config.get("transform", "default") != "default":
        return True
    parts = [part for _, part, _ in getattr(estimator, "transformers_", [])]
    parts += [part for _, part in getattr(estimator, "steps", [])]
    return any(_gives_frames(part) for part in parts if not isinstance(part, str))


def _selects_columns_by_name(estimator: Any) -> bool:
    from sklearn.compose import ColumnTransformer

    if isinstance(estimator, ColumnTransformer):
        return True
    parts = [step for _, step in getattr(estimator, "steps", [])]
    parts += [part for _, part in getattr(estimator, "transformer_list", [])]
    return any(_selects_columns_by_name(part) for part in parts)
