"""Sample rows to check the fast route on, made from the model itself: its card's examples,
the categories, vocabulary and statistics its fitted steps hold, unseen categories, missing
values, empty text and numbers in category columns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .signature import Signature

_SAMPLE_ROWS = 12


def sample_payloads(
    estimator: Any, signature: Signature, examples: Sequence[Mapping[str, Any]] = ()
) -> list[dict[str, list[Any]]]:
    """Rows to check a route on, as request columns: every row together, the same rows with
    no missing value (one gap fails a whole call for an estimator that takes none), the first
    row alone, and every row again with numbers in the category columns."""
    hints = _hints(estimator)
    candidates = {
        column.name: _candidates(column.dtype, column.name, hints, examples)
        for column in signature.inputs
    }
    rows = min(max(len(values) for values in candidates.values()), _SAMPLE_ROWS)
    together = {
        name: [values[row % len(values)] for row in range(rows)]
        for name, values in candidates.items()
    }
    complete = {
        name: [next(v for v in values if v is not None) if value is None else value
               for value in together[name]]
        for name, values in candidates.items()
    }  # fmt: skip
    first = {name: values[:1] for name, values in complete.items()}
    numbers = {
        column.name: [
            (3, 2.5, None)[row % 3] if column.dtype in ("string", "any") and row % 2 else value
            for row, value in enumerate(together[column.name])
        ]
        for column in signature.inputs
    }
    return [together, complete, first, numbers]


def _candidates(
    dtype: str, name: str, hints: Mapping[str, list[Any]], examples: Sequence[Mapping[str, Any]]
) -> list[Any]:
    seen = [example[name] for example in examples if name in example]
    if dtype == "float":
        return [*seen, *hints.get(name, []), 1.5, None, 0.0, -2.25, 1e6]
    if dtype == "integer":
        return [*seen, 3, None, 0, 1, -2, 1000]
    if dtype == "boolean":
        return [*seen, True, False, None]
    if dtype == "text":
        return [*seen, *hints.get(name, []), "", None, "qwzx unseen words here"]
    if dtype == "string":
        return [*seen, *hints.get(name, []), "never seen in training", None]
    return [*seen, *hints.get(name, [1.5, 0.0]), None]


def _hints(estimator: Any) -> dict[str, list[Any]]:
    """Values worth trying per column, from the fitted steps that read it: categories, words
    of the vocabulary, the statistics an imputer fills in."""
    from sklearn.compose import ColumnTransformer

    steps = flatten(estimator) if hasattr(estimator, "steps") else []
    if not steps or not isinstance(steps[0], ColumnTransformer):
        return {}
    hints: dict[str, list[Any]] = {}
    for _, transformer, selected in steps[0].transformers_:
        if isinstance(transformer, str):
            continue
        for part in flatten(transformer):
            if isinstance(selected, str) and hasattr(part, "vocabulary_"):
                words = sorted(part.vocabulary_, key=part.vocabulary_.get)[:6]
                hints[selected] = [" ".join(words), words[0] if words else "a"]
            elif isinstance(selected, list) and all(isinstance(c, str) for c in selected):
                if hasattr(part, "categories_"):
                    for name, values in zip(selected, part.categories_, strict=False):
                        listed = values.tolist()
                        hints.setdefault(name, listed[:5] + listed[-1:])
                elif hasattr(part, "statistics_"):
                    for name, value in zip(selected, part.statistics_.tolist(), strict=False):
                        hints.setdefault(name, [value])
    return hints


def flatten(estimator: Any) -> list[Any]:
    """A Pipeline's steps, nested Pipelines opened, 'passthrough' steps left out."""
    if not hasattr(estimator, "steps"):
        return [estimator]
    from sklearn.pipeline import Pipeline

    if not isinstance(estimator, Pipeline):
        return [estimator]
    steps: list[Any] = []
    for _, step in estimator.steps:
        if step is None or (isinstance(step, str) and step == "passthrough"):
            continue
        steps.extend(flatten(step))
    return steps
