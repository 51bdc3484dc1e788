"""Fitted scikit-learn steps called on plain arrays, without their per-call checks.

Each fitted transformer or final estimator the fast route meets becomes a `Step` or a
`Final`. The common ones (SimpleImputer, StandardScaler, OneHotEncoder, TfidfVectorizer;
linear models, forests, histogram gradient boosting) are *direct*: the same numpy operations,
in the same order, as scikit-learn's own `transform`/`predict` after its input checks, so the
results are the same bits; a direct step handed an input it was not written for (another
dtype, a sparse matrix, an unknown category it should refuse, a number where text belongs)
hands it to scikit-learn itself. Every other fitted step is called through its own method on
the array, with parameter validation skipped and its input checks kept. `array_route.Route`
checks each model's steps against the usual route when the model is loaded, and a model whose
steps disagree does not take them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Transform = Callable[[Any], Any]


class Declined(Exception):
    """This input is not for the fast route (a value the usual route refuses or treats apart);
    the caller scores it the usual way, so that its answer or its error is the usual one."""


@dataclass(frozen=True)
class Step:
    """One fitted transformer as the fast route calls it; `direct` tells how. A direct step
    gives each row from that row alone: a branch of direct steps transforms a file's distinct
    rows once each (`Branch.run`), so a step whose rows depend on each other is not direct."""

    name: str
    transform: Transform
    direct: bool


@dataclass(frozen=True)
class Final:
    """The final estimator as the fast route calls it: `(labels or values, probabilities)`."""

    name: str
    predict: Callable[[Any, bool], tuple[Any, Any]]
    direct: bool


def step_of(transformer: Any, dense_output: bool = False) -> Step:
    """The fitted `transformer` as a step. `dense_output`: its consumer densifies a sparse
    result anyway (a ColumnTransformer with dense output), so a dense one may be given."""
    name = type(transformer).__name__
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    kind = type(transformer)
    direct: Transform | None = None
    if kind is SimpleImputer:
        direct = _imputer(transformer)
    elif kind is StandardScaler:
        direct = _scaler(transformer)
    elif kind is OneHotEncoder:
        direct = _one_hot(transformer, dense_output)
    elif kind is TfidfVectorizer:
        direct = _tfidf(transformer)
    if direct is not None:
        return Step(name, direct, True)
    return Step(name, _checked_call(transformer.transform), False)


def final_of(estimator: Any) -> Final:
    """The fitted final estimator, called directly where its family is known."""
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

    name = type(estimator).__name__
    kind = type(estimator)
    direct: Callable[[Any, bool], tuple[Any, Any]] | None = None
    if kind is LogisticRegression:
        direct = _logistic(estimator)
    elif kind in (LinearRegression, Ridge):
        direct = _linear(estimator)
    elif kind in (RandomForestClassifier, ExtraTreesClassifier):
        direct = _forest(estimator, classifier=True)
    elif kind in (RandomForestRegressor, ExtraTreesRegressor):
        direct = _forest(estimator, classifier=False)
    elif kind in (HistGradientBoostingClassifier, HistGradientBoostingRegressor):
        direct = _boosting(estimator, classifier=kind is HistGradientBoostingClassifier)
    if direct is not None:
        return Final(name, direct, True)
    return Final(name, _checked_predict(estimator), False)


def _checked_call(method: Callable[[Any], Any]) -> Transform:
    def call(features: Any) -> Any:
        import sklearn

        # Parameters were validated at fit time; input checks stay on, so an input the
        # step refuses is refused here as it would be on a DataFrame. The step was fitted
        # on these very columns, under their names: hence the warning silenced.
        with sklearn.config_context(skip_parameter_validation=True), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            return method(features)

    return call


def _checked_predict(estimator: Any) -> Callable[[Any, bool], tuple[Any, Any]]:
    def predict(features: Any, proba: bool) -> tuple[Any, Any]:
        import sklearn

        with sklearn.config_context(skip_parameter_validation=True), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            values = estimator.predict(features)
            probabilities = estimator.predict_proba(features) if proba else None
        return values, probabilities

    return predict


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value


# Transformers. Each mirrors the lines of scikit-learn's `transform` that follow its input
# checks, for the input those checks would have let through unchanged.


def _imputer(imputer: Any) -> Transform | None:
    """SimpleImputer (dense, missing values as NaN): missing cells take the fitted statistic."""
    statistics = imputer.statistics_
    if imputer.add_indicator or not _is_nan(imputer.missing_values):
        return None
    if statistics.dtype not in (np.float64, object):
        return None
    if getattr(imputer, "_fill_dtype", statistics.dtype) != statistics.dtype:
        return None
    empty = np.array([_is_nan(value) for value in statistics.tolist()])
    if empty.any() and not imputer.keep_empty_features:
        return None  # such features are dropped, with a warning: left to scikit-learn
    numeric = statistics.dtype == np.float64
    usual = _checked_call(imputer.transform)

    def impute(features: Any) -> Any:
        if not isinstance(features, np.ndarray) or features.ndim != 2:
            return usual(features)
        if features.dtype != statistics.dtype or features.shape[1] != len(statistics):
            return usual(features)
        filled = features.copy(order="K")  # the layout kept, as scikit-learn's copy keeps it
        # For objects, scikit-learn finds NaN as the values unequal to themselves.
        missing = np.isnan(filled) if numeric else filled != filled
        if missing.any():
            filled[missing] = np.broadcast_to(statistics, filled.shape)[missing]
        return filled

    return impute


def _scaler(scaler: Any) -> Transform | None:
    """StandardScaler (dense): subtract the mean, divide by the scale, as scikit-learn does."""
    mean, scale = scaler.mean_, scaler.scale_
    if (scaler.with_mean and mean is None) or (scaler.with_std and scale is None):
        return None
    usual = _checked_call(scaler.transform)
    width = scaler.n_features_in_

    def standardize(features: Any) -> Any:
        if not isinstance(features, np.ndarray) or features.dtype != np.float64:
            return usual(features)
        if features.ndim != 2 or features.shape[1] != width:
            return usual(features)
        scaled = features.copy(order="K")
        if scaler.with_mean:
            scaled -= mean
        if scaler.with_std:
            scaled /= scale
        return scaled

    return standardize


def _tfidf(vectorizer: Any) -> Transform | None:
    """TfidfVectorizer on a column of strings: scikit-learn's own counting (`_count_vocab`),
    then the lines of `TfidfTransformer.transform` that follow its checks, whose input the
    counts already are (CSR, floats): sublinear tf, idf weights, the row norm."""
    from sklearn.utils import sparsefuncs_fast

    tfidf = getattr(vectorizer, "_tfidf", None)
    if tfidf is None or not hasattr(vectorizer, "vocabulary_"):
        return None
    if np.dtype(vectorizer.dtype) not in (np.float64, np.float32):
        return None  # the transformer would cast integer counts to floats
    normalizers = {
        None: None,
        "l1": sparsefuncs_fast.inplace_csr_row_normalize_l1,
        "l2": sparsefuncs_fast.inplace_csr_row_normalize_l2,
    }
    if tfidf.norm not in normalizers:
        return None
    normalize = normalizers[tfidf.norm]
    idf = getattr(tfidf, "idf_", None)
    try:
        from sklearn.utils._sparse import _align_api_if_sparse as align
    except ImportError:  # a scikit-learn with one sparse interface returns the matrix as is
        align = _unchanged
    usual = _checked_call(vectorizer.transform)

    def weigh(features: Any) -> Any:
        if not isinstance(features, np.ndarray) or features.ndim != 1 or features.dtype != object:
            return usual(features)
        if not all(type(value) is str for value in features.tolist()):
            return usual(features)  # a gap or a number: scikit-learn's error or answer
        _, counts = vectorizer._count_vocab(features, fixed_vocab=True)
        if vectorizer.binary:
            counts.data.fill(1)
        if tfidf.sublinear_tf:
            np.log(counts.data, counts.data)
            counts.data += 1.0
        if idf is not None:
            counts.data *= idf[counts.indices]
        if normalize is not None:
            normalize(counts)
        return align(counts)

    return weigh


def _unchanged(matrix: Any) -> Any:
    return matrix


_MANY_ROWS = 256
"""From this many rows on, hashing a column's values in C pays for its fixed cost."""


def _one_hot(encoder: Any, dense_output: bool) -> Transform | None:
    """OneHotEncoder over object categories, no dropped or infrequent categories, unknown
    categories ignored (all zeros): a dict lookup per cell, written into a dense matrix
    (the one `toarray()` makes of scikit-learn's sparse result)."""
    if not (dense_output or not encoder.sparse_output):
        return None
    if encoder.drop is not None or getattr(encoder, "_infrequent_enabled", False):
        return None
    if encoder.handle_unknown not in ("ignore", "error"):
        return None
    categories = encoder.categories_
    if not all(values.dtype == object for values in categories):
        return None
    tables = []
    for values in categories:
        listed = values.tolist()
        table = {value: index for index, value in enumerate(listed) if not _is_nan(value)}
        if len(table) + sum(_is_nan(value) for value in listed) != len(listed):
            return None
        nan_index = next((i for i, value in enumerate(listed) if _is_nan(value)), None)
        tables.append((table, nan_index))
    offsets = np.cumsum([0] + [len(values) for values in categories])
    width, dtype = int(offsets[-1]), encoder.dtype
    usual = _checked_call(encoder.transform)

    def encode(features: Any) -> Any:
        if not isinstance(features, np.ndarray) or features.dtype != object:
            return usual(features)
        if features.ndim != 2 or features.shape[1] != len(tables):
            return usual(features)
        import pandas as pd

        rows = features.shape[0]
        encoded = np.zeros((rows, width), dtype=dtype)
        cells = encoded.reshape(-1)  # a view: row r, column c is cell r * width + c
        for column, (table, nan_index) in enumerate(tables):
            values = features[:, column]
            try:
                if rows < _MANY_ROWS:
                    codes = np.array([table.get(v, -1) for v in values.tolist()], dtype=np.intp)
                else:
                    # Distinct values found by pandas' hashing in C (Python's equality, as
                    # the dict's), each looked up once; a gap (-1 there) is looked up alone.
                    positions, distinct = pd.factorize(values)
                    found = [table.get(value, -1) for value in distinct.tolist()]
                    codes = np.array([*found, -1], dtype=np.intp)[positions]
                    for row in np.flatnonzero(positions < 0).tolist():
                        codes[row] = table.get(values[row], -1)
            except TypeError:  # unhashable: scikit-learn reports it
                return usual(features)
            unknown = codes < 0
            if nan_index is not None and unknown.any():
                for row in np.flatnonzero(unknown).tolist():
                    if _is_nan(values[row]):
                        codes[row] = nan_index
                unknown = codes < 0
            if encoder.handle_unknown == "error" and unknown.any():
                return usual(features)  # which raises, naming the category
            known = np.flatnonzero(~unknown)
            cells[known * width + (int(offsets[column]) + codes[known])] = 1
        return encoded

    return encode


# Final estimators. Each refuses (Declined) features the usual route would refuse, so that
# the usual route reports them.


def _finite_floats(features: Any) -> Any:
    from scipy import sparse

    if sparse.issparse(features):
        if features.dtype != np.float64 or not np.isfinite(features.data).all():
            raise Declined("not finite floats")
        return features
    if not isinstance(features, np.ndarray) or features.dtype != np.float64:
        raise Declined("not a float matrix")
    if not np.isfinite(features).all():
        raise Declined("not finite")
    return features


def _scores(features: Any, coef: Any, intercept: Any) -> Any:
    from scipy import sparse

    # LinearClassifierMixin.decision_function: safe_sparse_dot(X, coef.T, dense_output=True)
    product = features @ (coef.T if coef.ndim == 2 else coef)
    if sparse.issparse(product):
        product = product.toarray()
    return product + intercept


def _logistic(model: Any) -> Callable[[Any, bool], tuple[Any, Any]] | None:
    from scipy.special import expit

    classes, coef, intercept = model.classes_, model.coef_, model.intercept_
    if coef.ndim != 2 or coef.shape[0] != (1 if len(classes) == 2 else len(classes)):
        return None

    def predict(features: Any, proba: bool) -> tuple[Any, Any]:
        scores = _scores(_finite_floats(features), coef, intercept)
        if scores.ndim > 1 and scores.shape[1] == 1:
            scores = scores.reshape(-1)
        if scores.ndim == 1:
            labels = classes.take((scores > 0).astype(np.intp), axis=0)
        else:
            labels = classes.take(np.argmax(scores, axis=1), axis=0)
        if not proba:
            return labels, None
        if scores.ndim == 1:
            # LinearClassifierMixin._predict_proba_lr, binary
            positive = expit(scores, out=scores)
            return labels, np.stack([1 - positive, positive], axis=1)
        # sklearn.utils.extmath.softmax(decision, copy=False)
        scores -= scores.max(axis=1).reshape((-1, 1))
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=1).reshape((-1, 1))
        return labels, scores

    return predict


def _linear(model: Any) -> Callable[[Any, bool], tuple[Any, Any]] | None:
    coef, intercept = model.coef_, model.intercept_
    if coef.ndim != 1:
        return None

    def predict(features: Any, proba: bool) -> tuple[Any, Any]:
        # LinearModel._decision_function
        return _finite_floats(features) @ coef + intercept, None

    return predict


def _forest(forest: Any, classifier: bool) -> Callable[[Any, bool], tuple[Any, Any]] | None:
    """Each tree's own `tree_.predict`, summed in the order of `estimators_` as scikit-learn
    sums them when it predicts on one thread (n_jobs None or 1); more threads sum in the order
    they finish, which scikit-learn itself does not repeat exactly, so such forests are left
    to it."""
    if forest.n_jobs not in (None, 1) or forest.n_outputs_ != 1:
        return None
    trees = [(tree.tree_, int(getattr(tree, "n_classes_", 1))) for tree in forest.estimators_]
    usual = _checked_predict(forest)
    classes = forest.classes_ if classifier else None
    width = int(forest.n_classes_) if classifier else 1

    def predict(features: Any, proba: bool) -> tuple[Any, Any]:
        features = _finite_floats(features)
        if not isinstance(features, np.ndarray):
            return usual(features, proba)  # a sparse matrix: the forest's own checks and calls
        # BaseForest._validate_X_predict: float32, as the trees were grown on.
        narrow = np.asarray(features, dtype=np.float32)
        if classifier:
            total = np.zeros((narrow.shape[0], width), dtype=np.float64)
            for tree, tree_width in trees:
                total += tree.predict(narrow)[:, :tree_width]
            total /= len(trees)
            assert classes is not None
            return classes.take(np.argmax(total, axis=1), axis=0), total if proba else None
        values = np.zeros(narrow.shape[0], dtype=np.float64)
        for tree, _ in trees:
            values += tree.predict(narrow)[:, 0]
        values /= len(trees)
        return values, None

    return predict


def _boosting(model: Any, classifier: bool) -> Callable[[Any, bool], tuple[Any, Any]] | None:
    """The model's own raw prediction on one thread (each row's sum is the same on any
    number of threads; a pool of threads for one row costs more than the row), once for
    both the labels and the probabilities."""
    if getattr(model, "_preprocessor", None) is not None:
        return None
    if not hasattr(model, "_raw_predict") or not hasattr(model, "_loss"):
        return None

    def predict(features: Any, proba: bool) -> tuple[Any, Any]:
        import sklearn

        with sklearn.config_context(skip_parameter_validation=True), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            raw = model._raw_predict(features, n_threads=1)
        if not classifier:
            return model._loss.link.inverse(raw.ravel()), None
        # "> 0" for two classes, as scikit-learn: argmax would pick the first on a tie.
        binary = raw.shape[1] == 1
        encoded = (raw.ravel() > 0).astype(int) if binary else np.argmax(raw, axis=1)
        labels = model.classes_[encoded]
        return labels, model._loss.predict_proba(raw) if proba else None

    return predict
